// Sending from the ring's socket: stream.send(), datagram.reply(),
// stream.sender(). Runs against every backend this build has (and under wine
// for Windows); the 127.0.0.2 reply, GSO and the namespace with a slow
// loopback (where sends meet EAGAIN) are Linux's.
import t from 'tap'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { pathToFileURL } from 'node:url'
import { backends, client, listenFor, ring, root, skipUnless, machine, tool } from './lib/helpers.mjs'

const linux = process.platform === 'linux'

/** A node:dgram socket bound on loopback that collects what it receives. */
async function receiver(t, type = 'udp4', address = type === 'udp4' ? '127.0.0.1' : '::1') {
  const socket = client(t, type)
  await new Promise((resolve) => socket.bind(0, address, resolve))
  const got = []
  let wake
  socket.on('message', (data, rinfo) => {
    got.push({ data, address: rinfo.address, port: rinfo.port })
    wake?.()
  })
  return {
    socket,
    port: socket.address().port,
    got,
    async until(count, ms = 10_000) {
      const deadline = Date.now() + ms
      while (got.length < count && Date.now() < deadline) await new Promise((resolve) => ((wake = resolve), setTimeout(resolve, 50)))
      return got
    },
  }
}

const numbered = (i, size) => {
  const b = Buffer.alloc(size, i & 0xff)
  b.writeUInt32BE(i, 0)
  return b
}

