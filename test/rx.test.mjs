// dgram-ring/rx: fromDatagrams and fromDatagramBatches as cold Observables
// (order, close on unsubscribe, errors as notifications), and
// mergeMapWithBackpressure: credits that follow what a slow async pipeline
// holds, under a flood, with exact accounting; and exactly mergeMap elsewhere.
import t from 'tap'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import {
  EMPTY,
  bufferTime,
  filter,
  firstValueFrom,
  from,
  groupBy,
  lastValueFrom,
  map,
  mergeMap,
  take,
  timeout,
  toArray,
} from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { fromDatagrams, fromDatagramBatches, mergeMapWithBackpressure } from 'dgram-ring/rx'
import { backends, blast, client, openFds, ring, sendAll, sleep } from './lib/helpers.mjs'

// Windows keeps no per-socket drop counter: kernelDrops is absent there.
const NO_DROPS = process.platform === 'win32' ? undefined : 0

const LOCAL = '127.0.0.1'
const numbered = (count) => Array.from({ length: count }, (_, i) => Buffer.from(String(i)))
const counting = (count) => Array.from({ length: count }, (_, i) => String(i))
const texts = (datagrams) => datagrams.map((d) => d.data.toString())

/** An `onListening` option and a promise of the handle it gets; `fail` rejects the promise instead. */
function listening() {
  let onListening
  let fail
  const ready = new Promise((resolve, reject) => {
    onListening = resolve
    fail = reject
  })
  return { ready, onListening, fail }
}

/** The error a subscription ends with (fails if it emits or completes instead, or throws from subscribe). */
function errorOf(observable) {
  return new Promise((resolve, reject) => {
    observable.subscribe({
      next: (value) => reject(new Error(`unexpected value ${value}`)),
      error: resolve,
      complete: () => reject(new Error('completed instead of failing')),
    })
  })
}

/** Polls `condition` until it holds or `ms` pass (a bound, not an assertion). */
async function until(condition, ms = 30_000) {
  const deadline = Date.now() + ms
  while (!condition() && Date.now() < deadline) await sleep(5)
}

for (const backend of backends) {
  t.test(`${backend}: a synchronous subscriber sees every datagram, in order, with the ring posted again after each batch`, async (t) => {
    const ringSize = 8
    const count = 1000
    const sender = client(t)
    await new Promise((resolve) => sender.bind(0, LOCAL, resolve))
    const { ready, onListening } = listening()
    const received = firstValueFrom(
      fromDatagrams({ address: LOCAL, backend, ringSize, recvBufferSize: 1 << 20, onListening }).pipe(take(count), toArray(), timeout(20_000)),
    )
    const handle = await ready
    t.equal(handle.backend, backend)
    t.equal(handle.ringSize, ringSize)
    t.equal(handle.stats().posted, ringSize, 'the whole ring is posted before the first datagram')
    await sendAll(sender, numbered(count), handle.address().port, LOCAL)
    const datagrams = await received
    t.strictSame(texts(datagrams), counting(count), 'every payload, in order')
    t.ok(datagrams.every((d) => d.remoteAddress === LOCAL && d.remotePort === sender.address().port && d.family === 'IPv4'))
    await handle.closed
    const stats = handle.stats()
    t.equal(stats.received, count, 'nothing received beyond what was taken')
    t.equal(stats.kernelDrops, NO_DROPS)
    t.ok(stats.batches >= count / ringSize, `${stats.batches} batches of at most ${ringSize}: a ${ringSize}-buffer ring carried ${count} datagrams`)
    t.equal(stats.peakPosted, ringSize)
  })
}

