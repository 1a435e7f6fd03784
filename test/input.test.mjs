// What callers hand in: options are read once and checked before anything
// reaches native code (no getter, Proxy or valueOf can change what binds or
// abort the process); every argument check has a code; link-local zones bind
// the zone's interface; and what a batch hands out can be copied or posted
// without breaking its batch-mates.
import t from 'tap'
import { execFile } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { MessageChannel } from 'node:worker_threads'
import { firstValueFrom, of, toArray } from 'rxjs'
import { fromDatagrams, mergeMapWithBackpressure } from 'dgram-ring/rx'
import { client, listenFor, machine, ring, root, sendAll, skipUnless, sleep, tool } from './lib/helpers.mjs'

const isLinuxRoot = process.platform === 'linux' && process.getuid?.() === 0
const run = (file, args) =>
  new Promise((resolve) =>
    execFile(file, args, { timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? error.code ?? error.signal : 0, stdout, stderr })),
  )
const fixture = (name) => path.join(root, 'test', 'fixtures', name)

const OPTION_KEYS = [
  'type', 'protocol', 'address', 'port', 'ringSize', 'bufferSize', 'highWaterMark',
  'recvBufferSize', 'reuseAddr', 'reusePort', 'ipv6Only', 'thread', 'linger', 'coalesce', 'backend', 'signal',
  'ttl', 'tos', 'timestamp', 'multicast',
  'balance', 'spreadOver',
]

// A Proxy over `target` that counts every trap, by trap and key.
function counting(target) {
  const counts = {}
  const note = (trap, key) => {
    const name = `${trap} ${String(key)}`
    counts[name] = (counts[name] ?? 0) + 1
  }
  const proxy = new Proxy(target, {
    get: (o, key, receiver) => (note('get', key), Reflect.get(o, key, receiver)),
    has: (o, key) => (note('has', key), Reflect.has(o, key)),
    ownKeys: (o) => (note('ownKeys', ''), Reflect.ownKeys(o)),
    getOwnPropertyDescriptor: (o, key) => (note('getOwnPropertyDescriptor', key), Reflect.getOwnPropertyDescriptor(o, key)),
  })
  return { proxy, counts }
}

const readOnce = (keys) => Object.fromEntries(keys.map((key) => [`get ${key}`, 1]))

t.test('every option is read exactly once, by every entry point', async (t) => {
  const target = () => ({ address: '127.0.0.1', port: 0, ringSize: 8, signal: new AbortController().signal })

  let { proxy, counts } = counting(target())
  const stream = await listenFor(t, proxy)
  t.same(counts, readOnce(OPTION_KEYS), 'listen()')
  t.ok(stream.address().port > 0)

  ;({ proxy, counts } = counting(target()))
  const direct = new ring.DatagramStream(proxy)
  t.teardown(() => direct.close())
  t.same(counts, readOnce(OPTION_KEYS), 'new DatagramStream()')

  ;({ proxy, counts } = counting(target()))
  const socket = new ring.RingSocket(proxy, () => {}, () => {})
  t.teardown(() => socket.close())
  t.same(counts, readOnce(OPTION_KEYS), 'new RingSocket()')

  ;({ proxy, counts } = counting({ ...target(), onListening: () => {} }))
  const subscription = fromDatagrams(proxy).subscribe()
  t.same(counts, readOnce([...OPTION_KEYS, 'onListening']), 'fromDatagrams() (one subscription)')
  subscription.unsubscribe()
})

t.test('a getter that changes its answer: what it said first binds, never a later answer', async (t) => {
  // `port` answers `first` once, then `later` for ever.
  const flipping = (first, later) => {
    let reads = 0
    return {
      address: '127.0.0.1',
      get port() {
        return reads++ === 0 ? first : later
      },
    }
  }
  for (const [first, later] of [[70000, 0], [-1, 0], [65536, 1]]) {
    t.throws(() => new ring.RingSocket(flipping(first, later), () => {}, () => {}), { code: 'ERR_SOCKET_BAD_PORT' }, `${first} then ${later}`)
    await t.rejects(ring.listen(flipping(first, later)), { code: 'ERR_SOCKET_BAD_PORT' }, `listen: ${first} then ${later}`)
  }
  for (const later of [70000, -1, 65535, '80', NaN]) {
    const stream = await listenFor(t, flipping(0, later))
    const { port } = stream.address()
    t.ok(port > 0 && port !== (later & 0xffff), `0 then ${String(later)}: bound port ${port}, the OS's pick`)
  }
})