for (const backend of backends) {
  t.test(`${backend}: send() delivers every payload type from the stream's own port`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const rx = await receiver(t)
    const u16 = new Uint16Array([0x6968, 0x2121])
    const dv = Buffer.from('xdatav')
    await stream.send('hello', rx.port, '127.0.0.1')
    await stream.send(Buffer.from('buffer'), rx.port, 'localhost')
    await stream.send(u16, rx.port, '127.0.0.1')
    await stream.send(new DataView(dv.buffer, dv.byteOffset + 1, 5), rx.port, '127.0.0.1')
    await stream.send(Buffer.alloc(0), rx.port, '127.0.0.1')
    const got = await rx.until(5)
    t.same(got.map((g) => g.data.toString('latin1')), ['hello', 'buffer', 'hi!!', 'datav', ''])
    t.ok(got.every((g) => g.port === stream.address().port && g.address === '127.0.0.1'), 'from the stream\'s address and port')
  })

  t.test(`${backend}: a turn's worth of sends (same-size runs, mixed sizes, two destinations) arrives whole and in order`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const a = await receiver(t)
    const b = await receiver(t)
    a.socket.setRecvBufferSize(8 << 20)
    b.socket.setRecvBufferSize(8 << 20)
    const sizes = [100, 100, 100, 100, 100, 1200, 1200, 37, 1472, 1472, 1473, 3000]
    const sends = []
    const toA = []
    const toB = []
    for (let i = 0; i < 600; i++) {
      const data = numbered(i, sizes[i % sizes.length])
      const toFirst = i % 50 < 40
      ;(toFirst ? toA : toB).push(data)
      sends.push(stream.send(data, toFirst ? a.port : b.port, '127.0.0.1'))
    }
    await Promise.all(sends)
    await a.until(toA.length)
    await b.until(toB.length)
    t.equal(a.got.length, toA.length, 'all of the first destination\'s')
    t.equal(b.got.length, toB.length, 'all of the second\'s')
    t.equal(a.got.findIndex((g, i) => !g.data.equals(toA[i])), -1, 'payloads intact and in order (first)')
    t.equal(b.got.findIndex((g, i) => !g.data.equals(toB[i])), -1, 'payloads intact and in order (second)')
  })

  t.test(`${backend}: a datagram's own error rejects its own promise only`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const rx = await receiver(t)
    const results = await Promise.allSettled([
      stream.send('one', rx.port, '127.0.0.1'),
      stream.send('broadcast', 9, '255.255.255.255'), // no SO_BROADCAST: EACCES
      stream.send('two', rx.port, '127.0.0.1'),
      stream.send(Buffer.alloc(65508), rx.port, '127.0.0.1'), // beyond IPv4's 65507: EMSGSIZE
      stream.send('three', rx.port, '127.0.0.1'),
    ])
    t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'])
    const [, broadcast, , big] = results
    t.equal(broadcast.reason.code, 'EACCES')
    t.equal(broadcast.reason.address, '255.255.255.255')
    t.equal(broadcast.reason.port, 9)
    t.equal(typeof broadcast.reason.errno, 'number')
    t.match(broadcast.reason.syscall, /send/i)
    t.equal(big.reason.code, 'EMSGSIZE')
    await rx.until(3)
    t.same(rx.got.map((g) => g.data.toString()), ['one', 'two', 'three'])
  })

  t.test(`${backend}: bad arguments reject with TypeError/RangeError and a code`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const cases = [
      [[42, 9, '127.0.0.1'], TypeError, 'ERR_INVALID_ARG_TYPE'],
      [[{}, 9, '127.0.0.1'], TypeError, 'ERR_INVALID_ARG_TYPE'],
      [['x', '9', '127.0.0.1'], TypeError, 'ERR_INVALID_ARG_TYPE'],
      [['x', 0, '127.0.0.1'], RangeError, 'ERR_SOCKET_BAD_PORT'],
      [['x', 65536, '127.0.0.1'], RangeError, 'ERR_SOCKET_BAD_PORT'],
      [['x', 1.5, '127.0.0.1'], RangeError, 'ERR_SOCKET_BAD_PORT'],
      [['x', 9, 'example.com'], TypeError, 'ERR_INVALID_ARG_VALUE'],
      [['x', 9, 1], TypeError, 'ERR_INVALID_ARG_TYPE'],
      [['x', 9, '::1'], TypeError, 'ERR_INVALID_ARG_VALUE'], // IPv6 on a udp4 socket
      [['x', 9, '127.0.0.1', { from: '::1' }], TypeError, 'ERR_INVALID_ARG_VALUE'],
      [['x', 9, '127.0.0.1', { from: 'me' }], TypeError, 'ERR_INVALID_ARG_VALUE'],
      [['x', 9, '127.0.0.1', { from: 7 }], TypeError, 'ERR_INVALID_ARG_TYPE'],
      [['x', 9, '127.0.0.1', { interfaceIndex: -1 }], RangeError, 'ERR_OUT_OF_RANGE'],
      [['x', 9, '127.0.0.1', { interfaceIndex: '1' }], TypeError, 'ERR_INVALID_ARG_TYPE'],
      [['x', 9, '127.0.0.1', null], TypeError, 'ERR_INVALID_ARG_TYPE'],
    ]
    for (const [args, type, code] of cases) {
      const promise = stream.send(...args)
      t.ok(promise instanceof Promise, 'send() returns a promise, never throws')
      await t.rejects(promise, { constructor: type, code }, `send(${args.map((a) => JSON.stringify(a)).join(', ')})`)
    }
  })

  t.test(`${backend}: a closed stream rejects; what was queued in the turn of close() still goes out`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend })
    const rx = await receiver(t)
    const queued = stream.send('last words', rx.port, '127.0.0.1')
    const closing = stream.close()
    await t.resolves(queued, 'sent before the socket closed')
    await closing
    await t.rejects(stream.send('late', rx.port, '127.0.0.1'), { code: 'ERR_DGRAM_RING_CLOSED' })
    await rx.until(1)
    t.same(rx.got.map((g) => g.data.toString()), ['last words'])
    const destroyed = await ring.listen({ address: '127.0.0.1', backend })
    destroyed.destroy()
    await t.rejects(destroyed.send('x', rx.port, '127.0.0.1'), { code: 'ERR_DGRAM_RING_CLOSED' })
  })

  t.test(`${backend}: reply() answers the sender from the stream's port`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const { port } = stream.address()
    const peer = await receiver(t)
    peer.socket.send('ping', port, '127.0.0.1')
    const iterator = stream.iterator({ destroyOnReturn: false })
    const { value: request } = await iterator.next()
    await request.reply(Buffer.concat([Buffer.from('pong:'), request.data]))
    await peer.until(1)
    t.same(peer.got.map((g) => [g.data.toString(), g.address, g.port]), [['pong:ping', '127.0.0.1', port]])
    await stream.close()
    await t.rejects(request.reply('too late'), { code: 'ERR_DGRAM_RING_CLOSED' }, 'a closed stream\'s datagram')
  })

  t.test(`${backend}: sender() sends what a pipeline writes, and fails on a datagram's error`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const rx = await receiver(t)
    rx.socket.setRecvBufferSize(8 << 20)
    await pipeline(async function* () {
      for (let i = 0; i < 2000; i++) yield { data: numbered(i, 200), port: rx.port, address: '127.0.0.1' }
    }, stream.sender())
    await rx.until(2000)
    t.equal(rx.got.length, 2000)
    t.equal(rx.got.findIndex((g, i) => !g.data.equals(numbered(i, 200))), -1, 'whole and in order')
    await t.rejects(
      pipeline(async function* () {
        yield { data: 'fine', port: rx.port, address: '127.0.0.1' }
        yield { data: 'x', port: 0, address: '127.0.0.1' }
      }, stream.sender()),
      { code: 'ERR_SOCKET_BAD_PORT' },
    )
    await t.rejects(pipeline(async function* () { yield 'not an object' }, stream.sender()), { code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => stream.sender({ highWaterMark: 0 }), { code: 'ERR_OUT_OF_RANGE' })
    t.notOk(stream.destroyed, 'a failed sender leaves the stream open')
  })

  t.test(`${backend}: udp6 sends to IPv6 and (v4-mapped) IPv4, and replies with IPV6_PKTINFO`, async (t) => {
    const stream = await listenFor(t, { address: '::', backend })
    const { port } = stream.address()
    const six = await receiver(t, 'udp6')
    const four = await receiver(t)
    await stream.send('to six', six.port, '::1', { from: '::1' })
    await stream.send('to four', four.port, '127.0.0.1')
    await t.rejects(stream.send('x', four.port, '127.0.0.1', { from: '127.0.0.1' }), { code: 'ERR_INVALID_ARG_VALUE' }, 'from of the other family')
    t.same((await six.until(1)).map((g) => [g.data.toString(), g.address]), [['to six', '::1']])
    t.same((await four.until(1)).map((g) => [g.data.toString(), g.address]), [['to four', '127.0.0.1']])
    six.socket.send('ping', port, '::1')
    const iterator = stream.iterator({ destroyOnReturn: false })
    const { value: request } = await iterator.next()
    await request.reply('pong')
    await six.until(2)
    t.same(six.got[1].data.toString(), 'pong')
    t.same(six.got[1].port, port)
  })
}