t.test('unsubscribe closes the socket; the same port can be bound again right after', async (t) => {
  const sender = client(t)
  await new Promise((resolve) => sender.bind(0, LOCAL, resolve))
  const fds = openFds()
  const first = listening()
  const a = fromDatagrams({ address: LOCAL, onListening: first.onListening }).subscribe()
  const handleA = await first.ready
  const port = handleA.address().port
  const order = []
  void handleA.closed.then(() => order.push('A closed'))

  a.unsubscribe()
  // Synchronously after: a new subscription on the same port waits for A's close instead of failing.
  const second = listening()
  const gotB = []
  const b = fromDatagrams({ address: LOCAL, port, onListening: second.onListening }).subscribe({
    next: (d) => gotB.push(d.data.toString()),
    error: second.fail,
  })
  const handleB = await second.ready
  order.push('B bound')
  t.strictSame(order, ['A closed', 'B bound'])
  t.equal(handleB.address().port, port)
  t.throws(() => handleA.address(), { code: 'ERR_DGRAM_RING_CLOSED' })
  t.equal(handleA.stats().posted, 0, 'stats still answer after close')

  await sendAll(sender, [Buffer.from('to B')], port, LOCAL)
  await until(() => gotB.length === 1)
  t.strictSame(gotB, ['to B'])

  b.unsubscribe()
  await handleB.closed
  // Any socket, not only ours, can bind the port now.
  const stream = await ring.listen({ address: LOCAL, port })
  await stream.close()
  t.equal(openFds(), fds, 'no descriptor left open')
})

t.test('errors arrive as error notifications, with a code, never thrown from subscribe()', async (t) => {
  const holder = await ring.listen({ address: LOCAL })
  t.teardown(() => holder.close())
  const port = holder.address().port

  for (const [name, create] of [
    ['fromDatagrams', fromDatagrams],
    ['fromDatagramBatches', fromDatagramBatches],
  ]) {
    let onListeningCalled = false
    const inUse = await errorOf(create({ address: LOCAL, port, onListening: () => (onListeningCalled = true) }))
    t.equal(inUse.code, 'EADDRINUSE', `${name}: a port in use`)
    t.equal(inUse.syscall, 'bind')
    t.type(inUse.errno, 'number')
    t.notOk(onListeningCalled, 'onListening is for bound sockets only')

    t.match(await errorOf(create({ ringSize: 0 })), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `${name}: ringSize 0`)
    t.match(await errorOf(create({ port: 'x' })), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, `${name}: port 'x'`)
    t.match(await errorOf(create({ address: 'example.org' })), { code: 'ERR_INVALID_ARG_VALUE' }, `${name}: a host name`)
    t.match(await errorOf(create({ onListening: 5 })), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, `${name}: onListening`)
    t.match(await errorOf(create(null)), { code: 'ERR_INVALID_ARG_TYPE' }, `${name}: null`)
    t.match(await errorOf(create(Readable.from([]))), { code: 'ERR_INVALID_ARG_TYPE' }, `${name}: a Readable that is no DatagramStream`)
  }

  const failed = listening()
  const observable = fromDatagrams({ address: LOCAL, port, onListening: failed.onListening })
  await errorOf(observable)
  await holder.close()
  // Cold: the same Observable, subscribed again once the port is free, binds.
  const sub = observable.subscribe()
  t.equal((await failed.ready).address().port, port)
  sub.unsubscribe()
})

t.test('an AbortSignal: aborted before subscribing is an AbortError; aborting later completes and closes', async (t) => {
  const aborted = AbortSignal.abort()
  t.match(await errorOf(fromDatagrams({ address: LOCAL, signal: aborted })), { name: 'AbortError', code: 'ABORT_ERR' })

  const controller = new AbortController()
  const { ready, onListening } = listening()
  const done = lastValueFrom(fromDatagrams({ address: LOCAL, signal: controller.signal, onListening }).pipe(toArray()))
  const handle = await ready
  controller.abort()
  t.strictSame(await done, [], 'completed')
  await handle.closed
  t.throws(() => handle.address(), { code: 'ERR_DGRAM_RING_CLOSED' })
})

