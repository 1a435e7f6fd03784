// Where payloads live: on Linux the kernel receives into slabs that a batch
// lends to JavaScript as they are (one copy: the kernel's), unless its
// payloads are too sparse for their buffers; a payload kept alive is never
// overwritten, however many batches come after it.
import t from 'tap'
import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import { createRequire } from 'node:module'
import { backends, blast, client, listenFor, root, sendAll, sleep } from './lib/helpers.mjs'

const linux = process.platform === 'linux'
const stride = 4 * createRequire(import.meta.url)(path.join(root, 'dist', 'binding.js')).binding.table.stride
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const payload = (i, size) => {
  const b = Buffer.alloc(size)
  b.writeUInt32BE(i, 0)
  for (let j = 4; j < size; j++) b[j] = (i * 7 + j) & 0xff
  return b
}

/** Sends payloads 0 … total − 1 of `size` bytes, 100 at a time, letting the loop run between. */
async function sendRounds(sender, port, total, size) {
  for (let i = 0; i < total; i += 100) {
    await sendAll(sender, Array.from({ length: 100 }, (_, k) => payload(i + k, size)), port, '127.0.0.1')
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const FLOOD = 20_000

/**
 * Floods a loop over batches({recycle: true}) with FLOOD numbered 256-byte
 * datagrams, `onBatch` seeing each batch while it is current; returns the
 * stream once closed and read to its end.
 */
async function recycleFlood(t, backend, onBatch) {
  const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 256, ringSize: 64, recvBufferSize: 4 << 20 })
  const reading = (async () => {
    for await (const batch of stream.batches({ recycle: true })) onBatch(batch)
  })()
  await sendRounds(client(t), stream.address().port, FLOOD, 256)
  await sleep(200)
  await stream.close()
  await reading
  return stream
}

/** The first batch that holds at least one datagram, and its datagrams' data. */
async function firstBatch(stream) {
  for await (const batch of stream.batches()) return batch
}