t.test('a wildcard socket replies to a datagram sent to 127.0.0.2 from 127.0.0.2', { skip: linux ? false : '127.0.0.2 is a local address on Linux only' }, async (t) => {
  for (const backend of backends) {
    const stream = await listenFor(t, { backend })
    const { port } = stream.address()
    const peer = await receiver(t)
    peer.socket.send('ping', port, '127.0.0.2')
    const iterator = stream.iterator({ destroyOnReturn: false })
    const { value: request } = await iterator.next()
    t.equal(request.localAddress, '127.0.0.2', `${backend}: arrived for 127.0.0.2`)
    await request.reply('pong')
    await peer.until(1)
    t.same(peer.got.map((g) => [g.data.toString(), g.address, g.port]), [['pong', '127.0.0.2', port]], `${backend}: the answer's source is 127.0.0.2`)
    // And send() with an explicit source and interface:
    await stream.send('from .3', peer.port, '127.0.0.1', { from: '127.0.0.3', interfaceIndex: request.interfaceIndex })
    await peer.until(2)
    t.equal(peer.got[1].address, '127.0.0.3', `${backend}: options.from`)
    const notLocal = await stream.send('x', peer.port, '127.0.0.1', { from: '192.0.2.1' }).then(() => undefined, (e) => e)
    t.ok(notLocal instanceof Error && typeof notLocal.errno === 'number' && /send/.test(notLocal.syscall), `${backend}: a source not of this host: a system error (${notLocal?.code})`)
  }
})

