// dgram-ring/rx: the ring as RxJS Observables. Credits follow the subscriber:
// a synchronous one gets the whole ring back after every batch, and
// mergeMapWithBackpressure takes what it holds (running or queued) out of the
// ring, so a slow pipeline leaves buffers unposted instead of queueing
// datagrams in memory. RxJS never calls an iterator's return() on unsubscribe
// (rxjs#5998), which is why these are Observables built on the socket rather
// than from(stream).
import { Readable } from 'node:stream'
import { Observable, from, mergeMap, type ObservableInput, type ObservedValueOf, type OperatorFunction, type Subscriber } from 'rxjs'
import type { Datagram, DatagramBatch } from './datagram'
import { abortError, closedError, invalidArgType, outOfRange, type CodedError, type DgramRingErrorCode } from './errors'
import { RingSocket, resolveOptions, type AddressInfo, type ListenOptions, type ResolvedOptions, type RingStats } from './socket'
import { kTakeOver, type DatagramStream } from './stream'

/** One subscription's ring, as {@link FromDatagramsOptions.onListening} gets it. */
export interface RingHandle {
  /** The receive backend in use (`'recvmmsg'`, `'iocp'`, …). */
  readonly backend: string
  /** Buffers in the ring. */
  readonly ringSize: number
  /** The bound address (the port the OS picked for `port: 0`). Throws `ERR_DGRAM_RING_CLOSED` once closed. */
  address(): AddressInfo
  /** The ring's counters, drops included; after close, their final values. */
  stats(): RingStats
  /** Resolves once the subscription ended and the socket is closed: its port is free. */
  readonly closed: Promise<void>
}

/**
 * Options of {@link fromDatagrams} and {@link fromDatagramBatches}: those of
 * `listen()`, opened anew for every subscription. `highWaterMark` has no
 * effect here (credits follow the subscriber). `signal` ends every
 * subscription: aborting completes it; subscribing once aborted errors with an
 * AbortError.
 */
export interface FromDatagramsOptions extends ListenOptions {
  /** Called once a subscription's socket is bound, before any datagram: for its address and stats. */
  onListening?: (ring: RingHandle) => void
}

/**
 * Datagrams received on a UDP socket, as a cold Observable.
 *
 * With options, every subscription opens and binds its own socket; a
 * subscription opened on a port another subscription is still closing waits
 * for that close first (so `switchMap` and `retry` can rebind the port at
 * once). With a {@link DatagramStream}, the subscription takes the stream's
 * socket over: batches go to the subscriber instead of the Readable, which
 * keeps only what it had already buffered; the stream's `stats()` and
 * `address()` still answer, and its close, abort or error end the
 * subscription. A stream serves one subscription.
 *
 * Unsubscribing closes the socket (the stream, if one was given) and frees
 * the port. Failures arrive as error notifications, never thrown from
 * `subscribe()`: invalid options (TypeError/RangeError with a `code`) and
 * system errors (`code` `EADDRINUSE`, `EACCES`, …).
 *
 * Backpressure: a subscriber that handles each datagram synchronously gets
 * the whole ring posted again after every batch: it sees every datagram, in
 * order, at full speed. Asynchronous work belongs in
 * {@link mergeMapWithBackpressure}, applied directly to this Observable.
 *
 * Datagrams of one batch share one memory slab: copy (`Buffer.from(d.data)`)
 * payloads kept for long.
 *
 * @example
 * fromDatagrams({ port: 5140 }).subscribe((d) => console.log(d.remoteAddress, d.data))
 */
export function fromDatagrams(source: FromDatagramsOptions | DatagramStream): Observable<Datagram> {
  return ringObservable(source, DATAGRAMS)
}

/**
 * Like {@link fromDatagrams}, but emits whole native batches (one
 * {@link DatagramBatch} a crossing from the kernel): for consumers that
 * amortise per-item work over a batch. With
 * {@link mergeMapWithBackpressure}, a batch holds as many ring buffers as it
 * has datagrams.
 *
 * @example
 * fromDatagramBatches({ port: 5140 }).subscribe((batch) => {
 *   for (const d of batch) handle(d)
 * })
 */