for (const backend of linux ? backends.filter((b) => b !== 'iocp') : []) {
  t.test(`${backend}: dense payloads are lent in place: data starts at the batch memory's first byte`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 512 })
    await sendAll(client(t), Array.from({ length: 20 }, (_, i) => payload(i, 512)), stream.address().port, '127.0.0.1')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const batch = await firstBatch(stream)
    const first = batch.at(0)
    t.equal(first.data.byteOffset, 0, 'no table before the payloads: the memory the kernel wrote')
    t.ok(first.data.equals(payload(0, 512)))
  })

  t.test(`${backend}: payloads a quarter of their buffers (512 bytes in the default 2048) are lent too`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    await sendAll(client(t), Array.from({ length: 20 }, (_, i) => payload(i, 512)), stream.address().port, '127.0.0.1')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const batch = await firstBatch(stream)
    t.equal(batch.at(0).data.byteOffset, 0, 'no table before the payloads: the memory the kernel wrote')
    for (let i = 0; i < batch.length; i++) t.ok(batch.at(i).data.equals(payload(i, 512)), `datagram ${i} intact`)
  })

  t.test(`${backend}: datagrams across slabs are lent batch by batch, never copied`, async (t) => {
    // A slab holds a ring's worth of buffers (16 here), and credits of 10
    // make receives start anywhere in one: a batch that spanned two was copied.
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 512, ringSize: 16, highWaterMark: 10, recvBufferSize: 4 << 20 })
    const sender = client(t)
    const { port } = stream.address()
    const total = 3000
    let seen = 0
    let damaged = 0
    const copied = []
    const reading = (async () => {
      for await (const batch of stream.batches()) {
        if (batch.at(0).data.byteOffset !== 0) copied.push(batch.length)
        for (const d of batch) if (!d.data.equals(payload(d.data.readUInt32BE(0), 512))) damaged++
        seen += batch.length
        if (seen >= total) break
      }
    })()
    await sendRounds(sender, port, total, 512)
    await Promise.race([reading, sleep(5000)])
    t.equal(seen, total, 'all arrived (4 MiB of receive buffer holds them)')
    t.equal(damaged, 0, 'every datagram intact')
    t.same(copied, [], 'no batch was copied (the sizes of those that were)')
  })

  t.test(`${backend}: under a flood too, every batch is lent (full batches spanned two slabs, and were copied)`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 512, recvBufferSize: 4 << 20 })
    let batches = 0
    const copied = []
    const reading = (async () => {
      for await (const batch of stream.batches()) {
        batches++
        if (batch.at(0).data.byteOffset !== 0) copied.push(batch.length)
      }
    })()
    await blast({ port: stream.address().port, size: 512, seconds: 0.3, rate: 600_000, batch: 8, gso: true })
    await sleep(100)
    await stream.close()
    await reading
    t.ok(batches > 10, `${batches} batches`)
    t.same(copied, [], 'no batch was copied (the sizes of those that were)')
  })

  t.test(`${backend}: sparse payloads (100 bytes in 65535-byte buffers) are copied after the table`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 65535 })
    await sendAll(client(t), Array.from({ length: 20 }, (_, i) => payload(i, 100)), stream.address().port, '127.0.0.1')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const batch = await firstBatch(stream)
    t.equal(batch.at(0).data.byteOffset, batch.length * stride, 'the payloads follow the table')
    t.ok(batch.at(0).data.equals(payload(0, 100)))
  })

  t.test(`${backend}: payloads kept alive stay intact while 40 000 more datagrams pass through the same slabs`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 256, ringSize: 64, recvBufferSize: 4 << 20 })
    const sender = client(t)
    const { port } = stream.address()
    const kept = []
    let seen = 0
    const reading = (async () => {
      for await (const batch of stream.batches()) {
        for (const d of batch) {
          if (seen % 1000 === 0) kept.push(d.data) // a view, not a copy
          if (++seen % 5000 === 0) gc()
        }
      }
    })()
    await sendRounds(sender, port, 40_000, 256)
    await sleep(200)
    await stream.close()
    await reading
    t.ok(seen > 20_000, `${seen} datagrams went through`)
    const damaged = kept.filter((data) => !data.equals(payload(data.readUInt32BE(0), 256)))
    t.equal(damaged.length, 0, `every one of ${kept.length} kept payloads as it arrived`)
  })
}