// In a network namespace of its own whose loopback has a slow qdisc, the send
// buffer fills and sends meet EAGAIN: they must wait for room, never drop.
t.test(
  'EAGAIN: sends wait for room, in order, none dropped (a namespace with a slow loopback)',
  {
    skip: skipUnless(
      machine(linux, 'Linux network namespaces and tc'),
      machine(process.getuid?.() === 0, 'needs root to create a network namespace (unshare -n) and a qdisc'),
      tool('unshare'),
      tool('tc'),
      tool('ip'),
    ),
  },
  async (t) => {
    const fixture = path.join(root, 'test', 'fixtures', 'send-backpressure.mjs')
    for (const backend of backends) {
      for (const mode of ['sender', 'send']) {
        // A preload (test:asan's sanitizers) is for node only, not for ip and tc.
        const script = `ip link set lo up && tc qdisc add dev lo root tbf rate 20mbit burst 64kb limit 8mb && LD_PRELOAD="$SEND_TEST_PRELOAD" exec "${process.execPath}" "${fixture}" ${mode} 2000 1000 ${backend}`
        const env = { ...process.env, LD_PRELOAD: '', SEND_TEST_PRELOAD: process.env.LD_PRELOAD ?? '' }
        const out = await new Promise((resolve, reject) =>
          execFile('unshare', ['-n', 'sh', '-c', script], { timeout: 60_000, env }, (error, stdout, stderr) => (error ? reject(Object.assign(error, { stderr })) : resolve(stdout))),
        )
        const result = JSON.parse(out.trim().split('\n').pop())
        t.equal(result.received, 2000, `${backend} ${mode}: every datagram arrived`)
        t.ok(result.inOrder, `${backend} ${mode}: in order`)
        // 2 MB at 20 Mbit/s takes about 0.8 s: the sends were held back by the qdisc, not dropped.
        t.ok(result.sentMs >= 400, `${backend} ${mode}: sending took as long as the link (${result.sentMs} ms)`)
        if (mode === 'sender') t.ok(result.waited > 0, `${backend}: write() said to wait`)
      }
    }
  },
)

t.test('send() on a raw socket is absent, and says so', { skip: process.getuid?.() === 0 ? false : 'raw sockets need root' }, async (t) => {
  const stream = await listenFor(t, { type: 'raw4', protocol: 1 })
  await t.rejects(stream.send('x', 9, '127.0.0.1'), { code: 'ERR_DGRAM_RING_UNSUPPORTED' })
})