for (const backend of backends) {
  t.test(`${backend}: a flood through mergeMapWithBackpressure(async, 4): bounded, and received + kernelDrops === sent`, async (t) => {
    if (process.platform !== 'linux') return t.pass('the flood sender and kernelDrops are Linux-only')
    const ringSize = 64
    const concurrency = 4
    const { ready, onListening } = listening()
    let running = 0
    let maxRunning = 0
    let finished = 0
    let over = 0 // checks that found more datagrams in JS (running or queued) plus posted than the ring has
    let results = 0
    let failure
    // received − finished: what the pipeline holds, running or queued.
    const check = () => {
      const { posted, received } = handle.stats()
      if (posted + received - finished > ringSize) over++
    }
    const subscription = fromDatagrams({ address: LOCAL, backend, ringSize, recvBufferSize: 64 * 1024, onListening })
      .pipe(
        mergeMapWithBackpressure(async (d) => {
          running++
          maxRunning = Math.max(maxRunning, running)
          check()
          await sleep(1)
          check()
          running--
          finished++
          return d.data.length
        }, concurrency),
      )
      .subscribe({ next: () => results++, error: (error) => (failure = error) })
    t.teardown(() => subscription.unsubscribe())
    const handle = await ready

    global.gc?.()
    const rssBefore = process.memoryUsage().rss
    let rssPeak = rssBefore
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 10)
    const { sent } = await blast({ port: handle.address().port, size: 64, seconds: 1, rate: 150_000 })
    // The kernel's queue drains through the slow pipeline; then every datagram was received or dropped.
    await until(() => {
      const stats = handle.stats()
      return stats.received + stats.kernelDrops === sent && results === stats.received
    })
    clearInterval(sampler)
    const stats = handle.stats()

    t.equal(failure, undefined)
    t.equal(maxRunning, concurrency, `at most ${concurrency} projects ran at once, and that many did`)
    t.equal(over, 0, `running + queued + posted never exceeded the ring (${finished} projects checked twice)`)
    t.ok(stats.peakPosted <= ringSize && stats.posted <= ringSize, `posted ${stats.posted}, peakPosted ${stats.peakPosted} ≤ ${ringSize}`)
    t.ok(stats.kernelDrops > 0, `the slow pipeline made the kernel drop (${stats.kernelDrops} of ${sent})`)
    t.equal(stats.received + stats.kernelDrops, sent, `received ${stats.received} + kernelDrops ${stats.kernelDrops} === sent ${sent}`)
    t.equal(results, stats.received, 'every received datagram went through the project')
    t.equal(stats.posted, ringSize, 'once drained, every buffer is posted again: nothing held is leaked')
    // Plain mergeMap queues most of the flood (bench/rx-memory.mjs: 40 to 90 MiB at this rate); this holds 64 at most.
    const growth = rssPeak - rssBefore
    t.ok(growth < 32 * 2 ** 20, `RSS grew ${(growth / 2 ** 20).toFixed(1)} MiB (< 32 MiB)`)
  })
}