t.test('hostile values and getters never reach native code (child process: a fatal error would end it)', async (t) => {
  const { code, stdout, stderr } = await run(process.execPath, [fixture('option-reads.mjs'), root])
  t.equal(code, 0, `exit code (134 is a native FATAL ERROR)\n${stderr}`)
  t.notMatch(stderr, /FATAL/)
  const { results, valueOfCalls } = JSON.parse(stdout)
  t.equal(valueOfCalls, 0, 'no valueOf of the caller is ever called')
  t.ok(results.length > 0)
  for (const r of results) {
    const label = `${r.entry}: port 0 for ${r.valid} reads, then ${r.hostile}`
    if (r.valid === 0) {
      // The one read gets the hostile value: a coded validation error.
      const expected = r.hostile === '70000' || r.hostile === '-1' ? 'ERR_SOCKET_BAD_PORT' : 'ERR_INVALID_ARG_TYPE'
      t.match(r, { outcome: 'threw', code: expected }, label)
    } else {
      t.match(r, { outcome: 'bound' }, label)
      t.not(r.port, 4464, `${label}: not 70000 truncated to 16 bits`)
      t.not(r.port, 65535, `${label}: not -1 as 16 bits`)
    }
  }
})

t.test('objects are never converted: a Number or String object is the wrong type', async (t) => {
  let conversions = 0
  const boxed = (value) => Object.assign(Object(value), {
    valueOf: () => (conversions++, value),
    toString: () => (conversions++, String(value)),
  })
  const cases = {
    port: boxed(0),
    ringSize: boxed(8),
    bufferSize: boxed(2048),
    highWaterMark: boxed(8),
    recvBufferSize: boxed(1 << 20),
    address: boxed('127.0.0.1'),
    backend: boxed('auto'),
    type: boxed('udp4'),
    reuseAddr: boxed(true),
    protocol: boxed(1),
  }
  for (const [name, value] of Object.entries(cases)) {
    const options = name === 'protocol' ? { type: 'raw4', protocol: value } : { [name]: value }
    const code = name === 'type' ? 'ERR_INVALID_ARG_VALUE' : 'ERR_INVALID_ARG_TYPE'
    t.throws(() => new ring.RingSocket(options, () => {}, () => {}), { constructor: TypeError, code }, name)
  }
  t.equal(conversions, 0, 'no valueOf/toString called')
})

t.test('a getter that throws: its error propagates as a normal exception', async (t) => {
  const boom = new Error('boom')
  const options = { get port() { throw boom } }
  t.throws(() => new ring.RingSocket(options, () => {}, () => {}), boom)
  t.throws(() => new ring.DatagramStream(options), boom)
  await t.rejects(ring.listen(options), boom)
  const thrown = new Proxy({}, { get() { throw boom } })
  await t.rejects(ring.listen(thrown), boom, 'a Proxy whose get throws')
  const error = await firstValueFrom(fromDatagrams(thrown)).catch((e) => e)
  t.equal(error, boom, 'fromDatagrams: an error notification')
})

t.test('error messages never run the caller\'s code', async (t) => {
  let calls = 0
  const trap = new Proxy({}, {
    get: () => { calls++; throw new Error('trap') },
    getPrototypeOf: () => { calls++; throw new Error('trap') },
  })
  t.throws(() => new ring.RingSocket({ port: trap }, () => {}, () => {}), { code: 'ERR_INVALID_ARG_TYPE' }, 'port')
  t.throws(() => new ring.RingSocket({ type: trap }, () => {}, () => {}), { code: 'ERR_INVALID_ARG_VALUE' }, 'type')
  t.equal(calls, 0)
})

t.test('an object that merely claims to be an AbortSignal is refused', async (t) => {
  const fake = Object.create(AbortSignal.prototype)
  t.throws(() => new ring.DatagramStream({ signal: fake }), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
})

t.test('RingSocket refuses callbacks that are not functions, before it opens a socket', async (t) => {
  for (const bad of [undefined, null, 'f', {}, 1]) {
    t.throws(() => new ring.RingSocket({ address: '127.0.0.1' }, bad, () => {}), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /"onBatch"/ })
    t.throws(() => new ring.RingSocket({ address: '127.0.0.1' }, () => {}, bad), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /"onError"/ })
    // onWarning is optional: undefined takes the default.
    if (bad !== undefined) t.throws(() => new ring.RingSocket({ address: '127.0.0.1' }, () => {}, () => {}, bad), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /"onWarning"/ })
  }
})

t.test('RingSocket.grant() takes a number of credits', async (t) => {
  const socket = new ring.RingSocket({ address: '127.0.0.1' }, () => {}, () => {})
  t.teardown(() => socket.close())
  for (const bad of [Symbol('n'), '5', 5n, { valueOf: () => 5 }]) {
    t.throws(() => socket.grant(bad), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, typeof bad)
  }
  t.throws(() => socket.grant(NaN), { constructor: RangeError, code: 'ERR_OUT_OF_RANGE' })
  socket.grant(0)
  socket.grant(Infinity)
})

