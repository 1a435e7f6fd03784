// Per-datagram metadata asked for with `ttl`, `tos` and `timestamp`: the TTL /
// hop limit and TOS / traffic class a sender set, read back; the kernel's
// receive time as a bigint of nanoseconds since the epoch; all absent unless
// asked for. Runs against every backend this build has.
import t from 'tap'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { execFile } from 'node:child_process'
import { backends, client, listenFor, ring, root, sendAll, take } from './lib/helpers.mjs'

const wine = process.env.DGRAM_RING_WINE === '1'
const FIELDS = ['ttl', 'tos', 'ecn', 'timestamp']

// Sends `count` datagrams "tos-I" with TOS / traffic class `tos` and TTL /
// hop limit `ttl` (test/tools/tos_send.c: node:dgram sets no TOS).
async function tosSend(address, port, tos, ttl, count = 1) {
  const { toolBinary } = await import(pathToFileURL(path.join(root, 'bench', 'blast.mjs')).href)
  const binary = toolBinary('tos_send', path.join(root, 'test', 'tools', 'tos_send.c'))
  return new Promise((resolve, reject) => {
    execFile(binary, [address, port, tos, ttl, count].map(String), { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) return reject(Object.assign(error, { stderr }))
      resolve(Number(/^sent (\d+)$/m.exec(stdout)?.[1]))
    })
  })
}
// tos_send is a POSIX program: no sender under wine sets a TOS (node:dgram cannot).
const noTosSender = process.platform === 'win32' ? 'the TOS sender (test/tools/tos_send.c) is a POSIX program; node:dgram sets no TOS' : false

// A node:dgram client bound to `address`, sending with TTL / hop limit `ttl`.
async function ttlSender(t, type, address, ttl) {
  const sender = client(t, type)
  sender.bind(0, address)
  await new Promise((resolve) => sender.once('listening', resolve))
  sender.setTTL(ttl)
  return sender
}

