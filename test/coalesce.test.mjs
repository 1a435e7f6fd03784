// UDP receive coalescing (coalesce: true, Linux UDP_GRO): a GSO sender's
// datagrams arrive coalesced in one buffer and leave the ring as separate
// datagrams: each once, in order, intact, counted. Runs on every Linux backend.
import t from 'tap'
import { backends, gsoPayloadIntact, gsoSend, listenFor, ring } from './lib/helpers.mjs'

const linux = process.platform === 'linux'

/** Reads datagrams until `count` arrived or `ms` passed; checks each against gso_send's pattern. */
async function collect(stream, count, lengthOf, { batches = false, ms = 20_000 } = {}) {
  const seen = { count: 0, outOfOrder: 0, damaged: 0, truncated: 0 }
  const check = (d) => {
    if (d.data.length >= 4 && d.data.readUInt32BE(0) !== seen.count) seen.outOfOrder++
    else if (!gsoPayloadIntact(d.data, seen.count, lengthOf(seen.count))) seen.damaged++
    if (d.truncated) seen.truncated++
    seen.count++
  }
  const timer = setTimeout(() => stream.destroy(new Error(`timed out with ${seen.count} of ${count}`)), ms)
  try {
    if (batches) {
      for await (const batch of stream.batches()) {
        for (const d of batch) check(d)
        if (seen.count >= count) break
      }
    } else {
      for await (const d of stream) {
        check(d)
        if (seen.count >= count) break
      }
    }
  } finally {
    clearTimeout(timer)
  }
  return seen
}