t.test('mergeMapWithBackpressure checks its arguments when called', async (t) => {
  for (const concurrency of [0, -1, 0.5, 1.5, NaN, -Infinity]) {
    t.throws(() => mergeMapWithBackpressure((x) => of(x), concurrency), { constructor: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(concurrency))
  }
  for (const concurrency of ['2', null, 2n]) {
    t.throws(() => mergeMapWithBackpressure((x) => of(x), concurrency), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(concurrency))
  }
  for (const project of [undefined, 'f', {}]) {
    t.throws(() => mergeMapWithBackpressure(project), { constructor: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(project))
  }
  // What is valid still works, on any source.
  t.same(await firstValueFrom(of(1, 2, 3).pipe(mergeMapWithBackpressure((x) => of(x * 2), 1), toArray())), [2, 4, 6])
  t.same(await firstValueFrom(of(1, 2).pipe(mergeMapWithBackpressure((x) => of(x), Infinity), toArray())), [1, 2])
  t.same(await firstValueFrom(of(1, 2).pipe(mergeMapWithBackpressure((x) => of(x)), toArray())), [1, 2])
})

// Sends `payloads` to a RingSocket that has no credits yet, then grants: the
// kernel's queue holds them all, so they arrive in one batch.
async function oneBatch(t, payloads) {
  const batches = []
  const socket = new ring.RingSocket({ address: '127.0.0.1', ringSize: 16 }, (batch) => batches.push(batch), (error) => t.error(error))
  t.teardown(() => socket.close())
  await sendAll(client(t), payloads, socket.address().port, '127.0.0.1')
  await sleep(50)
  socket.grant(16)
  for (let i = 0; i < 200 && batches.length === 0; i++) await sleep(10)
  t.equal(batches.length, 1, 'one batch')
  t.equal(batches[0]?.length, payloads.length, 'holding every datagram')
  return batches[0]
}

const PAYLOADS = ['first', 'second', 'third'].map((s) => Buffer.from(s))
const payloadsOf = (batch) => [...batch].map((d) => d.data.toString())

t.test('DatagramBatch.at() takes an integer index, nothing else', async (t) => {
  const batch = await oneBatch(t, PAYLOADS)
  t.equal(batch.at(1).data.toString(), 'second')
  for (const index of [1.5, 0.1, NaN, -1, 3, Infinity, -Infinity]) t.equal(batch.at(index), undefined, String(index))
})

t.test('transferring a payload copies it or throws, and its batch-mates keep theirs', async (t) => {
  const batch = await oneBatch(t, PAYLOADS)
  const first = batch.at(0)
  const { port1, port2 } = new MessageChannel()
  t.teardown(() => port1.close())
  const received = new Promise((resolve) => port2.once('message', resolve))
  let threw
  try {
    port1.postMessage(first.data, [first.data.buffer])
  } catch (error) {
    threw = error
  }
  if (threw) t.match(threw, { name: 'DataCloneError' }, 'postMessage refuses to transfer')
  else t.equal(Buffer.from(await received).toString(), 'first', 'postMessage sent a copy')
  t.equal(batch.buffer.byteLength > 0, true, 'postMessage left the slab attached')
  t.same(payloadsOf(batch), ['first', 'second', 'third'], 'every datagram still reads its payload after postMessage')
  try {
    const clone = structuredClone(first.data, { transfer: [first.data.buffer] })
    t.equal(Buffer.from(clone).toString(), 'first', 'structuredClone copied')
  } catch (error) {
    t.match(error, { name: 'DataCloneError' }, 'structuredClone refuses to transfer')
  }
  t.equal(batch.buffer.byteLength > 0, true, 'structuredClone left the slab attached')
  t.same(payloadsOf(batch), ['first', 'second', 'third'], 'every datagram still reads its payload after structuredClone')
  t.equal(first.data.toString(), 'first')
})

t.test('toObject(): plain fields and a copied payload, for spread, structuredClone and postMessage', async (t) => {
  const batch = await oneBatch(t, PAYLOADS)
  const d = batch.at(1)
  t.same({ ...d }, {}, 'spreading a Datagram copies nothing: its fields are getters on the prototype')
  const o = d.toObject()
  t.equal(Object.getPrototypeOf(o), Object.prototype, 'a plain object')
  t.ok(Buffer.isBuffer(o.data))
  t.equal(o.data.toString(), 'second')
  t.not(o.data.buffer, batch.buffer, 'the payload is a copy, not a view of the slab')
  o.data[0] = 0x53
  t.equal(d.data.toString(), 'second', 'changing the copy leaves the datagram alone')
  for (const field of ['remoteAddress', 'remotePort', 'family', 'localAddress', 'interfaceIndex', 'truncated', 'controlTruncated', 'broadcast', 'multicast']) {
    if (d[field] === undefined) t.notOk(field in o, `${field} absent, as in toJSON()`)
    else t.equal(o[field], d[field], field)
  }
  t.same(Object.keys(o).filter((k) => k !== 'data'), Object.keys(d.toJSON()).filter((k) => k !== 'data'), 'the fields of toJSON()')
  const clone = structuredClone(d.toObject())
  t.same({ ...clone, data: Buffer.from(clone.data).toString() }, { ...d.toJSON(), data: 'second' }, 'structuredClone keeps everything')
  const { port1, port2 } = new MessageChannel()
  t.teardown(() => port1.close())
  const received = new Promise((resolve) => port2.once('message', resolve))
  const sent = d.toObject()
  port1.postMessage(sent, [sent.data.buffer])
  const message = await received
  t.equal(Buffer.from(message.data).toString(), 'second', 'the copy transfers')
  t.same(payloadsOf(batch), ['first', 'second', 'third'], 'the batch is untouched')
})

t.test('link-local zones', async (t) => {
  const bind = async (...addresses) => {
    const { code, stdout, stderr } = await run(process.execPath, [fixture('zone-bind.mjs'), root, ...addresses])
    t.equal(code, 0, stderr)
    return JSON.parse(stdout)
  }

  t.test('an unknown zone fails and names the zone; a zone on a loopback address binds, as in node:dgram', async (t) => {
    const results = await bind('fe80::1%nosuchif', 'fe80::1%lo', '::1%lo')
    t.match(results['fe80::1%nosuchif'], { bound: false, message: /nosuchif/ })
    // Loopback has no fe80::1 here (the namespace test below adds one).
    const onLo = results['fe80::1%lo']
    if (onLo.bound) t.equal(onLo.address, 'fe80::1')
    else t.match(onLo, { code: /^(EADDRNOTAVAIL|EINVAL)$/, message: /fe80::1%lo/ })
    if (process.platform !== 'win32') t.match(results['::1%lo'], { bound: true, address: '::1' })
  })

  // A link-local address this host has: it binds on its own interface only.
  const linkLocal = Object.entries(os.networkInterfaces())
    .flatMap(([name, addresses]) => addresses.map((a) => ({ name, ...a })))
    .find((a) => a.family === 'IPv6' && a.address.startsWith('fe80:') && a.scopeid > 0 && a.name !== 'lo')
  t.test("a host's link-local address binds with its zone, by name and by index, and not on another interface", { skip: linkLocal === undefined || process.platform === 'win32' ? 'no link-local address here' : false }, async (t) => {
    const { address, name, scopeid } = linkLocal
    const results = await bind(`${address}%${name}`, `${address}%${scopeid}`, `${address}%lo`)
    t.match(results[`${address}%${name}`], { bound: true, address })
    t.match(results[`${address}%${scopeid}`], { bound: true, address })
    t.match(results[`${address}%lo`], { bound: false, code: 'EADDRNOTAVAIL', message: new RegExp(`%lo`) })
  })

  t.test('fe80::1%lo binds in a network namespace where loopback has fe80::1', { skip: skipUnless(machine(isLinuxRoot, 'needs Linux and root for unshare -n'), tool('ip')) }, async (t) => {
    const script = [
      'ip link set lo up',
      'ip -6 addr add fe80::1/64 dev lo nodad',
      `exec "${process.execPath}" "${fixture('zone-bind.mjs')}" "${root}" fe80::1%lo fe80::1%1 fe80::1 fe80::1%nosuchif`,
    ].join(' && ')
    const { code, stdout, stderr } = await run('unshare', ['-n', 'sh', '-c', script])
    if (code !== 0 && /unshare|Operation not permitted/.test(stderr)) return t.skip(`no network namespace here: ${stderr.trim()}`)
    t.equal(code, 0, stderr)
    const results = JSON.parse(stdout)
    t.match(results['fe80::1%lo'], { bound: true, address: 'fe80::1' })
    t.match(results['fe80::1%1'], { bound: true, address: 'fe80::1' })
    t.match(results['fe80::1'], { bound: false, code: 'EINVAL' }, 'without a zone the kernel refuses')
    t.match(results['fe80::1%nosuchif'], { bound: false, message: /nosuchif/ })
  })
})
