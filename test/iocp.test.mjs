// Windows (iocp): receive coalescing as documented, and the one completion
// port and thread every socket of the process shares, across worker threads.
// Runs under wine with the backend-neutral suite (scripts/win-test.sh); the
// port's thread count is checked natively (test/iocp-port.test.mjs).
import t from 'tap'
import dgram from 'node:dgram'
import { Worker } from 'node:worker_threads'
import path from 'node:path'
import { listenFor, ring, root, take } from './lib/helpers.mjs'

const windows = process.platform === 'win32'
const skip = windows ? false : 'Windows only: the iocp backend (Linux coalescing is test/coalesce.test.mjs)'
const fixture = (name) => path.join(root, 'test', 'fixtures', name)

/** Sends `text` to each of `ports` on 127.0.0.1 from one socket. */
async function sendEach(ports, text) {
  const socket = dgram.createSocket('udp4')
  try {
    for (const port of ports) await new Promise((resolve, reject) => socket.send(text, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())))
  } finally {
    socket.close()
  }
}

t.test('coalesce: true opens where Windows has UDP_RECV_MAX_COALESCED_SIZE, else fails naming it', { skip }, async (t) => {
  let stream
  try {
    stream = await ring.listen({ address: '127.0.0.1', coalesce: true })
  } catch (error) {
    t.match(error, { code: 'ERR_DGRAM_RING_UNSUPPORTED', message: /UDP_RECV_MAX_COALESCED_SIZE.*Windows 10 version 2004/ })
    t.match(error.cause, { syscall: 'setsockopt(UDP_RECV_MAX_COALESCED_SIZE)' })
    return
  }
  // Only real Windows 10 2004 or later gets here: wine refuses the option.
  t.notOk(process.env.DGRAM_RING_WINE, 'wine has no receive coalescing')
  t.teardown(() => stream.destroy())
  const { port } = stream.address()
  const count = 200
  const sender = dgram.createSocket('udp4')
  for (let i = 0; i < count; i++) sender.send(Buffer.from(`d${i}`), port, '127.0.0.1')
  const got = await take(stream, count)
  sender.close()
  t.same(got.map((d) => d.data.toString()), Array.from({ length: count }, (_, i) => `d${i}`), 'each once, in order')
  t.equal(stream.stats().received, count)
  t.type(stream.stats().coalesced, 'number')
})

t.test('coalesce: true under wine is refused as documented', { skip: windows && process.env.DGRAM_RING_WINE ? false : 'wine only' }, async (t) => {
  await t.rejects(ring.listen({ coalesce: true }), { code: 'ERR_DGRAM_RING_UNSUPPORTED' })
  await t.rejects(ring.listen({ type: 'udp6', address: '::1', coalesce: true }), { code: 'ERR_DGRAM_RING_UNSUPPORTED' })
  // A refused open leaves nothing behind: a plain socket opens and receives.
  const plain = await listenFor(t, { address: '127.0.0.1' })
  await sendEach([plain.address().port], 'after')
  t.same((await take(plain, 1)).map((d) => d.data.toString()), ['after'])
  t.equal(plain.stats().coalesced, 0)
})

t.test('48 sockets in three workers and 16 in the main thread share the port: each gets its own datagrams', { skip }, async (t) => {
  const workers = []
  for (let i = 0; i < 3; i++) {
    const worker = new Worker(fixture('worker-many.mjs'), { workerData: { root, count: 16 } })
    const errors = []
    worker.on('error', (e) => errors.push(e))
    const got = new Map()
    worker.on('message', (m) => m.got && got.set(m.got, m.text))
    const ports = await new Promise((resolve) => worker.on('message', (m) => m.ports && resolve(m.ports)))
    workers.push({ worker, errors, got, ports })
  }
  const mine = []
  for (let i = 0; i < 16; i++) mine.push(await listenFor(t, { address: '127.0.0.1' }))
  // Read without ending the streams (breaking out of for-await would close them).
  const readers = mine.map((s) => s[Symbol.asyncIterator]())
  const next = async () => Promise.all(readers.map(async (r) => (await r.next()).value.data.toString()))
  for (const [i, w] of workers.entries()) await sendEach(w.ports, `worker ${i}`)
  await sendEach(mine.map((s) => s.address().port), 'main')
  t.same(await next(), mine.map(() => 'main'), 'each main-thread socket got its datagram')
  const deadline = Date.now() + 20_000
  while (workers.some((w) => w.got.size < 16) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  for (const [i, w] of workers.entries()) {
    t.same([...w.got.keys()].sort(), [...w.ports].sort(), `worker ${i}: every socket received`)
    t.ok([...w.got.values()].every((text) => text === `worker ${i}`), `worker ${i}: only its own datagrams`)
  }
  // One worker closes its sockets, one is terminated with its sockets open
  // (environment teardown), one stays: the main thread's sockets go on.
  workers[0].worker.postMessage({ close: true })
  await new Promise((resolve) => workers[0].worker.on('message', (m) => m.closed && resolve()))
  t.equal(await workers[1].worker.terminate(), 1, 'terminated with 16 sockets open')
  await sendEach(mine.map((s) => s.address().port), 'again')
  t.same(await next(), mine.map(() => 'again'), 'the main thread goes on receiving')
  await Promise.all(mine.map((s) => s.close()))
  await workers[0].worker.terminate()
  t.equal(await workers[2].worker.terminate(), 1)
  for (const w of workers) t.same(w.errors, [])
  // Every socket is closed (the port shut down with the last): a new one starts it again.
  const again = await listenFor(t, { address: '127.0.0.1' })
  await sendEach([again.address().port], 'restart')
  t.same((await take(again, 1)).map((d) => d.data.toString()), ['restart'])
})
