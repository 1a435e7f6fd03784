// Lifetime: close, destroy, abort and breaking out of for-await with rings
// open, also in the middle of a flood — none may crash, hang, leak a
// descriptor, or lose the port. (Process exit, worker termination and garbage
// collection: teardown.test.mjs.)
import t from 'tap'
import { once } from 'node:events'
import { backends, canCountFds, client, flood, listenFor, openFds, ring, sendAll, sleep, take } from './lib/helpers.mjs'


for (const backend of backends) {
  t.test(`${backend}: close() is idempotent, 'close' is the last event, stats() answers after`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend })
    const sender = client(t)
    await sendAll(sender, [Buffer.from('a')], stream.address().port, '127.0.0.1')
    const events = []
    for (const name of ['end', 'close', 'error']) stream.on(name, () => events.push(name))
    stream.on('data', () => events.push('data'))
    const closed = once(stream, 'close')
    await sleep(50)
    const first = stream.close()
    t.equal(stream.close(), first, 'the same promise')
    await first
    await closed
    t.same(events, ['data', 'end', 'close'])
    t.equal(stream.stats().received, 1)
    t.equal(stream.stats().posted, 0)
    t.throws(() => stream.address(), { code: 'ERR_DGRAM_RING_CLOSED' })
    await stream.close()
    stream.destroy()
    t.same(events, ['data', 'end', 'close'], "no event after 'close'")
  })

  t.test(`${backend}: close() ends a for-await cleanly, after what was already received`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend })
    const sender = client(t)
    const port = stream.address().port
    const got = []
    const loop = (async () => {
      for await (const d of stream) {
        got.push(d.data.toString())
        if (got.length === 3) stream.close()
      }
      return 'ended'
    })()
    await sendAll(sender, ['1', '2', '3'].map((s) => Buffer.from(s)), port, '127.0.0.1')
    t.equal(await loop, 'ended', 'the loop ended without an error')
    t.same(got, ['1', '2', '3'])
    await stream.close()
    const again = await listenFor(t, { address: '127.0.0.1', port, backend })
    t.equal(again.address().port, port, 'the port is free')
  })

  t.test(`${backend}: close() on a stream nobody reads ends it at once`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend })
    const closed = new Promise((resolve) => stream.once('close', resolve))
    await stream.close()
    await closed
    t.equal(stream.destroyed, true)
  })

  t.test(`${backend}: destroy() before and after binding, and twice`, async (t) => {
    const early = new ring.DatagramStream({ address: '127.0.0.1', backend })
    const events = []
    early.on('listening', () => events.push('listening'))
    early.on('close', () => events.push('close'))
    const closed = once(early, 'close')
    early.destroy()
    early.destroy()
    await early.close()
    await closed
    await sleep(10)
    t.same(events, ['close'], "no 'listening' after destroy")

    const stream = await ring.listen({ address: '127.0.0.1', backend })
    const port = stream.address().port
    stream.destroy(new Error('boom'))
    const error = await new Promise((resolve) => stream.once('error', resolve))
    t.equal(error.message, 'boom')
    await stream.close()
    const again = await listenFor(t, { address: '127.0.0.1', port, backend })
    t.equal(again.address().port, port)
  })

  t.test(`${backend}: breaking out of for-await closes the socket`, async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend })
    const port = stream.address().port
    const sender = client(t)
    await sendAll(sender, [Buffer.from('x'), Buffer.from('y')], port, '127.0.0.1')
    const [d] = await take(stream, 1)
    t.equal(d.data.toString(), 'x')
    await stream.close()
    t.equal(stream.destroyed, true)
    const again = await listenFor(t, { address: '127.0.0.1', port, backend })
    t.equal(again.address().port, port)
  })

  t.test(`${backend}: an AbortSignal ends the stream cleanly and frees the port`, async (t) => {
    const controller = new AbortController()
    const stream = await ring.listen({ address: '127.0.0.1', backend, signal: controller.signal })
    const port = stream.address().port
    const sender = client(t)
    let n = 0
    const loop = (async () => {
      for await (const _ of stream) if (++n === 2) controller.abort()
      return 'ended'
    })()
    await sendAll(sender, [Buffer.from('1'), Buffer.from('2')], port, '127.0.0.1')
    t.equal(await loop, 'ended')
    await stream.close()
    const again = await listenFor(t, { address: '127.0.0.1', port, backend })
    t.equal(again.address().port, port)
  })

  t.test(`${backend}: 30 closes and destroys in a row in the middle of a flood`, async (t) => {
    const fdsBefore = canCountFds ? openFds() : 0
    const first = await ring.listen({ address: '127.0.0.1', backend })
    const port = first.address().port
    await first.close()
    const stop = flood(port)
    try {
      for (let i = 0; i < 30; i++) {
        const stream = await ring.listen({ address: '127.0.0.1', port, backend, ringSize: 64 })
        const closed = once(stream, 'close')
        let seen = 0
        await new Promise((resolve) => {
          stream.on('data', () => {
            // Close from inside a 'data' handler, mid-batch, on alternate rounds.
            if (++seen === 10 && i % 2 === 0) resolve(stream.close())
            if (seen === 10 && i % 2 === 1) resolve(stream.destroy())
          })
          setTimeout(resolve, 2000)
        })
        await stream.close()
        await closed
        t.equal(stream.destroyed, true)
      }
    } finally {
      await stop()
    }
    if (canCountFds) t.equal(openFds(), fdsBefore, 'no descriptor left open')
  })
}

