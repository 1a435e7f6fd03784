// Accounting that stays exact when the socket closes: what the kernel holds
// at close() is delivered, at destroy()/unsubscribe discarded and counted,
// so that received + kernelDrops + discarded === sent after any close; and a
// listener that throws loses nothing of its batch.
import t from 'tap'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { fromDatagrams, mergeMapWithBackpressure } from 'dgram-ring/rx'
import { NEVER } from 'rxjs'
import { backends, client, listenFor, ring, root, sendAll, sleep } from './lib/helpers.mjs'

const SENT = 1000
const payloads = Array.from({ length: SENT }, (_, i) => Buffer.from(`${i}`.padEnd(200, '.')))

/** Sends SENT datagrams that nobody reads yet; the kernel queues what fits and drops the rest. */
async function sendUnread(t, port) {
  await sendAll(client(t), payloads, port, '127.0.0.1')
  await sleep(50)
}

const total = (stats) => stats.received + (stats.kernelDrops ?? 0) + stats.discarded

// Windows keeps no drop counter: there the equation cannot be checked.
const exact = process.platform === 'linux'

for (const backend of backends) {
  t.test(`${backend}: close() delivers what the kernel held, in order`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    await sendUnread(t, stream.address().port)
    const closing = stream.close()
    const got = []
    for await (const d of stream) got.push(d.data.toString())
    await closing
    const stats = stream.stats()
    t.ok(got.length > 0, `delivered ${got.length} at close`)
    t.equal(stats.received, got.length, 'received counts what the stream yielded')
    t.equal(stats.discarded, 0)
    t.ok(got.every((text, i) => i === 0 || Number.parseInt(text) > Number.parseInt(got[i - 1])), 'in order')
    if (exact) t.equal(total(stats), SENT, `received ${stats.received} + kernelDrops ${stats.kernelDrops} + discarded 0 === sent`)
  })

  t.test(`${backend}: close() with nobody reading still counts the drained datagrams as received`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    await sendUnread(t, stream.address().port)
    await stream.close()
    const stats = stream.stats()
    t.ok(stats.received > 0)
    if (exact) t.equal(total(stats), SENT)
  })

  t.test(`${backend}: destroy() discards what the kernel held, counted`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    await sendUnread(t, stream.address().port)
    stream.destroy()
    await new Promise((resolve) => stream.once('close', resolve))
    const stats = stream.stats()
    t.equal(stats.received, 0)
    t.ok(stats.discarded > 0, `discarded ${stats.discarded}`)
    if (exact) t.equal(total(stats), SENT)
  })

  t.test(`${backend}: destroy() during a draining close() discards the rest`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, ringSize: 8 })
    await sendUnread(t, stream.address().port)
    const closing = stream.close()
    let seen = 0
    stream.on('data', () => {
      if (++seen === 8) stream.destroy()
    })
    await closing
    const stats = stream.stats()
    t.ok(stats.discarded > 0, `received ${stats.received}, discarded ${stats.discarded}`)
    if (exact) t.equal(total(stats), SENT)
  })

  t.test(`${backend}: an AbortSignal drains like close()`, async (t) => {
    const controller = new AbortController()
    const stream = await listenFor(t, { address: '127.0.0.1', backend, signal: controller.signal })
    await sendUnread(t, stream.address().port)
    const got = []
    const reading = (async () => {
      for await (const d of stream) got.push(d)
    })()
    controller.abort()
    await reading
    await stream.close()
    const stats = stream.stats()
    t.equal(stats.received, got.length)
    if (exact) t.equal(total(stats), SENT)
  })

  t.test(`${backend}: rx unsubscribe discards what the kernel held, counted`, async (t) => {
    let ring_
    const subscription = fromDatagrams({ address: '127.0.0.1', backend, ringSize: 1, onListening: (r) => (ring_ = r) })
      // One datagram held for ever: no credits, so the rest stays with the kernel.
      .pipe(mergeMapWithBackpressure(() => NEVER, 1))
      .subscribe({ error: (e) => t.fail(e.message) })
    await sendUnread(t, ring_.address().port)
    subscription.unsubscribe()
    await ring_.closed
    const stats = ring_.stats()
    t.equal(stats.received, 1)
    t.ok(stats.discarded > 0, `discarded ${stats.discarded}`)
    if (exact) t.equal(total(stats), SENT)
  })

  t.test(`${backend}: RingSocket.close() delivers the drain to onBatch before it resolves`, async (t) => {
    let delivered = 0
    let closed = false
    const socket = new ring.RingSocket({ address: '127.0.0.1', backend }, (batch) => {
      t.notOk(closed, 'no batch after close() resolved')
      delivered += batch.length
    }, (error) => t.fail(error.message))
    t.teardown(() => socket.close())
    await sendUnread(t, socket.address().port)
    await socket.close()
    closed = true
    const stats = socket.stats()
    t.equal(delivered, stats.received)
    t.ok(delivered > 0)
    if (exact) t.equal(total(stats), SENT)
  })
}

t.test('a throwing data listener loses nothing of its batch: the exception surfaces after every push', async (t) => {
  const { stdout, stderr } = await new Promise((resolve) =>
    execFile(process.execPath, [path.join(root, 'test', 'fixtures', 'throwing-listener.mjs'), root], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ stdout, stderr: error ? `${error.message}\n${stderr}` : stderr }),
    ),
  )
  const result = JSON.parse(stdout || '{}')
  t.same(result.errors, ['listener failed'], stderr)
  t.equal(result.seen, 200, 'every datagram reached the listener')
  t.ok(result.inOrder)
  t.equal(result.received, 200)
})