t.test('on a ring source, results, errors and completion follow mergeMap', async (t) => {
  const sender = client(t)

  t.test('concurrency 1 keeps order, as concatMap', async (t) => {
    const { ready, onListening } = listening()
    const count = 50
    const results = firstValueFrom(
      fromDatagrams({ address: LOCAL, ringSize: 16, onListening }).pipe(
        mergeMapWithBackpressure(async (d, index) => {
          await sleep(index % 3)
          return `${index}:${d.data}`
        }, 1),
        take(count),
        toArray(),
        timeout(20_000),
      ),
    )
    const handle = await ready
    await sendAll(sender, numbered(count), handle.address().port, LOCAL)
    t.strictSame(await results, Array.from({ length: count }, (_, i) => `${i}:${i}`))
    await handle.closed
  })

  t.test('a synchronous project with several results each, and the ring fully posted afterwards', async (t) => {
    const { ready, onListening } = listening()
    const got = []
    const subscription = fromDatagrams({ address: LOCAL, ringSize: 4, onListening })
      .pipe(mergeMapWithBackpressure((d) => [`${d.data}a`, `${d.data}b`], 2))
      .subscribe((value) => got.push(value))
    const handle = await ready
    await sendAll(sender, numbered(20), handle.address().port, LOCAL)
    await until(() => got.length === 40)
    t.strictSame(got, numbered(20).flatMap((b) => [`${b}a`, `${b}b`]))
    t.equal(handle.stats().posted, 4)
    subscription.unsubscribe()
    await handle.closed
  })

  t.test('a project that throws or fails errors the output and closes the ring', async (t) => {
    for (const fail of [
      (d) => {
        throw new Error(`bad ${d.data}`)
      },
      async (d) => {
        await sleep(1)
        throw new Error(`bad ${d.data}`)
      },
    ]) {
      const { ready, onListening } = listening()
      const seen = []
      const failed = errorOf(
        fromDatagrams({ address: LOCAL, onListening }).pipe(
          mergeMapWithBackpressure((d) => (d.data.toString() === '2' ? fail(d) : EMPTY), 4),
          map((value) => seen.push(value)),
        ),
      )
      const handle = await ready
      await sendAll(sender, numbered(5), handle.address().port, LOCAL)
      t.match(await failed, { message: 'bad 2' })
      t.strictSame(seen, [])
      await handle.closed
    }
  })

  t.test('when the source completes (abort), the output completes after the projects in flight', async (t) => {
    const controller = new AbortController()
    const { ready, onListening } = listening()
    let running = 0
    const results = lastValueFrom(
      fromDatagrams({ address: LOCAL, signal: controller.signal, onListening }).pipe(
        mergeMapWithBackpressure(async (d) => {
          running++
          await sleep(50)
          running--
          return d.data.toString()
        }, 2),
        toArray(),
      ),
    )
    const handle = await ready
    await sendAll(sender, numbered(3), handle.address().port, LOCAL)
    await until(() => running === 2)
    controller.abort()
    t.strictSame((await results).sort(), ['0', '1', '2'], 'the queued datagram too')
    await handle.closed
  })
})

t.test('on any other source, mergeMapWithBackpressure is mergeMap', async (t) => {
  // Virtual time: notifications, their frames, and when each inner is subscribed and unsubscribed.
  const inners = { a: '--x--y|', b: '-x|', c: '(xy|)', d: '---x#', e: 'x-y-', f: '|' }
  const sources = ['-a-b-c-|', 'abc--f|', '-a-b-#', 'a-b-e---c-|', '-a-d-b-c|', '(abc)-(ab)-|', 'e-a-b-c-a']
  const trace = (operator, source, concurrency, { throwOn, unsubscribeAt } = {}) => {
    const scheduler = new TestScheduler(assert.deepStrictEqual)
    return scheduler.run(({ cold }) => {
      const events = []
      const made = []
      const outer = cold(source)
      const project = (value, index) => {
        if (value === throwOn) throw new Error(`threw on ${value}`)
        const inner = cold(inners[value], { x: `${value}${index}x`, y: `${value}${index}y` }, new Error(`${value} failed`))
        made.push(inner)
        return inner
      }
      const subscription = outer.pipe(operator(project, concurrency)).subscribe({
        next: (value) => events.push([scheduler.now(), value]),
        error: (error) => events.push([scheduler.now(), 'error', error.message]),
        complete: () => events.push([scheduler.now(), 'complete']),
      })
      if (unsubscribeAt !== undefined) scheduler.schedule(() => subscription.unsubscribe(), unsubscribeAt)
      return { events, outer: outer.subscriptions, made }
    })
  }
  const plain = (result) => ({ ...result, made: result.made.map((inner) => inner.subscriptions) })
  let cases = 0
  for (const source of sources) {
    for (const concurrency of [1, 2, 3, Infinity, undefined]) {
      for (const extra of [{}, { throwOn: 'b' }, { unsubscribeAt: 5 }]) {
        const expected = plain(trace(mergeMap, source, concurrency, extra))
        const actual = plain(trace(mergeMapWithBackpressure, source, concurrency, extra))
        t.same(actual, expected, `${source} concurrency ${concurrency} ${JSON.stringify(extra)}`)
        cases++
      }
    }
  }
  t.equal(cases, sources.length * 15)

  t.test('Promises and arrays as ObservableInput, and a ring source behind another operator', async (t) => {
    const project = (n) => (n % 2 ? Promise.resolve(n * 10) : [n, -n])
    for (const concurrency of [1, 2, undefined]) {
      const expected = await lastValueFrom(from([1, 2, 3, 4]).pipe(mergeMap(project, concurrency), toArray()))
      t.strictSame(await lastValueFrom(from([1, 2, 3, 4]).pipe(mergeMapWithBackpressure(project, concurrency), toArray())), expected)
    }
    // Behind map() the ring is out of sight: plain mergeMap, so auto-regrant keeps the whole ring posted.
    const sender = client(t)
    const { ready, onListening } = listening()
    const held = []
    const subscription = fromDatagrams({ address: LOCAL, ringSize: 8, onListening })
      .pipe(
        map((d) => d.data.toString()),
        mergeMapWithBackpressure((text) => new Promise((resolve) => held.push(() => resolve(text))), 1),
      )
      .subscribe()
    const handle = await ready
    await sendAll(sender, numbered(3), handle.address().port, LOCAL)
    await until(() => handle.stats().received === 3)
    t.equal(handle.stats().posted, 8, 'not credited: the ring stays posted while 3 are held')
    t.equal(held.length, 1)
    subscription.unsubscribe()
    await handle.closed
  })
})