// batches({recycle: true}): a batch's memory goes back to the ring when the
// consumer asks for the next one, not when the collector finds the batch.
t.test('batches({recycle}) takes a boolean', async (t) => {
  const stream = await listenFor(t, { address: '127.0.0.1' })
  t.throws(() => stream.batches({ recycle: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => stream.batches(null), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => stream.batches(1), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
})

for (const backend of linux ? backends.filter((b) => b !== 'iocp') : []) {
  t.test(`${backend}: with recycle, every datagram is intact while its batch is current, and the books add up`, async (t) => {
    let seen = 0
    let damaged = 0
    const stream = await recycleFlood(t, backend, (batch) => {
      for (const d of batch) {
        seen++
        if (!d.data.equals(payload(d.data.readUInt32BE(0), 256))) damaged++
      }
    })
    const stats = stream.stats()
    t.equal(damaged, 0, `all ${seen} intact`)
    t.equal(seen, stats.received, 'every datagram received was read')
    t.equal(stats.received + stats.kernelDrops + stats.discarded, FLOOD, 'received + kernel drops + discarded = sent')
  })

  t.test(`${backend}: with recycle, memory is received into again while a view of it is kept (never freed under it)`, async (t) => {
    let kept
    let seen = 0
    await recycleFlood(t, backend, (batch) => {
      kept ??= batch.at(0).data // a view past its batch: what recycle says not to read
      seen += batch.length
    })
    t.ok(seen > 10_000, `${seen} datagrams went through`)
    t.not(kept.readUInt32BE(0), 0, 'the first datagram\'s memory now holds a later one: it went back to the ring without a collection')
    t.equal(kept.length, 256, 'the view itself is whole (its memory is still allocated)')
    gc()
  })

  t.test(`${backend}: with recycle, batches share their slab's ArrayBuffer and reuse their tables`, async (t) => {
    const payloadMemory = new Set()
    const tables = new Set()
    let batches = 0
    let lent = 0
    await recycleFlood(t, backend, (batch) => {
      batches++
      if (batch.buffer === batch.table.buffer) return // copied (sparse): nothing to share
      lent++
      payloadMemory.add(batch.buffer)
      tables.add(batch.table.buffer)
    })
    t.ok(lent > 50, `${lent} of ${batches} batches lent`)
    // Made anew for every batch, each would be its own: a slab's one
    // ArrayBuffer, and a few pooled tables, serve them all.
    t.ok(payloadMemory.size <= 8, `${payloadMemory.size} ArrayBuffers of payloads for ${lent} batches`)
    t.ok(tables.size <= 4, `${tables.size} tables for ${lent} batches`)
  })

  t.test(`${backend}: with recycle, a datagram read after its batch was given back throws ERR_DGRAM_RING_RECYCLED`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 512 })
    const sender = client(t)
    await sendAll(sender, Array.from({ length: 10 }, (_, i) => payload(i, 512)), stream.address().port, '127.0.0.1')
    await sleep(50)
    const iterator = stream.batches({ recycle: true })[Symbol.asyncIterator]()
    const { value: batch } = await iterator.next()
    const first = batch.at(0)
    const data = first.data // read while current: a view, which stays allocated memory
    const port = first.remotePort
    const second = batch.at(batch.length - 1) // never read while current
    await sendAll(sender, [payload(99, 512)], stream.address().port, '127.0.0.1')
    await iterator.next() // moves on: the first batch goes back
    const recycled = { name: 'Error', code: 'ERR_DGRAM_RING_RECYCLED' }
    t.throws(() => first.remotePort, recycled, 'a field of a datagram of a batch given back')
    t.throws(() => second.data, recycled, 'its payload, not read before')
    t.throws(() => second.remoteAddress, recycled)
    t.throws(() => second.toObject(), recycled)
    t.equal(data.length, 512, 'a payload read in time stays a Buffer of its memory')
    t.equal(port, sender.address().port, 'a field read in time is a plain value')
    await iterator.return()
  })

  t.test(`${backend}: a recycled batch given back after its stream closed, and one never given back, collected`, async (t) => {
    for (const giveBack of [true, false]) {
      const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 512, ringSize: 64 })
      await sendAll(client(t), Array.from({ length: 100 }, (_, i) => payload(i, 512)), stream.address().port, '127.0.0.1')
      await sleep(50)
      const iterator = stream.batches({ recycle: true })[Symbol.asyncIterator]()
      let { value: batch } = await iterator.next()
      t.ok(batch.at(0).data.equals(payload(batch.at(0).data.readUInt32BE(0), 512)), 'intact while current')
      await stream.close()
      // The ring is closed: its pooled memory went to the collector; a table
      // given back now is not pooled; the batches never given back (this
      // one, and those the close drained into the queue) are collected.
      if (giveBack) {
        let rest = 0
        for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest += r.value.length
        t.equal(batch.length + rest, 100, 'the close drained the rest into the loop')
      }
      batch = undefined
      gc()
      await sleep(20)
      gc()
    }
  })

  t.test(`${backend}: leaving a recycling loop early, with batches queued, and collecting after`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, bufferSize: 512, ringSize: 64 })
    const sender = client(t)
    await sendAll(sender, Array.from({ length: 200 }, (_, i) => payload(i, 512)), stream.address().port, '127.0.0.1')
    await sleep(50)
    let batches = 0
    for await (const batch of stream.batches({ recycle: true })) {
      t.ok(batch.at(0).data.equals(payload(batch.at(0).data.readUInt32BE(0), 512)))
      if (++batches === 1) break
    }
    gc()
    await sleep(20)
    gc()
    t.ok(stream.destroyed, 'break destroyed the stream')
  })
}
