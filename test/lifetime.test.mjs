// Lifetime: close, destroy, abort, breaking out of for-await, garbage
// collection, process exit and worker termination with rings open — none may
// crash, hang, leak a descriptor, or lose the port.
import t from 'tap'
import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import { once } from 'node:events'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { createRequire } from 'node:module'
import { backends, canCountFds, client, listenFor, openFds, ring, root, sendAll, sleep, take } from './lib/helpers.mjs'

const { binding } = createRequire(import.meta.url)(path.join(root, 'dist', 'binding.js'))
const fixture = (name) => path.join(root, 'test', 'fixtures', name)

/** Sends to the port from node:dgram until stopped (bounded: at most `ms`). */
function flood(port, ms = 20_000) {
  const socket = dgram.createSocket('udp4')
  const payload = Buffer.alloc(300, 7)
  let running = true
  const deadline = Date.now() + ms
  const done = (async () => {
    while (running && Date.now() < deadline) {
      for (let i = 0; i < 64; i++) socket.send(payload, port, '127.0.0.1')
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  return async () => {
    running = false
    await done
    await new Promise((resolve) => socket.close(resolve))
  }
}

/** The environment of a child process or worker whose streams default to `backend`. */
const withBackend = (backend) => ({ ...process.env, DGRAM_RING_BACKEND: backend })

function runNode(args, backend) {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 60_000, env: withBackend(backend) }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code ?? error.signal : 0, stdout, stderr }),
    )
  })
}

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

// Child processes and workers: their streams default to the backend under test.
for (const backend of backends) {
  t.test(`${backend}: worker.terminate() and process exit while a consumer waits on a posted ring, repeated`, async (t) => {
    for (let round = 0; round < 3; round++) {
      const worker = new Worker(fixture('worker-ring.mjs'), { workerData: { root, port: 0 }, env: withBackend(backend) })
      const errors = []
      worker.on('error', (e) => errors.push(e))
      await new Promise((resolve) => worker.on('message', (m) => m.listening && resolve()))
      await sleep(20)  // the worker's for-await has granted: the ring is posted
      t.equal(await worker.terminate(), 1, 'terminated')
      t.same(errors, [])
    }
    for (let round = 0; round < 2; round++) {
      const { code, stderr } = await runNode([fixture('exit-with-ring.mjs'), root, 'waiting'], backend)
      t.equal(code, 0, stderr)
      t.equal(stderr, '')
    }
  })

  t.test(`${backend}: a stream never closed and no longer referenced is collected and its socket closed`, async (t) => {
    const { code, stdout, stderr } = await runNode(['--expose-gc', fixture('gc-ring.mjs'), root], backend)
    t.equal(code, 0, stderr)
    const result = JSON.parse(stdout)
    t.equal(result.rebound, true, 'collection closed the socket: the port is free')
    if (canCountFds) {
      // The receive thread's wake-up descriptor is one more (DGRAM_RING_THREAD=1 runs this file again);
      // io_uring takes the socket, the ring and its eventfd (and no thread).
      const own = backend === 'io_uring' ? 3 : process.env.DGRAM_RING_THREAD === '1' ? 2 : 1
      t.equal(result.open, result.before + own, `the socket took ${own} descriptor(s)`)
      t.equal(result.after, result.before, 'collection gave it back')
    }
  })

  t.test(`${backend}: 1000 open/close cycles: no growth in descriptors or RSS`, async (t) => {
    const { code, stdout, stderr } = await runNode(['--expose-gc', fixture('cycles.mjs'), root, '1000'], backend)
    t.equal(code, 0, stderr)
    const { warm, end } = JSON.parse(stdout)
    if (canCountFds) t.ok(end.fds <= warm.fds, `descriptors after 1000 cycles (${end.fds}) no more than after 500 (${warm.fds})`)
    // A ring is 512 KiB of buffers: leaking even one in ten of the last 500
    // cycles would grow RSS by 25 MiB.
    // Under AddressSanitizer freed memory sits in its quarantine, so RSS says
    // nothing there; LeakSanitizer checks for leaks in that run instead.
    if (/libasan/.test(process.env.LD_PRELOAD ?? '')) return
    const growth = (end.rss - warm.rss) / 2 ** 20
    t.ok(growth < 8, `RSS grew ${growth.toFixed(1)} MiB from cycle 500 to 1000`)
  })

  t.test(`${backend}: process exit with rings open and receiving`, async (t) => {
    const { code, stderr } = await runNode([fixture('exit-with-ring.mjs'), root], backend)
    t.equal(code, 0, stderr)
    t.equal(stderr, '')
  })

  t.test(`${backend}: worker.terminate() with a ring open mid-flow`, async (t) => {
    const probe = await ring.listen({ address: '127.0.0.1', backend })
    const port = probe.address().port
    await probe.close()
    for (let round = 0; round < 10; round++) {
      const worker = new Worker(fixture('worker-ring.mjs'), { workerData: { root, port }, env: withBackend(backend) })
      const errors = []
      worker.on('error', (e) => errors.push(e))
      await new Promise((resolve) => worker.on('message', (m) => m.listening && resolve()))
      const stop = flood(port)
      await new Promise((resolve) => worker.on('message', (m) => m.received && resolve()))
      const exitCode = await worker.terminate()
      await stop()
      t.equal(exitCode, 1, 'terminated')
      t.same(errors, [])
    }
    const again = await listenFor(t, { address: '127.0.0.1', port, backend })
    t.equal(again.address().port, port, 'the worker freed the port')
  })

  t.test(`${backend}: a close() promise settles even if its socket is garbage-collected meanwhile`, async (t) => {
    const { code, stdout, stderr } = await runNode(['--expose-gc', fixture('close-unheld.mjs'), root], backend)
    t.equal(code, 0, stderr)
    t.same(JSON.parse(stdout), { rounds: 50, settled: 50 })
  })

  t.test(`${backend}: process exit and worker.terminate() right after close(): no wake-up reaches a freed ring`, async (t) => {
    for (const how of ['exit', 'worker']) {
      const { code, stdout, stderr } = await runNode([fixture('close-then-exit.mjs'), root, how], backend)
      t.equal(code, 0, `${how}: ${stderr}`)
      if (how === 'worker') t.match(stdout, /terminated/)
    }
  })

  t.test(`${backend}: unref(): a waiting stream or socket no longer keeps the process alive; ref() undoes it`, async (t) => {
    for (const how of ['stream', 'socket']) {
      const { code, stdout, stderr } = await runNode([fixture('unref.mjs'), root, how], backend)
      t.equal(code, 0, stderr)
      t.equal(stdout.trim(), 'waiting', `${how}: exited by itself`)
    }
    const { code, stdout, stderr } = await runNode([fixture('unref.mjs'), root, 'ref-again'], backend)
    t.equal(code, 0, stderr)
    t.equal(stdout.trim(), 'waiting\nstill alive')
  })
}

t.test('teardown of a ring whose close completes at once (as iocp does) with a wake-up queued: no use after free', {
  skip: binding.faultInjection ? false : 'needs the sanitizer build with its test double: npm run test:asan runs this',
}, async (t) => {
  const { code, stdout, stderr } = await runNode([fixture('sync-close-teardown.mjs'), root])
  t.equal(code, 0, stderr)
  t.match(stdout, /terminated/)
})

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