/** Sends every buffer at once (one burst the receiver reads in batches); resolves once all are sent. */
function burst(socket, buffers, port) {
  return Promise.all(buffers.map((buffer) => new Promise((resolve, reject) => socket.send(buffer, port, LOCAL, (e) => (e ? reject(e) : resolve())))))
}

t.test('fromDatagramBatches emits whole native batches, in order', async (t) => {
  const sender = client(t)
  const ringSize = 16
  const count = 400
  const { ready, onListening } = listening()
  const batches = []
  const subscription = fromDatagramBatches({ address: LOCAL, ringSize, recvBufferSize: 1 << 20, onListening }).subscribe((batch) => batches.push(batch))
  const handle = await ready
  await burst(sender, numbered(count), handle.address().port)
  await until(() => handle.stats().received === count)
  subscription.unsubscribe()
  await handle.closed
  t.ok(batches.every((batch) => batch instanceof ring.DatagramBatch && batch.length >= 1 && batch.length <= ringSize))
  t.ok(batches.some((batch) => batch.length > 1), `several datagrams a batch (longest ${Math.max(...batches.map((b) => b.length))})`)
  t.equal(batches.length, handle.stats().batches, 'one emission a native batch')
  t.strictSame(texts(batches.flatMap((batch) => [...batch])), counting(count))
})

t.test('fromDatagramBatches with mergeMapWithBackpressure: a held batch holds its datagrams\' buffers', async (t) => {
  const sender = client(t)
  const ringSize = 16
  const count = 400
  const { ready, onListening } = listening()
  let datagrams = 0
  let over = 0
  let longest = 0
  const subscription = fromDatagramBatches({ address: LOCAL, ringSize, recvBufferSize: 1 << 20, onListening })
    .pipe(
      mergeMapWithBackpressure(async (batch) => {
        longest = Math.max(longest, batch.length)
        const { posted, received } = handle.stats()
        if (posted + received - datagrams > ringSize) over++
        await sleep(2)
        datagrams += batch.length
      }, 1),
    )
    .subscribe()
  const handle = await ready
  await burst(sender, numbered(count), handle.address().port)
  await until(() => datagrams === count)
  t.equal(datagrams, count)
  t.ok(longest > 1, `batches of several datagrams (longest ${longest})`)
  t.equal(over, 0, 'posted + the datagrams of running and queued batches never exceeded the ring')
  t.equal(handle.stats().posted, ringSize, 'all released once done')
  t.equal(handle.stats().kernelDrops, NO_DROPS)
  subscription.unsubscribe()
  await handle.closed
})

