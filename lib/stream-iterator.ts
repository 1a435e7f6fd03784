// `for await (const d of stream)` without an async generator. Readable's own
// iterator is one (node's lib/internal/streams/readable.js,
// createAsyncIterator): each datagram goes through a `yield`, which awaits
// it and settles the request in further microtask turns. This is the same
// state machine written out: read() (the path that tops up the ring's
// credits) while it gives datagrams, else wait for 'readable' or the end,
// and on leaving the loop the same decision to destroy the stream. What a
// datagram costs is then one read() and one resolved promise.
import { finished, type Readable } from 'node:stream'

/** The prototype async generators' objects inherit from (Symbol.asyncIterator, and Symbol.asyncDispose where the runtime has it). */
const AsyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype) as object

function nop(): void {}

/** As node's internal aggregateTwoErrors: both errors when they differ, the outer one first. */
function aggregateTwoErrors(inner: Error | null | undefined, outer: Error): Error {
  if (inner && inner !== outer) {
    const errors = (outer as Error & { errors?: unknown }).errors
    if (Array.isArray(errors)) {
      errors.push(inner)
      return outer
    }
    return Object.assign(new AggregateError([outer, inner], outer.message), { code: (outer as Error & { code?: unknown }).code })
  }
  return inner || outer
}

/**
 * The async iterator of a Readable, with Readable's semantics: a started
 * iterator listens for 'readable' and for the stream's end; leaving it early
 * (`return()`, `throw()`, `break`) destroys the stream unless
 * `destroyOnReturn` is false; an error ends it and is thrown from `next()`;
 * calls made while one is pending wait their turn. Like a generator, it
 * starts on the first `next()`: one returned before that touches nothing.
 */
export class ReadableIterator<T> implements AsyncIterableIterator<T> {
  /** The stream read, as on node's iterator. */
  readonly stream: Readable
  readonly #destroyOnReturn: boolean
  #state: 'suspended' | 'running' | 'done' = 'suspended'
  /** undefined while the stream goes on; null once it ended; the error it failed with. */
  #error: Error | null | undefined = undefined
  #wake: () => void = nop
  #stopWatching: (() => void) | undefined
  /** The pending call, while one waits for the stream; later calls follow it. */
  #busy: Promise<IteratorResult<T>> | undefined

  constructor(stream: Readable, destroyOnReturn: boolean) {
    this.stream = stream
    this.#destroyOnReturn = destroyOnReturn
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#busy !== undefined) return this.#after(() => this.next())
    return this.#next()
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    if (this.#busy !== undefined) return this.#after(() => this.return(value))
    if (this.#state === 'running') this.#leave()
    this.#state = 'done'
    // A generator's return(value) awaits its value.
    return Promise.resolve(value).then((resolved) => ({ value: resolved as T, done: true }))
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    if (this.#busy !== undefined) return this.#after(() => this.throw(error))
    if (this.#state !== 'running') {
      this.#state = 'done'
      return Promise.reject(error)
    }
    return this.#fail(error as Error)
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  readonly #onReadable = (): void => {
    const wake = this.#wake
    this.#wake = nop
    wake()
  }

  #next(): Promise<IteratorResult<T>> {
    if (this.#state === 'done') return Promise.resolve({ value: undefined, done: true })
    if (this.#state === 'suspended') this.#start()
    let chunk: T | null
    try {
      chunk = this.stream.destroyed ? null : (this.stream.read() as T | null)
    } catch (error) {
      return this.#fail(error as Error)
    }
    if (chunk !== null) return Promise.resolve({ value: chunk, done: false })
    if (this.#error) return this.#fail(this.#error)
    if (this.#error === null) {
      this.#leave()
      return Promise.resolve({ value: undefined, done: true })
    }
    // Nothing buffered: wait for 'readable' or the end, then read again.
    const waiting = new Promise<void>((resolve) => {
      this.#wake = resolve
    }).then(() => this.#next())
    this.#busy = waiting
    const idle = (): void => {
      if (this.#busy === waiting) this.#busy = undefined
    }
    waiting.then(idle, idle)
    return waiting
  }

  #after(call: () => Promise<IteratorResult<T>>): Promise<IteratorResult<T>> {
    return (this.#busy as Promise<IteratorResult<T>>).then(call, call)
  }

  #start(): void {
    this.#state = 'running'
    this.stream.on('readable', this.#onReadable)
    this.#stopWatching = finished(this.stream, { writable: false }, (error) => {
      this.#error = error ? aggregateTwoErrors(this.#error, error) : null
      this.#onReadable()
    })
  }

  /** The loop failed with `error` (the stream's, or one thrown in): leave, and reject with it. */
  #fail(error: Error): Promise<IteratorResult<T>> {
    this.#error = aggregateTwoErrors(this.#error, error)
    this.#leave()
    return Promise.reject(this.#error)
  }

  /** A generator's `finally`: destroy the stream, or only stop listening to it. */
  #leave(): void {
    this.#state = 'done'
    const error = this.#error
    const autoDestroy = (this.stream as Readable & { _readableState: { autoDestroy: boolean } })._readableState.autoDestroy
    if ((error || this.#destroyOnReturn) && (error === undefined || autoDestroy)) {
      this.stream.destroy()
    } else {
      this.stream.off('readable', this.#onReadable)
      this.#stopWatching?.()
    }
  }
}
Object.setPrototypeOf(ReadableIterator.prototype, AsyncIteratorPrototype)
