// stream.batches(): whole batches under the stream's credits.
import t from 'tap'
import { backends, client, listenFor, sendAll, sleep } from './lib/helpers.mjs'

const payloads = (n) => Array.from({ length: n }, (_, i) => Buffer.from(`${i}`))

for (const backend of backends) {
  t.test(`${backend}: batches() yields every datagram, in order, in whole batches`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    await sendAll(client(t), payloads(100), stream.address().port, '127.0.0.1')
    const seen = []
    let batches = 0
    for await (const batch of stream.batches()) {
      batches++
      for (const d of batch) seen.push(Number(d.data.toString()))
      if (seen.length === 100) break
    }
    t.same(seen, payloads(100).map((_, i) => i))
    t.ok(batches < 100, `${batches} batches`)
    t.ok(stream.destroyed, 'leaving the loop early ends the stream')
  })

  t.test(`${backend}: a consumer that holds batches leaves fewer buffers posted`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, ringSize: 64 })
    const iterator = stream.batches()
    const sender = client(t)
    await sendAll(sender, payloads(40), stream.address().port, '127.0.0.1')
    await sleep(100)
    // Nothing taken yet: the 40 queued here use 40 of the 64 credits.
    t.ok(stream.stats().posted <= 64 - 40, `posted ${stream.stats().posted}`)
    let got = 0
    while (got < 40) got += (await iterator.next()).value.length
    await sleep(50)
    t.equal(stream.stats().posted, 64, 'all given back once taken')
    await iterator.return()
  })

  t.test(`${backend}: close() ends batches() after what the kernel held; a second consumer is refused`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const iterator = stream.batches()
    t.throws(() => stream.batches(), { code: 'ERR_INVALID_STATE' })
    await sendAll(client(t), payloads(50), stream.address().port, '127.0.0.1')
    const closing = stream.close()
    let got = 0
    for await (const batch of { [Symbol.asyncIterator]: () => iterator }) got += batch.length
    await closing
    t.equal(got, 50)
    t.equal(stream.stats().received, 50)
  })
}