for (const backend of backends) {
  t.test(`${backend}: without the options no metadata field is there, nor in toJSON / toObject`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const sender = await ttlSender(t, 'udp4', '127.0.0.1', 42)
    await sendAll(sender, [Buffer.from('plain')], stream.address().port, '127.0.0.1')
    const [d] = await take(stream, 1)
    for (const field of FIELDS) {
      t.equal(d[field], undefined, `${field} undefined`)
      t.notOk(field in d.toJSON(), `${field} not in toJSON()`)
      t.notOk(field in d.toObject(), `${field} not in toObject()`)
    }
  })

  t.test(`${backend}: ttl: true reads back the TTL an IPv4 sender set`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, ttl: true })
    const sender = await ttlSender(t, 'udp4', '127.0.0.1', 42)
    await sendAll(sender, [Buffer.from('a')], stream.address().port, '127.0.0.1')
    sender.setTTL(7)
    await sendAll(sender, [Buffer.from('b')], stream.address().port, '127.0.0.1')
    const [a, b] = await take(stream, 2)
    t.equal(a.ttl, 42)
    t.equal(b.ttl, 7)
    t.equal(a.tos, undefined, 'tos only when asked for')
    t.equal(a.timestamp, undefined, 'timestamp only when asked for')
    t.equal(a.toJSON().ttl, 42)
    t.equal(a.toObject().ttl, 42)
  })

  // libuv's uv_udp_set_ttl() sets IPV6_HOPLIMIT on Windows: there that is the
  // option asking to receive hop limits, not the unicast hop limit sent.
  const noHopSender = process.platform === 'win32' ? "node:dgram's setTTL() on a udp6 socket does not set the hop limit on Windows (libuv sets IPV6_HOPLIMIT)" : false
  t.test(`${backend}: ttl: true reads back the hop limit an IPv6 sender set`, { skip: noHopSender }, async (t) => {
    const stream = await listenFor(t, { address: '::1', backend, ttl: true })
    const sender = await ttlSender(t, 'udp6', '::1', 33)
    await sendAll(sender, [Buffer.from('v6')], stream.address().port, '::1')
    const [d] = await take(stream, 1)
    t.equal(d.family, 'IPv6')
    t.equal(d.ttl, 33)
  })

  t.test(`${backend}: ttl: true on a dual-stack socket reads IPv4 TTLs too`, async (t) => {
    const stream = await listenFor(t, { address: '::', backend, ttl: true })
    const sender = await ttlSender(t, 'udp4', '127.0.0.1', 19)
    await sendAll(sender, [Buffer.from('mapped')], stream.address().port, '127.0.0.1')
    const [d] = await take(stream, 1)
    t.equal(d.remoteAddress, '::ffff:127.0.0.1')
    t.equal(d.ttl, 19)
  })

  t.test(`${backend}: tos: true reads back TOS and ECN (IPv4), traffic class (IPv6) and dual stack`, { skip: noTosSender }, async (t) => {
    const v4 = await listenFor(t, { address: '127.0.0.1', backend, tos: true, ttl: true })
    t.equal(await tosSend('127.0.0.1', v4.address().port, 0xb9, 9, 1), 1) // DSCP EF (46), ECT(1)
    const [a] = await take(v4, 1)
    t.same({ tos: a.tos, ecn: a.ecn, ttl: a.ttl }, { tos: 0xb9, ecn: 1, ttl: 9 })
    t.same({ tos: a.toJSON().tos, ecn: a.toJSON().ecn }, { tos: 0xb9, ecn: 1 })

    const v6 = await listenFor(t, { address: '::1', backend, tos: true })
    t.equal(await tosSend('::1', v6.address().port, 0x2a, 64, 1), 1) // DSCP AF11 (10), ECT(0)
    const [b] = await take(v6, 1)
    t.same({ tos: b.tos, ecn: b.ecn, ttl: b.ttl }, { tos: 0x2a, ecn: 2, ttl: undefined })

    const dual = await listenFor(t, { address: '::', backend, tos: true })
    t.equal(await tosSend('127.0.0.1', dual.address().port, 0x03, 64, 1), 1) // CE
    const [c] = await take(dual, 1)
    t.same({ remoteAddress: c.remoteAddress, tos: c.tos, ecn: c.ecn }, { remoteAddress: '::ffff:127.0.0.1', tos: 3, ecn: 3 })
  })

  t.test(`${backend}: tos: true reads TOS 0 and ECN 0 from a sender that sets none, IPv4 and IPv6; ttl the default hop limit`, async (t) => {
    for (const address of ['127.0.0.1', '::1']) {
      const stream = await listenFor(t, { address, backend, tos: true, ttl: true })
      const sender = client(t, address === '::1' ? 'udp6' : 'udp4')
      await sendAll(sender, [Buffer.from('plain')], stream.address().port, address)
      const [d] = await take(stream, 1)
      t.same({ tos: d.tos, ecn: d.ecn }, { tos: 0, ecn: 0 }, address)
      t.ok(d.ttl > 0 && d.ttl <= 255, `${address}: a hop limit (${d.ttl})`)
      t.same({ tos: d.toObject().tos, ecn: d.toObject().ecn }, { tos: 0, ecn: 0 }, 'toObject keeps them')
    }
  })

  t.test(`${backend}: tos and ttl survive many datagrams a batch`, { skip: noTosSender }, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, tos: true, ttl: true, timestamp: true, recvBufferSize: 1 << 20 })
    stream.pause() // let them queue, so one batch holds many
    t.equal(await tosSend('127.0.0.1', stream.address().port, 0x48, 12, 200), 200)
    stream.resume()
    const got = await take(stream, 200)
    t.ok(got.every((d, i) => d.data.toString() === `tos-${i}` && d.tos === 0x48 && d.ecn === 0 && d.ttl === 12), 'every datagram has its tos and ttl')
    t.ok(got.every((d, i) => i === 0 || d.timestamp >= got[i - 1].timestamp), 'timestamps never go back')
  })

  t.test(`${backend}: where the OS has no receive timestamps, timestamp: true fails with ERR_DGRAM_RING_UNSUPPORTED`, { skip: wine ? false : 'only wine lacks them here (its WSAIoctl has no SIO_TIMESTAMPING)' }, async (t) => {
    await t.rejects(ring.listen({ address: '127.0.0.1', backend, timestamp: true }), { code: 'ERR_DGRAM_RING_UNSUPPORTED', cause: { syscall: 'WSAIoctl(SIO_TIMESTAMPING)' } })
  })

  t.test(`${backend}: timestamp: true gives the kernel's receive time, within a second of Date.now()`, { skip: wine ? 'wine has no SIO_TIMESTAMPING (Windows 10 1903+ has it)' : false }, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, timestamp: true })
    const sender = client(t)
    const before = BigInt(Date.now()) * 1_000_000n
    await sendAll(sender, [Buffer.from('when')], stream.address().port, '127.0.0.1')
    const [d] = await take(stream, 1)
    const after = BigInt(Date.now()) * 1_000_000n
    t.equal(typeof d.timestamp, 'bigint')
    t.ok(d.timestamp >= before - 1_000_000_000n && d.timestamp <= after + 1_000_000_000n, `${d.timestamp} within a second of [${before}, ${after}]`)
    t.ok(Number(d.timestamp / 1_000_000n) <= d.receivedAt + 1000, 'received by the kernel before the batch reached JavaScript (within clock granularity)')
    t.equal(d.toJSON().timestamp, d.timestamp.toString(), 'toJSON: the decimal string (JSON has no bigint)')
    t.equal(JSON.parse(JSON.stringify(d)).timestamp, d.timestamp.toString(), 'JSON.stringify works')
    const copy = structuredClone(d.toObject())
    t.equal(copy.timestamp, d.timestamp, 'toObject: the bigint, and it clones')
  })

  t.test(`${backend}: the command's receivedAt is the kernel timestamp when the socket asked for one`, { skip: wine ? 'wine has no SIO_TIMESTAMPING (Windows 10 1903+ has it)' : false }, async (t) => {
    const { batchFormatter } = await import(pathToFileURL(path.join(root, 'dist', 'cli', 'format.js')).href)
    const { LineBuffer } = await import(pathToFileURL(path.join(root, 'dist', 'cli', 'output.js')).href)
    let socket
    const batch = await new Promise((resolve, reject) => {
      socket = new ring.RingSocket({ address: '127.0.0.1', backend, timestamp: true }, resolve, reject)
      t.teardown(() => socket.close())
      socket.grant(1)
      const sender = client(t)
      sender.send('line', socket.address().port, '127.0.0.1')
    })
    const d = batch.at(0)
    const lines = new LineBuffer()
    batchFormatter({ parse: 'raw' })(batch, 0, 1, lines)
    const line = JSON.parse(lines.take().bytes.toString())
    t.equal(line.receivedAt, new Date(Number(d.timestamp / 1_000_000n)).toISOString())
  })
}

t.test('the options are booleans', async (t) => {
  for (const name of ['ttl', 'tos', 'timestamp']) {
    t.throws(() => new ring.RingSocket({ [name]: 'yes' }, () => {}, () => {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, name)
    t.throws(() => new ring.RingSocket({ [name]: 1 }, () => {}, () => {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, name)
  }
})

t.test('dgram-ring listen --timestamp: receivedAt from the kernel, and the flag is in the help', { skip: wine ? 'wine has no SIO_TIMESTAMPING (Windows 10 1903+ has it)' : false }, async (t) => {
  const { startListen, run } = await import('./lib/cli.mjs')
  const help = await run(['listen', '--help'])
  t.match(help.stdout, /--timestamp/)
  const cli = await startListen(t, ['--timestamp', '--count', '1'])
  const sender = client(t)
  const before = Date.now()
  await sendAll(sender, [Buffer.from('stamped')], cli.port, '127.0.0.1')
  const result = await cli.exited
  t.equal(result.code, 0, result.stderr)
  const line = JSON.parse(result.stdout.trim())
  t.equal(line.data, 'stamped')
  const at = Date.parse(line.receivedAt)
  t.ok(at >= before - 1000 && at <= Date.now() + 1000, `${line.receivedAt} within a second of now`)
})