t.test("the README's StatsD example: groupBy + bufferTime", async (t) => {
  const sender = client(t)
  // As in README.md, with a signal so that the test can end the windows.
  const parse = (line) => {
    const match = /^([^:|]+):(-?[0-9.]+)\|(c|g|ms)/.exec(line)
    return match && { name: match[1], value: Number(match[2]), type: match[3] }
  }
  const controller = new AbortController()
  const { ready, onListening } = listening()
  const summaries = lastValueFrom(
    fromDatagrams({ address: LOCAL, signal: controller.signal, onListening }).pipe(
      mergeMap((d) => d.data.toString().split('\n')),
      map(parse),
      filter(Boolean),
      groupBy((metric) => metric.name),
      mergeMap((metric) =>
        metric.pipe(
          bufferTime(10_000),
          filter((window) => window.length > 0),
          map((window) => ({ name: metric.key, count: window.length, sum: window.reduce((sum, m) => sum + m.value, 0) })),
        ),
      ),
      toArray(),
    ),
  )
  const handle = await ready
  const lines = ['hits:1|c', 'hits:2|c\nlatency:12|ms', 'garbage', 'latency:30|ms|@0.5\nhits:1|c']
  await sendAll(sender, lines.map((line) => Buffer.from(line)), handle.address().port, LOCAL)
  await until(() => handle.stats().received === lines.length)
  controller.abort()
  const byName = Object.fromEntries((await summaries).map((s) => [s.name, s]))
  t.strictSame(byName, { hits: { name: 'hits', count: 3, sum: 4 }, latency: { name: 'latency', count: 2, sum: 42 } })
})

// DatagramStream sources need the stream's take-over hook (proposed for lib/stream.ts).
const hasTakeOver = typeof ring.DatagramStream.prototype[Symbol.for('dgram-ring.takeOver')] === 'function'

t.test('a DatagramStream source: taken over, closed on unsubscribe', { skip: !hasTakeOver && 'DatagramStream has no take-over hook yet' }, async (t) => {
  const sender = client(t)
  const stream = await ring.listen({ address: LOCAL, ringSize: 8 })
  const closed = new Promise((resolve) => stream.once('close', resolve))
  const observable = fromDatagrams(stream)
  const got = firstValueFrom(observable.pipe(take(100), toArray(), timeout(20_000)))
  t.match(await errorOf(observable), { code: 'ERR_INVALID_ARG_VALUE' }, 'a stream serves one subscription')
  await sendAll(sender, numbered(100), stream.address().port, LOCAL)
  t.strictSame(texts(await got), counting(100))
  await closed
  t.equal(stream.stats().received, 100)
  t.equal(stream.readableLength, 0, 'nothing went through the Readable')
  t.match(await errorOf(fromDatagrams(stream)), { code: 'ERR_DGRAM_RING_CLOSED' }, 'a closed stream')

  const stream2 = await ring.listen({ address: LOCAL, ringSize: 8 })
  const ended = lastValueFrom(fromDatagrams(stream2).pipe(toArray()))
  await stream2.close()
  t.strictSame(await ended, [], "the stream's own close completes the subscription")
})

t.test('a DatagramStream source with mergeMapWithBackpressure', { skip: !hasTakeOver && 'DatagramStream has no take-over hook yet' }, async (t) => {
  const sender = client(t)
  const ringSize = 8
  const stream = await ring.listen({ address: LOCAL, ringSize, recvBufferSize: 1 << 20 })
  let over = 0
  let done = 0
  const subscription = fromDatagrams(stream)
    .pipe(
      mergeMapWithBackpressure(async () => {
        const { posted, received } = stream.stats()
        if (posted + received - done > ringSize) over++
        await sleep(1)
        done++
      }, 2),
    )
    .subscribe()
  await burst(sender, numbered(200), stream.address().port)
  await until(() => done === 200)
  t.equal(done, 200)
  t.equal(over, 0)
  t.equal(stream.stats().posted, ringSize)
  subscription.unsubscribe()
  await new Promise((resolve) => stream.once('close', resolve))
})