export function fromDatagramBatches(source: FromDatagramsOptions | DatagramStream): Observable<DatagramBatch> {
  return ringObservable(source, BATCHES)
}

/**
 * `mergeMap(project, concurrency)` that, applied directly to a
 * {@link fromDatagrams} (or {@link fromDatagramBatches}) Observable, takes
 * the datagrams it holds out of the ring's credits: while `k` projects run
 * and `q` datagrams wait for a slot, at most `ringSize − k − q` buffers are
 * posted. Batches go straight from the ring into the operator, with no
 * buffer in between, so the datagrams in JS plus the buffers posted never
 * exceed `ringSize`: a slow project leaves the kernel's queue to overflow
 * (counted in `stats().kernelDrops`) instead of growing memory.
 *
 * Results, errors and completion follow `mergeMap`'s rules. On any other
 * source (including a ring Observable behind other operators) this is
 * exactly `mergeMap(project, concurrency)`.
 *
 * @param project maps a datagram (and its index) to an Observable, Promise, or other ObservableInput
 * @param concurrency projects running at once, an integer ≥ 1 or `Infinity`; default unlimited (then the ring alone bounds them)
 * @throws TypeError `ERR_INVALID_ARG_TYPE` if `project` is no function or `concurrency` no number;
 *   RangeError `ERR_OUT_OF_RANGE` if `concurrency` is below 1, NaN, or not an integer
 *
 * @example
 * fromDatagrams({ port: 5140 })
 *   .pipe(mergeMapWithBackpressure((d) => store(d.data), 8))
 *   .subscribe()
 */
export function mergeMapWithBackpressure<T, O extends ObservableInput<unknown>>(
  project: (value: T, index: number) => O,
  concurrency = Infinity,
): OperatorFunction<T, ObservedValueOf<O>> {
  if (typeof project !== 'function') throw invalidArgType('project', 'of type function', project, 'argument')
  if (typeof concurrency !== 'number') throw invalidArgType('concurrency', 'of type number', concurrency, 'argument')
  if (!(concurrency >= 1) || (!Number.isInteger(concurrency) && concurrency !== Infinity)) {
    throw outOfRange('concurrency', 'an integer >= 1, or Infinity', concurrency, 'argument')
  }
  return (source) => {
    const credited = (source as Observable<T> & Partial<Credited<T>>)[kCredited]
    if (credited === undefined) return source.pipe(mergeMap(project, concurrency))
    return new Observable<ObservedValueOf<O>>((subscriber) => {
      const { items, release } = credited()
      // mergeMap's own bookkeeping (rxjs mergeInternals), plus release() when a project is done.
      const queue: T[] = []
      let active = 0
      let index = 0
      let sourceDone = false
      const checkComplete = (): void => {
        if (sourceDone && active === 0 && queue.length === 0) subscriber.complete()
      }
      const run = (value: T): void => {
        active++
        let innerDone = false
        const inner = from(project(value, index++)).subscribe({
          next: (result) => subscriber.next(result),
          error: (error: unknown) => subscriber.error(error),
          complete: () => {
            innerDone = true
          },
        })
        subscriber.add(inner)
        // After the inner's own finalizers, as mergeMap does: the next project starts on a torn-down one.
        inner.add(() => {
          if (!innerDone) return
          try {
            active--
            release(value)
            while (queue.length > 0 && active < concurrency) run(queue.shift() as T)
            checkComplete()
          } catch (error) {
            subscriber.error(error)
          }
        })
      }
      subscriber.add(
        items.subscribe({
          next: (value) => {
            try {
              if (active < concurrency) run(value)
              else queue.push(value)
            } catch (error) {
              subscriber.error(error)
            }
          },
          error: (error: unknown) => subscriber.error(error),
          complete: () => {
            sourceDone = true
            checkComplete()
          },
        }),
      )
    })
  }
}