// What strace sees: a turn's sends in one sendmmsg call, the same-size run as
// UDP GSO messages (UDP_SEGMENT: SOL_UDP, type 103 = 0x67).
t.test('one turn of sends is one sendmmsg; a same-size run goes as UDP GSO', { skip: skipUnless(machine(linux, 'sendmmsg and UDP GSO are Linux\'s'), tool('strace')) }, async (t) => {
  const fixture = path.join(root, 'test', 'fixtures', 'send-batch.mjs')
  const trace = path.join(os.tmpdir(), `dgram-ring-send-${process.pid}.strace`)
  t.teardown(() => fs.rmSync(trace, { force: true }))
  for (const backend of backends) {
    // The preload of test:asan stays out of strace itself (it is not instrumented).
    const env = { ...process.env, DGRAM_RING_BACKEND: backend, LD_PRELOAD: '' }
    const args = ['-f', '-qq', '-e', 'trace=sendmmsg', '-e', 'signal=none', '-s', '16', '-o', trace]
    // LeakSanitizer cannot run under a tracer (it ends the process with its
    // exit code): leaks are left to the other test:asan runs of this file.
    if (process.env.LD_PRELOAD) args.push('-E', `LD_PRELOAD=${process.env.LD_PRELOAD}`, '-E', `ASAN_OPTIONS=${process.env.ASAN_OPTIONS ?? ''}:detect_leaks=0`)
    const out = await new Promise((resolve, reject) =>
      execFile('strace', [...args, process.execPath, fixture], { timeout: 60_000, env }, (error, stdout, stderr) => (error ? reject(Object.assign(error, { stderr })) : resolve(stdout))),
    )
    t.same(JSON.parse(out.trim().split('\n').pop()), { received: 265 }, `${backend}: every datagram arrived`)
    const calls = fs.readFileSync(trace, 'utf8').split('\n').filter((line) => line.includes('sendmmsg('))
    t.equal(calls.length, 2, `${backend}: two calls, the turn's and the lone send's`)
    // 256 of 100 bytes: 4 GSO messages of 64; then 8 single datagrams.
    t.match(calls[0], /= 12$/, `${backend}: the turn's call sent 12 messages`)
    t.equal(calls[0].match(/cmsg_level=SOL_UDP, cmsg_type=0x67/g)?.length, 4, `${backend}: 4 of them with UDP_SEGMENT`)
    t.match(calls[1], /= 1$/, `${backend}: the lone send`)
    t.notMatch(calls[1], /SOL_UDP/, `${backend}: one datagram is no GSO message`)
  }
})

// reply()'s choice of source, on batches laid out as the ring lays them out.
t.test('reply() sends from localAddress on interfaceIndex; without a localAddress, or for a group address, chooses no source', async (t) => {
  const { makeBatch } = await import('./lib/batch.mjs')
  const { DatagramBatch } = await import(pathToFileURL(path.join(root, 'dist', 'datagram.js')).href)
  const calls = []
  const socket = { send: (...args) => (calls.push(args), Promise.resolve()) }
  const laid = makeBatch([
    { data: Buffer.from('a'), remoteAddress: '192.0.2.7', remotePort: 1000, localAddress: '198.51.100.1', interfaceIndex: 3 },
    { data: Buffer.from('b'), remoteAddress: '192.0.2.7', remotePort: 1001 },
    { data: Buffer.from('c'), remoteAddress: '192.0.2.7', remotePort: 1002, localAddress: '239.1.2.3', interfaceIndex: 4 },
    { data: Buffer.from('d'), remoteAddress: '192.0.2.7', remotePort: 1003, localAddress: '255.255.255.255', interfaceIndex: 5 },
    { data: Buffer.from('e'), remoteAddress: '::ffff:192.0.2.7', remotePort: 1004, localAddress: '::ffff:198.51.100.1', interfaceIndex: 6 },
  ])
  const batch = new DatagramBatch(laid.buffer, laid.length, laid.buffer, socket)
  for (const d of batch) await d.reply('answer')
  t.same(calls, [
    ['answer', 1000, '192.0.2.7', { interfaceIndex: 3, from: '198.51.100.1' }],
    ['answer', 1001, '192.0.2.7', {}],
    ['answer', 1002, '192.0.2.7', { interfaceIndex: 4 }],
    ['answer', 1003, '192.0.2.7', { interfaceIndex: 5 }],
    ['answer', 1004, '::ffff:192.0.2.7', { interfaceIndex: 6, from: '::ffff:198.51.100.1' }],
  ])
  await t.rejects(laid.at(0).reply('x'), { code: 'ERR_DGRAM_RING_CLOSED' }, 'a batch that knows no socket')
})
