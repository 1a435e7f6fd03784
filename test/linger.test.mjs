// `linger`: the receive thread holds what it received before waking
// JavaScript, so that datagrams arriving apart reach JS as one batch; a
// receive that fills every credited buffer is not held; close() and destroy()
// end a hold at once, and every datagram held is delivered or counted.
import dgram from 'node:dgram'
import { execFile } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { backends, listenFor, ring, root } from './lib/helpers.mjs'

const threaded = backends.filter((b) => b === 'recvmmsg' || b === 'recvmsg')
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function sender(t) {
  const socket = dgram.createSocket('udp4')
  t.teardown(() => socket.close())
  return (port, text) => new Promise((resolve, reject) => socket.send(text, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())))
}

t.test('linger is validated', async (t) => {
  const { listen } = await import('dgram-ring')
  const base = { address: '127.0.0.1', thread: true }
  await t.rejects(listen({ ...base, linger: '5' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  for (const linger of [-1, 1000.5, Infinity, NaN]) {
    await t.rejects(listen({ ...base, linger }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `linger ${linger}`)
  }
  // Named, so that a backend forced by DGRAM_RING_BACKEND does not decide which error comes first.
  const withThread = ring.backends.find((b) => b === 'recvmmsg' || b === 'recvmsg')
  if (withThread) {
    await t.rejects(listen({ address: '127.0.0.1', backend: withThread, thread: false, linger: 5 }), { code: 'ERR_INVALID_ARG_VALUE', message: /needs thread: true/ })
  }
  if (process.platform === 'linux' && ring.backends.includes('io_uring')) {
    await t.rejects(listen({ ...base, backend: 'io_uring', linger: 5 }), { code: 'ERR_DGRAM_RING_UNSUPPORTED', message: /io_uring/ })
  }
  // 0 is no linger, with or without the thread.
  const stream = await listen({ address: '127.0.0.1', thread: false, linger: 0 })
  await stream.close()
})

for (const backend of threaded) {
  t.test(`${backend}: datagrams that arrive within a linger reach JS as one batch`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, thread: true, linger: 600 })
    const send = await sender(t)
    const port = stream.address().port
    const batches = []
    const iterating = (async () => {
      for await (const batch of stream.batches()) batches.push([...batch].map((d) => d.data.toString()))
    })()
    // 50 ms apart: without the linger, three wake-ups and three batches.
    await send(port, 'one')
    await delay(50)
    await send(port, 'two')
    await delay(50)
    await send(port, 'three')
    await delay(900)
    t.same(batches, [['one', 'two', 'three']], 'one batch, in order')
    await stream.close()
    await iterating
    t.equal(stream.stats().received, 3)
  })

  t.test(`${backend}: a receive that fills every credited buffer is not held`, async (t) => {
    const { RingSocket } = await import('dgram-ring')
    const batches = []
    // A linger far longer than the test: only a full receive may wake JS in time.
    const socket = new RingSocket({ address: '127.0.0.1', backend, thread: true, linger: 1000, ringSize: 4 }, (batch) => batches.push(batch.length), (e) => t.fail(e.message))
    t.teardown(() => socket.close({ discard: true }))
    const send = await sender(t)
    // No credits yet: the four wait in the kernel's queue, and the first receive takes them all.
    for (let i = 0; i < 4; i++) await send(socket.address().port, `d${i}`)
    const started = Date.now()
    socket.grant(4)
    while (batches.length === 0 && Date.now() - started < 900) await delay(5)
    t.same(batches, [4], 'delivered at once, before the linger ended')
    await socket.close()
    t.equal(socket.stats().received, 4)
  })

  for (const how of ['close', 'destroy']) {
    t.test(`${backend}: ${how}() during a hold does not wait for it, and counts what was held`, async (t) => {
      const stream = await listenFor(t, { address: '127.0.0.1', backend, thread: true, linger: 1000 })
      const send = await sender(t)
      const port = stream.address().port
      const received = []
      stream.on('data', (d) => received.push(d.data.toString()))
      for (let i = 0; i < 3; i++) await send(port, `h${i}`)
      await delay(100) // received by the thread, held
      t.same(received, [], 'held: not delivered yet')
      const started = Date.now()
      if (how === 'close') {
        await stream.close()
        t.same(received, ['h0', 'h1', 'h2'], 'close() delivers what was held')
      } else {
        stream.destroy()
        await new Promise((resolve) => stream.once('close', resolve))
      }
      t.ok(Date.now() - started < 700, `${how}() took ${Date.now() - started} ms, less than the linger`)
      const stats = stream.stats()
      t.equal(stats.received + stats.discarded + stats.kernelDrops, 3, 'every datagram accounted for')
      if (how === 'destroy') t.equal(received.length, stats.received)
    })
  }

  t.test(`${backend}: process exit and worker.terminate() during a hold: no crash, no wait for the linger`, async (t) => {
    const fixture = path.join(root, 'test', 'fixtures', 'linger-lifetime.mjs')
    const env = { ...process.env, DGRAM_RING_BACKEND: backend }
    for (const how of ['exit', 'worker']) {
      const { code, stdout, stderr } = await new Promise((resolve) => {
        execFile(process.execPath, [fixture, root, how], { timeout: 60_000, env }, (error, stdout, stderr) =>
          resolve({ code: error ? error.code ?? error.signal : 0, stdout, stderr }),
        )
      })
      t.equal(code, 0, `${how}: ${stderr}`)
      t.equal(stderr, '', `${how}: nothing on stderr`)
      if (how !== 'worker') continue
      const { terminated, ms } = JSON.parse(stdout)
      t.equal(terminated, 1, 'terminated')
      t.ok(ms < 800, `terminate() took ${ms} ms, less than the linger`)
    }
  })
}