// The hidden side of a ring Observable: mergeMapWithBackpressure finds it by
// this key (a private symbol: pipe()d or foreign Observables lack it).
const kCredited = Symbol('dgram-ring/rx credited')

/** A ring source whose subscriber reports what it still holds. */
interface Credited<T> {
  /** Call once per consumer: `items` is the source, to subscribe once; `release(item)` says the consumer is done with it. */
  [kCredited](): { items: Observable<T>; release(item: T): void }
}

// DatagramStream's take-over hook, as seen on any Readable (it may not have it).
interface TakeOver {
  /** Batches go to `onBatch` from now on and the caller grants credits; undefined if the stream has no socket to give (its close or error follows). */
  [kTakeOver](onBatch: (batch: DatagramBatch) => void): RingSocket | undefined
}

/** What a source emits for a batch, and how many ring buffers one item holds. */
interface Unit<T> {
  count(batch: DatagramBatch): number
  at(batch: DatagramBatch, index: number): T
  weight(item: T): number
}

const DATAGRAMS: Unit<Datagram> = {
  count: (batch) => batch.length,
  at: (batch, index) => batch.at(index) as Datagram,
  weight: () => 1,
}

const BATCHES: Unit<DatagramBatch> = {
  count: () => 1,
  at: (batch) => batch,
  weight: (batch) => batch.length,
}

// Ports of sockets this module is closing, by port: a new subscription on one
// waits for the close, or its bind would fail with EADDRINUSE.
const closingPorts = new Map<number, Promise<void>>()

// Streams a subscription has taken over: a second one would steal the first's batches.
const takenStreams = new WeakSet<Readable>()

function ringObservable<T>(source: FromDatagramsOptions | DatagramStream, unit: Unit<T>): Observable<T> {
  // `onFeed` marks a credited subscription and hands its Feed to the consumer.
  const observe = (onFeed?: (feed: Feed<T>) => void): Observable<T> =>
    new Observable<T>((subscriber) => {
      const feed = new Feed(subscriber, unit, onFeed !== undefined)
      onFeed?.(feed)
      if (source instanceof Readable) feed.takeOver(source)
      else feed.listen(source)
      return () => feed.close()
    })
  const credited: Credited<T> = {
    [kCredited]: () => {
      let feed: Feed<T> | undefined
      return { items: observe((f) => (feed = f)), release: (item) => feed?.release(item) }
    },
  }
  return Object.assign(observe(), credited)
}

/** One subscription: its socket, and the credits its subscriber gets. */
class Feed<T> {
  readonly #subscriber: Subscriber<T>
  readonly #unit: Unit<T>
  readonly #credited: boolean
  #socket: RingSocket | undefined
  #port = 0
  // Ring buffers the subscriber still holds (credited mode; 0 otherwise).
  #held = 0
  // Inside a batch, credits wait for its end: one grant a batch, not one an item.
  #inBatch = false
  #markClosed: () => void = () => {}
  #cleanup: (() => void) | undefined

  constructor(subscriber: Subscriber<T>, unit: Unit<T>, credited: boolean) {
    this.#subscriber = subscriber
    this.#unit = unit
    this.#credited = credited
  }

  /** Options form: validate, then bind (after a close in progress on the same port). */
  listen(options: FromDatagramsOptions): void {
    const subscriber = this.#subscriber
    let resolved: ResolvedOptions
    let onListening: FromDatagramsOptions['onListening']
    try {
      resolved = resolveOptions(options)
      // `options` may be undefined from JavaScript: resolveOptions takes that as {}.
      onListening = (options as FromDatagramsOptions | undefined)?.onListening
      if (onListening !== undefined && typeof onListening !== 'function') {
        throw invalidArgType('onListening', 'of type function', onListening)
      }
    } catch (error) {
      return subscriber.error(error)
    }
    const signal = resolved.signal
    if (signal?.aborted) return subscriber.error(abortError(signal))
    if (signal !== undefined) {
      const onAbort = (): void => subscriber.complete()
      signal.addEventListener('abort', onAbort, { once: true })
      this.#cleanup = () => signal.removeEventListener('abort', onAbort)
    }
    const port = resolved.native.port
    const closing = port === 0 ? undefined : closingPorts.get(port)
    if (closing === undefined) return this.#open(resolved, onListening)
    void closing.then(() => {
      if (!subscriber.closed) this.#open(resolved, onListening)
    })
  }