for (const backend of backends) {
  t.test(`${backend}: close() with a consumer waiting on 256 posted buffers leaves the loop running`, async (t) => {
    const errors = []
    const socket = new ring.RingSocket({ address: '127.0.0.1', backend }, () => {}, (error) => errors.push(error))
    socket.grant(256)
    const deadline = Date.now() + 3000
    while (socket.stats().posted < 256 && Date.now() < deadline) await sleep(10)
    t.equal(socket.stats().posted, 256, 'a consumer waits on the whole ring')
    // The loop turns while the kernel gives the buffers back: an immediate
    // scheduled before close() runs before close() settles.
    await sleep(1) // from a timer callback: immediates come before this turn's close callbacks
    const order = []
    setImmediate(() => order.push('immediate'))
    const started = Date.now()
    await socket.close().then(() => order.push('closed'))
    t.same(order, ['immediate', 'closed'])
    t.ok(Date.now() - started < 2000, `closed in ${Date.now() - started} ms`)
    t.equal(socket.stats().posted, 0, 'nothing posted once closed')
    t.same(errors, [])
  })

  t.test(`${backend}: a draining close() delivers what reached the socket before it, in order`, async (t) => {
    const got = []
    const errors = []
    const socket = new ring.RingSocket(
      { address: '127.0.0.1', backend, ringSize: 8 },
      (batch) => { for (const d of batch) got.push(d.data.toString()) },
      (error) => errors.push(error),
    )
    const port = socket.address().port
    // Two credits: two datagrams reach JS, the rest wait in the socket's queue.
    socket.grant(2)
    const sent = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']
    await sendAll(client(t), sent.map((s) => Buffer.from(s)), port, '127.0.0.1')
    const deadline = Date.now() + 3000
    while (got.length < 2 && Date.now() < deadline) await sleep(10)
    await sleep(100)
    t.same(got, ['1', '2'], 'the credits were used')
    await socket.close()
    t.same(got, sent, 'close() delivered the rest before it resolved')
    t.equal(socket.stats().received, sent.length)
    t.same(errors, [])
  })

  t.test(`${backend}: a draining close() delivers queued datagrams longer than bufferSize truncated and flagged`, async (t) => {
    const got = []
    const socket = new ring.RingSocket(
      { address: '127.0.0.1', backend, bufferSize: 4 },
      (batch) => { for (const d of batch) got.push([d.data.toString(), d.truncated]) },
      (error) => got.push(error),
    )
    const sent = ['abcdefgh', 'xy', '', '123456'].map((s) => Buffer.from(s))
    await sendAll(client(t), sent, socket.address().port, '127.0.0.1')
    await sleep(100) // no credits: they wait in the socket's queue
    await socket.close()
    t.same(got, [['abcd', true], ['xy', false], ['', false], ['1234', true]])
    t.equal(socket.stats().truncated, 2)
  })
}


t.test('rx: 100 subscriptions on one port, each unsubscribed after 0-5 ms, then a new one binds', async (t) => {
  const { fromDatagrams } = await import('dgram-ring/rx')
  const port = await ring.listen({ address: '127.0.0.1' }).then(async (s) => {
    const p = s.address().port
    await s.close()
    return p
  })
  for (let i = 0; i < 100; i++) {
    const subscription = fromDatagrams({ address: '127.0.0.1', port }).subscribe({ error: (e) => t.fail(e.message) })
    await sleep(i % 6)
    subscription.unsubscribe()
  }
  const bound = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000)
    const subscription = fromDatagrams({
      address: '127.0.0.1',
      port,
      onListening: () => {
        clearTimeout(timer)
        resolve(true)
        setImmediate(() => subscription.unsubscribe())
      },
    }).subscribe({ error: (e) => t.fail(e.message) })
  })
  t.ok(bound, 'the last subscription bound')
})
