// DatagramStream: the ring as a Readable in object mode. Backpressure is one
// path: the ring gets `highWaterMark − readableLength` credits, so for-await,
// pipeline() and pause() all decide how many buffers the kernel may fill.
//
// Readable calls `_read()` once and then not again until something is pushed,
// and it calls it from `read()` before taking the item out of the buffer.
// So credits are also topped up after every `read()` (the one path every
// consumer takes, flowing mode included), in steps (lib/credits.ts).
import { Readable } from 'node:stream'
import type { Datagram, DatagramBatch } from './datagram'
import { RingSocket, resolveOptions, type AddressInfo, type ListenOptions, type RingStats } from './socket'
import { abortError, checkOptionsArgument, closedError, invalidArgType, invalidState, outOfRange } from './errors'
import { iterateBatches } from './batches'
import { Credits } from './credits'
import { ReadableIterator } from './stream-iterator'
import { DatagramSender, type SendOptions } from './sender'

/**
 * @internal The key of DatagramStream's take-over hook, for dgram-ring/rx. A
 * registered symbol: the optional rx module finds the hook without importing
 * this module's internals.
 */
export const kTakeOver: unique symbol = Symbol.for('dgram-ring.takeOver')

const NO_STATS: RingStats = { received: 0, bytes: 0, truncated: 0, batches: 0, discarded: 0, transientErrors: 0, posted: 0, peakPosted: 0, coalesced: 0 }

/**
 * A bound UDP socket as a Readable of {@link Datagram}s (object mode).
 *
 * Events: `'listening'` once bound (or `'error'` if binding failed), the
 * Readable events, `'warning'` for a receive that failed for a passing reason
 * (`ENOMEM`, `ENOBUFS`: counted in `stats().transientErrors`, the ring goes
 * on), and `'close'` last.
 *
 * @example
 * const stream = new DatagramStream({ port: 5140 })
 * stream.on('listening', () => console.log(stream.address()))
 * for await (const d of stream) console.log(d.remoteAddress, d.data)
 */
export class DatagramStream extends Readable {
  #socket: RingSocket | undefined
  /** Set once dgram-ring/rx took the socket over: it gets the batches and grants the credits. */
  #takenBy: ((batch: DatagramBatch) => void) | undefined
  /** The ring's credits, while the Readable is what reads it. */
  #credits: Credits | undefined
  #closing: Promise<void> | undefined
  #signal: AbortSignal | undefined
  #onAbort: (() => void) | undefined

  /**
   * Validates `options` (throwing a TypeError/RangeError with a `code`) and
   * binds. A system failure (`EADDRINUSE`, …) is emitted as `'error'`.
   */
  constructor(options?: ListenOptions) {
    const resolved = resolveOptions(options)
    super({ objectMode: true, highWaterMark: resolved.highWaterMark })
    const signal = resolved.signal
    if (signal?.aborted) {
      process.nextTick(() => this.destroy(abortError(signal)))
      return
    }
    try {
      this.#socket = new RingSocket(
        resolved,
        (batch) => this.#push(batch),
        (error) => this.destroy(error),
        (warning) => this.emit('warning', warning),
      )
      this.#credits = new Credits(this.#socket, resolved.highWaterMark)
    } catch (error) {
      process.nextTick(() => this.destroy(error as Error))
      return
    }
    if (signal) {
      this.#signal = signal
      this.#onAbort = () => void this.close()
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
    process.nextTick(() => {
      if (!this.destroyed) this.emit('listening')
    })
  }

  /** The receive backend in use (`'recvmmsg'`, `'iocp'`, …); undefined if the socket never opened. */
  get backend(): string | undefined {
    return this.#socket?.backend
  }

  /** The kernel's receive queue in bytes, as the OS reports it (see {@link RingSocket.recvBufferSize}); undefined once closed. */
  get recvBufferSize(): number | undefined {
    return this.#socket?.recvBufferSize
  }