  #open(options: ResolvedOptions, onListening: FromDatagramsOptions['onListening']): void {
    const subscriber = this.#subscriber
    try {
      const socket = new RingSocket(options, this.#onBatch, (error) => subscriber.error(error))
      this.#socket = socket
      this.#port = socket.address().port
      onListening?.({
        backend: socket.backend,
        ringSize: socket.ringSize,
        address: () => socket.address(),
        stats: () => socket.stats(),
        closed: new Promise((resolve) => (this.#markClosed = resolve)),
      })
    } catch (error) {
      return subscriber.error(error)
    }
    this.#regrant()
  }

  /** Stream form: take the stream's socket; its events end the subscription. */
  takeOver(stream: Readable): void {
    const subscriber = this.#subscriber
    const hook = (stream as Readable & Partial<TakeOver>)[kTakeOver]
    if (typeof hook !== 'function') {
      return subscriber.error(invalidArgType('source', 'ListenOptions or a DatagramStream of this dgram-ring', stream))
    }
    if (stream.destroyed) return subscriber.error(stream.errored ?? closedError('fromDatagrams()'))
    if (takenStreams.has(stream)) return subscriber.error(alreadyTaken())
    takenStreams.add(stream)
    const onError = (error: Error): void => subscriber.error(error)
    const onEnd = (): void => subscriber.complete()
    stream.on('error', onError).on('end', onEnd).on('close', onEnd)
    this.#cleanup = () => {
      stream.off('error', onError).off('end', onEnd).off('close', onEnd)
      void (stream as DatagramStream).close()
    }
    const socket = hook.call(stream, this.#onBatch)
    if (socket === undefined) return
    this.#socket = socket
    this.#port = socket.address().port
    this.#regrant()
  }

  /** Credited mode: the subscriber is done with `item`; its buffers may be posted again. */
  release(item: T): void {
    this.#held -= this.#unit.weight(item)
    this.#regrant()
  }

  /** Teardown: close the socket (or stream) and remember the port until it is free. */
  close(): void {
    const socket = this.#socket
    // Nobody will read what the kernel still holds: throw it away, counted in
    // stats().discarded. Before the cleanup, which closes a taken-over stream
    // (its close() then returns this same promise).
    const closed = socket?.close({ discard: true })
    this.#cleanup?.()
    if (socket === undefined || closed === undefined) return
    const port = this.#port
    const before = closingPorts.get(port)
    const all = before === undefined ? closed : Promise.all([before, closed]).then(() => undefined)
    closingPorts.set(port, all)
    void all.then(() => closingPorts.get(port) === all && closingPorts.delete(port))
    void closed.then(this.#markClosed)
  }

  readonly #onBatch = (batch: DatagramBatch): void => {
    const subscriber = this.#subscriber
    const unit = this.#unit
    this.#inBatch = true
    try {
      const count = unit.count(batch)
      for (let i = 0; i < count && !subscriber.closed; i++) {
        const item = unit.at(batch, i)
        // Held before next(): a synchronous project may release it at once.
        if (this.#credited) this.#held += unit.weight(item)
        subscriber.next(item)
      }
    } finally {
      this.#inBatch = false
    }
    this.#regrant()
  }

  // Every delivered datagram is in #held until released, so granting
  // ringSize − held keeps held + posted ≤ ringSize.
  #regrant(): void {
    const socket = this.#socket
    if (socket !== undefined && !this.#inBatch) socket.grant(socket.ringSize - this.#held)
  }
}

function alreadyTaken(): CodedError {
  const code: DgramRingErrorCode = 'ERR_INVALID_ARG_VALUE'
  return Object.assign(new TypeError('fromDatagrams(): this DatagramStream was already taken over by a subscription; a stream serves one'), { code })
}