for (const backend of linux ? backends : []) {
  for (const batches of [false, true]) {
    const via = batches ? 'batches()' : 'for await'
    t.test(`${backend}: 6400 GSO datagrams (64 a buffer) arrive once each, in order, intact, via ${via}`, async (t) => {
      const stream = await listenFor(t, { address: '127.0.0.1', backend, coalesce: true, recvBufferSize: 8 << 20 })
      const { port } = stream.address()
      const count = 6400
      const [seen, sent] = await Promise.all([collect(stream, count, () => 512, { batches }), gsoSend({ port, count, size: 512, segments: 64 })])
      t.equal(sent, count)
      t.same(seen, { count, outOfOrder: 0, damaged: 0, truncated: 0 })
      const stats = stream.stats()
      t.ok(stats.coalesced > 0, `buffers held several datagrams (coalesced ${stats.coalesced})`)
      t.ok(stats.coalesced <= count / 2, 'coalesced counts buffers, not datagrams')
      t.equal(stats.received, count, 'received counts datagrams')
      t.equal(stats.kernelDrops, 0)
      t.equal(stats.bytes, count * 512)
    })
  }

  t.test(`${backend}: a segment size that does not divide the buffer: the last datagram of each is shorter`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, coalesce: true, recvBufferSize: 8 << 20 })
    const { port } = stream.address()
    const count = 1000 // 100 buffers of 9 × 300 bytes and one of 100
    const lengthOf = (seq) => (seq % 10 === 9 ? 100 : 300)
    const [seen, sent] = await Promise.all([collect(stream, count, lengthOf), gsoSend({ port, count, size: 300, segments: 10, last: 100 })])
    t.equal(sent, count)
    t.same(seen, { count, outOfOrder: 0, damaged: 0, truncated: 0 })
    t.ok(stream.stats().coalesced > 0)
  })

  t.test(`${backend}: bufferSize still bounds each datagram of a coalesced buffer`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, coalesce: true, bufferSize: 200, recvBufferSize: 8 << 20 })
    const { port } = stream.address()
    const count = 640
    const [seen] = await Promise.all([collect(stream, count, () => 200), gsoSend({ port, count, size: 300, segments: 64 })])
    // Each kept its first 200 bytes, is flagged, and the next starts at its own segment.
    t.same(seen, { count, outOfOrder: 0, damaged: 0, truncated: count })
    t.equal(stream.stats().truncated, count)
    t.equal(stream.stats().bytes, count * 200)
  })

  t.test(`${backend}: a small ring and one credit at a time: nothing lost, credits overshoot by at most a buffer`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, coalesce: true, ringSize: 2, highWaterMark: 1, recvBufferSize: 8 << 20 })
    const { port } = stream.address()
    const count = 2000
    const [seen] = await Promise.all([collect(stream, count, () => 256), gsoSend({ port, count, size: 256, segments: 50 })])
    t.same(seen, { count, outOfOrder: 0, damaged: 0, truncated: 0 })
    t.ok(stream.stats().peakPosted <= 2)
  })

  t.test(`${backend}: credits stay datagrams: once buffers held 64 each, a receive posts buffers for the credits, not one a credit`, async (t) => {
    const highWaterMark = 256
    const stream = await listenFor(t, { address: '127.0.0.1', backend, coalesce: true, highWaterMark, recvBufferSize: 8 << 20 })
    const { port } = stream.address()
    const batches = stream.batches()
    // The loop thread busy while the sender queues 6400 datagrams, 64 a buffer: the next receive finds them all.
    const queued = async () => {
      const sending = gsoSend({ port, count: 6400, size: 256, segments: 64 })
      const until = Date.now() + 400
      while (Date.now() < until);
      t.equal(await sending, 6400)
    }
    const take = async (count) => {
      const sizes = []
      for (let got = 0; got < count; ) {
        const { value: batch } = await batches.next()
        sizes.push(batch.length)
        got += batch.length
      }
      return sizes
    }
    await queued()
    await take(6400) // the first receive knows nothing yet of how full buffers are
    await queued()
    const sizes = await take(6400)
    t.ok(Math.max(...sizes) <= 2 * highWaterMark, `largest batch ${Math.max(...sizes)} of a ${highWaterMark}-datagram stream (${sizes.length} batches)`)
    await batches.return()
  })

  t.test(`${backend}: without coalesce the same sender's datagrams arrive one a buffer`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, recvBufferSize: 8 << 20 })
    const { port } = stream.address()
    const count = 640
    const [seen] = await Promise.all([collect(stream, count, () => 512), gsoSend({ port, count, size: 512, segments: 64 })])
    t.same(seen, { count, outOfOrder: 0, damaged: 0, truncated: 0 })
    t.equal(stream.stats().coalesced, 0)
  })

  t.test(`${backend}: close() with coalesced buffers queued delivers them all: received + discarded === sent`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend, coalesce: true, recvBufferSize: 8 << 20 })
    const { port } = stream.address()
    const count = 3200
    // Nobody reads until everything is queued: the socket holds coalesced buffers.
    t.equal(await gsoSend({ port, count, size: 512, segments: 64 }), count)
    let got = 0
    const reading = (async () => {
      for await (const d of stream) if (gsoPayloadIntact(d.data, got, 512)) got++
    })()
    await stream.close()
    await reading
    const stats = stream.stats()
    t.equal(got, stats.received)
    t.equal(stats.received + stats.discarded + stats.kernelDrops, count)
  })

  t.test(`${backend}: destroy() discards coalesced buffers as datagrams`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend, coalesce: true, recvBufferSize: 8 << 20, highWaterMark: 1 })
    const { port } = stream.address()
    const count = 3200
    t.equal(await gsoSend({ port, count, size: 512, segments: 64 }), count)
    stream.destroy()
    await new Promise((resolve) => stream.once('close', resolve))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const stats = stream.stats()
    t.equal(stats.kernelDrops, 0)
    t.equal(stats.received + stats.discarded, count, `received ${stats.received} + discarded ${stats.discarded}`)
  })
}

t.test('coalesce: validation', async (t) => {
  await t.rejects(ring.listen({ coalesce: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  if (linux) {
    await t.rejects(ring.listen({ type: 'raw4', protocol: 17, coalesce: true }), { code: 'ERR_INVALID_ARG_VALUE', message: /UDP sockets/ })
    const plain = await listenFor(t, { address: '127.0.0.1' })
    t.equal(plain.stats().coalesced, 0)
  } else if (process.platform !== 'win32') {
    await t.rejects(ring.listen({ coalesce: true }), { code: 'ERR_DGRAM_RING_UNSUPPORTED', message: /UDP_GRO/ })
  } // Windows: test/iocp.test.mjs
})