  /** The bound address. Throws `ERR_DGRAM_RING_CLOSED` once closed. */
  address(): AddressInfo {
    if (this.#socket === undefined) throw closedError('address()')
    return this.#socket.address()
  }

  /** The ring's counters; after close, their final values. */
  stats(): RingStats {
    return this.#socket?.stats() ?? { ...NO_STATS }
  }

  /**
   * Closes the socket and ends the stream. What the kernel holds at the
   * moment of the call is read into the stream first (bounded by the receive
   * buffer; datagrams arriving meanwhile are not waited for and count as
   * kernel drops), so a graceful stop loses nothing that reached the socket.
   * Datagrams received stay readable, then `'end'` and `'close'` follow (at
   * once if nobody is reading). Resolves once the socket is closed and its
   * port free. Idempotent, also after `destroy()`, which instead throws away
   * what the kernel holds (counted in `stats().discarded`).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#forgetSignal()
    if (this.#socket === undefined) return
    await this.#socket.close()
    if (this.destroyed || this.readableEnded) return
    this.push(null)
    // Nobody will read what is buffered: end now rather than wait for a reader.
    if (this.listenerCount('data') === 0 && this.listenerCount('readable') === 0) this.destroy()
  }

  /**
   * Sends `data` (a Buffer, TypedArray, DataView or string) to `address`
   * (numeric, or `'localhost'`) and `port` from this stream's socket and port;
   * `options.from` picks the source address and `options.interfaceIndex` the
   * interface (`IP_PKTINFO` / `IPV6_PKTINFO`). Resolves once the kernel took
   * it. Sends of one turn go out together (one `sendmmsg`, UDP GSO for
   * same-size runs to one destination on Linux); with no room in the socket
   * they wait, in order, and none is dropped. Rejects as
   * {@link RingSocket.send} does: bad arguments (TypeError/RangeError with a
   * `code`), `ERR_DGRAM_RING_CLOSED` once closed, or this datagram's own
   * system error (`EACCES`, `EMSGSIZE` beyond 65507 bytes over IPv4, …).
   *
   * @example
   * await stream.send('pong', 5300, '192.0.2.7', { from: '192.0.2.1' })
   */
  send(data: string | ArrayBufferView, port: number, address: string, options?: SendOptions): Promise<void> {
    if (this.#socket === undefined) return Promise.reject(closedError('send()'))
    return this.#socket.send(data, port, address, options)
  }

  /**
   * A Writable (object mode) of `{ data, port, address, from?, interfaceIndex? }`
   * that sends each from this stream's socket, for `pipeline()`. Its
   * backpressure is the socket's: a write completes once the kernel took the
   * datagram, so a full socket holds the pipeline back and nothing is
   * dropped. Writes buffered meanwhile go out together. A datagram that fails
   * fails the Writable with its error. Ending or destroying it leaves the
   * stream open. `highWaterMark` (default 1024) bounds the datagrams it buffers.
   *
   * @example
   * await pipeline(stream, async function* (datagrams) {
   *   for await (const d of datagrams) yield { data: d.data, port: d.remotePort, address: d.remoteAddress, from: d.localAddress }
   * }, stream.sender())
   */
  sender(options?: { highWaterMark?: number }): DatagramSender {
    let highWaterMark = 1024
    checkOptionsArgument(options)
    if (options?.highWaterMark !== undefined) {
      const h = options.highWaterMark
      if (typeof h !== 'number') throw invalidArgType('highWaterMark', 'of type number', h)
      if (!Number.isInteger(h) || h < 1 || h > 2 ** 31 - 1) throw outOfRange('highWaterMark', 'an integer >= 1 and <= 2147483647', h)
      highWaterMark = h
    }
    return new DatagramSender((data, port, address, sendOptions) => this.send(data, port, address, sendOptions), highWaterMark)
  }

  /** While it waits for datagrams, the stream keeps the event loop alive (as a `node:dgram` socket does); `unref()` lets the process exit regardless. */
  unref(): this {
    this.#socket?.unref()
    return this
  }

  /** Undoes `unref()`. */
  ref(): this {
    this.#socket?.ref()
    return this
  }

  #forgetSignal(): void {
    if (this.#signal && this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort)
    this.#signal = undefined
  }

  /**
   * @internal For dgram-ring/rx: from now on every batch goes to `onBatch`
   * instead of the Readable, and the stream grants nothing: the caller drives
   * the socket's credits. Errors, close and abort still go through the
   * stream. Returns the socket, or undefined if it never opened (the 'error'
   * event follows) or the stream is closing or destroyed.
   */
  [kTakeOver](onBatch: (batch: DatagramBatch) => void): RingSocket | undefined {
    if (this.#socket === undefined || this.#closing !== undefined || this.destroyed) return undefined
    this.#takenBy = onBatch
    return this.#socket
  }

  /**
   * The stream's datagrams as whole batches, one native crossing each, for
   * consumers that amortise work over many datagrams a turn (parse, then one
   * write). The same credits and backpressure as the Readable: the ring is
   * granted `readableHighWaterMark` less the datagrams of batches not yet
   * taken. It takes the stream over: one consumer a stream, and the stream
   * itself is not read. `close()` ends it after what the kernel held; leaving
   * the loop early destroys the stream; an error is thrown from `next()`.
   * Throws `ERR_INVALID_STATE` if the stream was already taken over or read.
   *
   * With `recycle: true`, a batch's memory goes back to the ring as soon as
   * the next batch is asked for (or the loop ends): the kernel receives into
   * memory that is still in the CPU's caches, instead of fresh memory while
   * the garbage collector has yet to return the old, and its tables and
   * memory are reused instead of made anew. Read or copy what you keep of a
   * batch before moving on: afterwards reading its datagrams throws
   * `ERR_DGRAM_RING_RECYCLED`, and a `data` view taken in time may show other
   * datagrams' bytes (never freed memory).
   *
   * @example
   * for await (const batch of stream.batches()) {
   *   for (const d of batch) lines.push(d.data.toString())
   *   out.write(lines.join('\n') + '\n'); lines.length = 0
   * }
   */
  batches(options?: BatchesOptions): AsyncIterableIterator<DatagramBatch> {
    let recycle = false
    checkOptionsArgument(options)
    if (options?.recycle !== undefined) {
      if (typeof options.recycle !== 'boolean') throw invalidArgType('recycle', 'of type boolean', options.recycle)
      recycle = options.recycle
    }
    if (this.#takenBy !== undefined || this.readableDidRead || this.readableFlowing) {
      throw invalidState('batches(): this stream is already being read; a stream serves one consumer')
    }
    const self = this
    return iterateBatches({
      recycle,
      readableHighWaterMark: this.readableHighWaterMark,
      get destroyed() {
        return self.destroyed
      },
      get errored() {
        return self.errored
      },
      takeOver: (onBatch) => this[kTakeOver](onBatch),
      onEnd: (listener) => {
        const onError = (error: Error): void => listener(error)
        const onClose = (): void => listener()
        this.once('error', onError).once('close', onClose)
        return () => this.off('error', onError).off('close', onClose)
      },
      destroy: () => this.destroy(),
    })
  }

  #push(batch: DatagramBatch): void {
    if (this.#takenBy !== undefined) return this.#takenBy(batch)
    this.#credits?.arrived(batch.length)
    // Every datagram of the batch was granted: push them all, whatever push()
    // says, and whatever a 'data' listener (or a piped Transform) throws: the
    // first exception propagates once the whole batch is in the stream.
    let failed = false
    let failure: unknown
    for (let i = 0; i < batch.length; i++) {
      try {
        this.push(batch.at(i))
      } catch (error) {
        if (!failed) failure = error
        failed = true
      }
    }
    if (failed) throw failure
  }

  #topUp(): void {
    if (this.#takenBy === undefined) this.#credits?.topUp(this.readableLength)
  }

  override _read(): void {
    this.#topUp()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#forgetSignal()
    if (this.#socket === undefined) return callback(error)
    // Nothing will read what the kernel still holds: throw it away, counted.
    this.#socket.close({ discard: true }).then(() => callback(error))
  }

  override read(size?: number): Datagram | null {
    const datagram = super.read(size)
    this.#topUp()
    return datagram
  }

  /**
   * The datagrams, for `for await`: Readable's iterator semantics (leaving
   * the loop early destroys the stream, an error is thrown from `next()`,
   * `close()` ends it after what was received), at a fraction of its cost a
   * datagram (lib/stream-iterator.ts).
   */
  override [Symbol.asyncIterator](): AsyncIterableIterator<Datagram> {
    return new ReadableIterator<Datagram>(this, true)
  }

  /**
   * As `Readable.prototype.iterator()`: the iterator of `for await`, and with
   * `destroyOnReturn: false` leaving the loop early leaves the stream open
   * (and readable) instead of destroying it.
   */
  override iterator(options?: { destroyOnReturn?: boolean }): AsyncIterableIterator<Datagram> {
    // Node's own check and error for options that are not an object.
    if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) return super.iterator(options)
    return new ReadableIterator<Datagram>(this, options?.destroyOnReturn !== false)
  }
}

/** Options of {@link DatagramStream.batches}. */
export interface BatchesOptions {
  /**
   * Give each batch's memory back to the ring when the next batch is asked
   * for, or the loop ends (default false: when the batch is garbage-collected).
   * A batch's datagrams must not be read after that: doing so throws
   * `ERR_DGRAM_RING_RECYCLED`.
   */
  recycle?: boolean
}

export interface DatagramStream {
  on(event: 'data', listener: (datagram: Datagram) => void): this
  on(event: 'listening' | 'close' | 'end' | 'readable' | 'pause' | 'resume', listener: () => void): this
  on(event: 'error' | 'warning', listener: (error: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'data', listener: (datagram: Datagram) => void): this
  once(event: 'listening' | 'close' | 'end' | 'readable' | 'pause' | 'resume', listener: () => void): this
  once(event: 'error' | 'warning', listener: (error: Error) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

/**
 * Opens a {@link DatagramStream} and resolves once it is bound. Rejects with a
 * validation error (TypeError/RangeError with a `code`), a system error
 * (`code` `EADDRINUSE`, `EACCES`, …), or an AbortError if `signal` aborted first.
 *
 * @example
 * const stream = await listen({ port: 5140 })
 * for await (const d of stream) console.log(d.remoteAddress, d.data)
 */
export function listen(options?: ListenOptions): Promise<DatagramStream> {
  return new Promise((resolve, reject) => {
    const stream = new DatagramStream(options)
    const onError = (error: Error): void => {
      stream.off('listening', onListening)
      reject(error)
    }
    const onListening = (): void => {
      stream.off('error', onError)
      resolve(stream)
    }
    stream.once('error', onError)
    stream.once('listening', onListening)
  })
}
