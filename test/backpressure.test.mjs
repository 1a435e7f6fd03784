// Backpressure reaches the kernel, and every datagram is accounted for: under
// a flood against a slow consumer, received + kernelDrops === sent, exactly.
// Linux: the flood comes from the vendored sendmmsg sender (bench/blast.c).
import t from 'tap'
import { Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { backends, blast, client, listenFor, ring, sendAll, sleep } from './lib/helpers.mjs'

/** Polls `predicate` every 10 ms until it holds or `ms` passed; returns its last value. */
async function eventually(predicate, ms = 3000) {
  const deadline = Date.now() + ms
  while (!predicate() && Date.now() < deadline) await sleep(10)
  return predicate()
}

// Every backend: a lower grant takes back posted buffers (iocp cancels them).
for (const backend of backends) {
  t.test(`${backend}: a lower grant takes back posted buffers: no credits, nothing posted`, async (t) => {
    const got = []
    const errors = []
    const socket = new ring.RingSocket(
      { address: '127.0.0.1', backend, ringSize: 64 },
      (batch) => { for (const d of batch) got.push(d.data.toString()) },
      (error) => errors.push(error),
    )
    t.teardown(() => socket.close())
    socket.grant(64)
    t.ok(await eventually(() => socket.stats().posted === 64), 'a grant of 64 posts 64')
    socket.grant(10)
    t.ok(await eventually(() => socket.stats().posted <= 10), `a grant of 10 leaves at most 10 posted (${socket.stats().posted})`)
    socket.grant(0)
    t.ok(await eventually(() => socket.stats().posted === 0), `grant(0) leaves nothing posted (${socket.stats().posted})`)
    await sleep(100)
    t.equal(socket.stats().posted, 0, 'and it stays so')
    // The ring goes on after the cancellations: a new grant posts and receives.
    socket.grant(64)
    t.ok(await eventually(() => socket.stats().posted === 64), 'a new grant posts again')
    await sendAll(client(t), [Buffer.from('after')], socket.address().port, '127.0.0.1')
    t.ok(await eventually(() => got.length === 1), 'and receives')
    t.same(got, ['after'])
    t.same(errors, [], 'no error')
  })
}

// From here on: the flood sender and kernelDrops are Linux-only.
const floodBackends = process.platform === 'linux' ? backends : []
if (floodBackends.length === 0) t.pass('the flood sender and kernelDrops are Linux-only')

/** Resolves with the next datagram, or 'idle' if none comes for `ms`. */
const nextOrIdle = (iterator, ms) => {
  let timer
  return Promise.race([
    iterator.next().finally(() => clearTimeout(timer)),
    new Promise((resolve) => (timer = setTimeout(() => resolve('idle'), ms))),
  ])
}

for (const backend of floodBackends) {
  t.test(`${backend}: a flood against a slow consumer: bounded, and received + kernelDrops === sent`, async (t) => {
    const ringSize = 64
    const stream = await listenFor(t, { address: '127.0.0.1', backend, ringSize, recvBufferSize: 64 * 1024 })
    const flood = blast({ port: stream.address().port, size: 64, seconds: 1, rate: 300_000 })
    const iterator = stream[Symbol.asyncIterator]()
    let received = 0
    let stalled
    for (;;) {
      const step = await nextOrIdle(iterator, 1000)
      if (step === 'idle' || step.done) break
      received++
      if (received === 1000) {
        // Stall: the stream's buffer fills to highWaterMark, credits run out,
        // nothing stays posted, and the kernel's queue overflows.
        await sleep(200)
        stalled = { ...stream.stats(), readableLength: stream.readableLength }
      } else if (received % 200 === 0) {
        await sleep(1)
      }
    }
    const { sent } = await flood
    const stats = stream.stats()
    t.ok(stalled, 'the consumer stalled mid-flood')
    t.equal(stalled.posted, 0, 'no buffer posted while the consumer stalled')
    t.ok(stalled.readableLength <= ringSize, `the stream buffered at most highWaterMark (${stalled.readableLength})`)
    t.ok(stats.peakPosted <= ringSize && stats.posted <= ringSize, 'posted never above ringSize')
    t.ok(stats.kernelDrops > 0, `the kernel dropped (${stats.kernelDrops} of ${sent})`)
    t.equal(stats.received, received, 'stats count what the consumer saw')
    t.equal(stats.received + stats.kernelDrops, sent, `received ${stats.received} + kernelDrops ${stats.kernelDrops} === sent ${sent}`)
  })

  t.test(`${backend}: kernelDrops is current when asked, not as of the last datagram`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, recvBufferSize: 16 * 1024 })
    // Nobody reads: no credits, nothing received, so only the socket's own counter can know.
    const { sent } = await blast({ port: stream.address().port, size: 512, seconds: 0.3, rate: 50_000 })
    const stats = stream.stats()
    t.equal(stats.received, 0)
    t.ok(stats.kernelDrops > 0 && stats.kernelDrops < sent, `drops ${stats.kernelDrops} of ${sent} while the queue holds the rest`)
    let queued = 0
    const iterator = stream[Symbol.asyncIterator]()
    for (;;) {
      const step = await nextOrIdle(iterator, 500)
      if (step === 'idle' || step.done) break
      queued++
    }
    t.equal(queued + stats.kernelDrops, sent, 'what was queued plus what was dropped is what was sent')
    t.equal(stream.stats().kernelDrops, stats.kernelDrops, 'no more drops once read')
  })

  t.test(`${backend}: pipeline() into a Transform and a slow Writable`, async (t) => {
    const highWaterMark = 32
    const stream = await listenFor(t, { address: '127.0.0.1', backend, ringSize: 128, highWaterMark, recvBufferSize: 64 * 1024 })
    const samples = []
    let written = 0
    let bytes = 0
    const sizes = new Transform({
      objectMode: true,
      transform(datagram, _encoding, callback) {
        callback(null, { length: datagram.data.length, port: datagram.remotePort })
      },
    })
    const slow = new Writable({
      objectMode: true,
      highWaterMark: 4,
      write(record, _encoding, callback) {
        written++
        bytes += record.length
        if (written % 50 === 0) samples.push({ ...stream.stats(), readableLength: stream.readableLength })
        if (written % 10 === 0) setTimeout(callback, 1)
        else callback()
      },
    })
    const flowing = pipeline(stream, sizes, slow)
    const { sent } = await blast({ port: stream.address().port, size: 100, seconds: 0.5, rate: 100_000 })
    // Let the pipeline drain what is queued, then close: the pipeline ends cleanly.
    let last = -1
    while (written !== last) {
      last = written
      await sleep(300)
    }
    await stream.close()
    await flowing
    const stats = stream.stats()
    t.ok(samples.length > 0)
    t.ok(samples.every((s) => s.readableLength <= highWaterMark), 'the stream never buffered beyond highWaterMark')
    t.ok(samples.every((s) => s.posted <= highWaterMark), 'posted buffers follow the credits')
    t.equal(written, stats.received, 'everything received was written')
    t.equal(bytes, stats.bytes)
    t.equal(stats.received + stats.kernelDrops, sent, `received ${stats.received} + kernelDrops ${stats.kernelDrops} === sent ${sent}`)
  })
}
