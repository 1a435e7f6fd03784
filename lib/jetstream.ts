/**
 * `dgram-ring/jetstream`: an object-mode Writable that publishes records into
 * a NATS JetStream stream and counts a record done only when JetStream has
 * acknowledged it. Its unacknowledged publishes are bounded (`maxInFlight`),
 * so a sink that falls behind stops taking writes, the pipeline stops, the
 * ring is granted no buffers and the kernel drops, counted: the stream
 * store's acknowledgements are the backpressure that reaches the kernel.
 *
 * Needs the optional peer dependencies `@nats-io/transport-node` and
 * `@nats-io/jetstream`; without them {@link createJetStreamSink} throws an
 * error whose `code` is `ERR_DGRAM_RING_PEER_MISSING`.
 *
 * @packageDocumentation
 */
import os from 'node:os'
import { Writable } from 'node:stream'
import { Datagram } from './datagram'
import { invalidArgType, outOfRange, type CodedError } from './errors'

/** How each record's `Nats-Msg-Id` is made: a prefix (`${prefix}-${sequence}`), or a function of the record and its sequence. */
export type JetStreamMsgId = string | ((record: unknown, sequence: number) => string)

/** Options of {@link createJetStreamSink}. */
export interface JetStreamSinkOptions {
  /** The NATS servers: one URL (`nats://127.0.0.1:4222`) or several, of one cluster. */
  servers: string | readonly string[]
  /** The subject every record is published on. */
  subject: string
  /**
   * The stream expected to store the subject: checked when the sink connects
   * (it must exist) and sent with every publish, so the server rejects a
   * publish another stream would store. Default: the stream the server says
   * holds `subject` (none: the sink fails with `ERR_DGRAM_RING_JETSTREAM`).
   */
  stream?: string
  /** Publishes at most unacknowledged at once; beyond, the Writable applies backpressure. 1–65536, default 256. */
  maxInFlight?: number
  /**
   * The message id that makes a retried publish stored once (JetStream's
   * duplicate window). A string is a prefix: the id is `${prefix}-${sequence}`,
   * where the sequence is the sink's, 1, 2, … in the order records were written.
   * A function gets the record and that sequence and returns the id. Default
   * prefix: this receiver's identity, `${hostname}-${pid}-${start time, base 36}`.
   */
  msgId?: JetStreamMsgId
  /** Milliseconds to wait for an acknowledgement before publishing again (same id). Default 5000. */
  timeout?: number
  /**
   * Milliseconds that `end()` waits for the publishes still unacknowledged;
   * those not acknowledged by then are counted as `failed`. Default 30000.
   */
  closeTimeout?: number
  /** Records buffered in the Writable beyond the ones in flight before `write()` returns false. Default 16. */
  highWaterMark?: number
  /** The connection's name, as the server's monitoring shows it. Default `dgram-ring`. */
  name?: string
}

/** What a sink has done with the records written to it, from {@link JetStreamSink.stats}. */
export interface JetStreamSinkStats {
  /** Records published (first attempts; records given up before their turn are counted in `failed` only). */
  published: number
  /** Records JetStream acknowledged: stored (or stored before, for a duplicate). */
  acknowledged: number
  /** Publishes made again after a timeout, a lost connection, or a stream that was unavailable or full. */
  retried: number
  /** Acknowledgements that said the message was a duplicate: an earlier attempt had been stored. Counted in `acknowledged` too. */
  duplicates: number
  /**
   * Records given up: rejected by the server for good (too large, another
   * stream), or not acknowledged when the sink was destroyed or its
   * `closeTimeout` ran out. Such a record may have been stored all the same
   * (its acknowledgement was lost): it is never stored twice.
   */
  failed: number
  /** Records published and neither acknowledged nor failed yet. */
  inFlight: number
}

/** An object-mode Writable publishing each record into JetStream (see {@link createJetStreamSink}). */
export interface JetStreamSink extends Writable {
  /** Counts so far; once `'finish'` or `'close'` was emitted, final: `acknowledged + failed === written`. */
  stats(): JetStreamSinkStats
  /** Resolves once connected and the stream is known; rejects with what failed instead (also emitted as `'error'`). */
  ready(): Promise<void>
  /** The stream the records go to (known once ready). */
  readonly stream: string | undefined
}

// The little of the NATS clients this module uses, typed here: their own
// declarations need a newer moduleResolution than the package's, and this
// module's declarations must not need the optional packages to type-check.
interface MsgHdrs {
  set(key: string, value: string): void
}
interface PubAck {
  duplicate: boolean
}
interface PublishOptions {
  msgID: string
  headers: MsgHdrs
  expect: { streamName: string }
  timeout: number
}
interface JetStreamClient {
  publish(subject: string, data: Uint8Array | string, options: PublishOptions): Promise<PubAck>
}
interface JetStreamManager {
  streams: { info(name: string): Promise<unknown>; find(subject: string): Promise<string> }
}
interface NatsConnection {
  close(): Promise<void>
  isClosed(): boolean
}
interface NatsModules {
  connect(options: { servers: string[] | string; name: string; maxReconnectAttempts: number; reconnectTimeWait: number; noAsyncTraces: boolean }): Promise<NatsConnection>
  headers(): MsgHdrs
  jetstream(nc: NatsConnection, options: { timeout: number }): JetStreamClient
  jetstreamManager(nc: NatsConnection, options: { timeout: number }): Promise<JetStreamManager>
  JetStreamApiError: abstract new (...args: never[]) => Error & { status: number }
}

let modules: NatsModules | undefined

/** The NATS client packages, loaded on first use: users without them pay nothing until they call for them. */
function loadNats(): NatsModules {
  if (modules !== undefined) return modules
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const transport = require('@nats-io/transport-node') as Pick<NatsModules, 'connect' | 'headers'>
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const js = require('@nats-io/jetstream') as Omit<NatsModules, 'connect' | 'headers'>
    modules = {
      connect: transport.connect,
      headers: transport.headers,
      jetstream: js.jetstream,
      jetstreamManager: js.jetstreamManager,
      JetStreamApiError: js.JetStreamApiError,
    }
    return modules
  } catch (cause) {
    throw Object.assign(
      new Error(
        'dgram-ring/jetstream needs its optional peer dependencies: npm install @nats-io/transport-node @nats-io/jetstream',
        { cause },
      ),
      { code: 'ERR_DGRAM_RING_PEER_MISSING' },
    ) as CodedError
  }
}

/** A failure of the sink's connection or stream, `code` `ERR_DGRAM_RING_JETSTREAM`, with what NATS said as `cause`. */
function jetstreamError(message: string, cause?: unknown): CodedError {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code: 'ERR_DGRAM_RING_JETSTREAM' }) as CodedError
}

function integerOption(options: JetStreamSinkOptions, name: keyof JetStreamSinkOptions, min: number, max: number, fallback: number): number {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value)
  return value
}

/** This receiver's identity: host, process and start time, so that two receivers (or one restarted) never share an id. */
function receiverIdentity(): string {
  return `${os.hostname()}-${process.pid}-${Date.now().toString(36)}`
}

/** A record as a message: a Datagram's payload (copied: its batch's memory is not held), bytes and text as they are, else JSON. */
function encode(record: unknown, headers: MsgHdrs): Uint8Array | string {
  if (record instanceof Datagram) {
    const { remoteAddress, remotePort, family } = record
    headers.set('Dgram-Ring-Remote', family === 'IPv6' ? `[${remoteAddress}]:${remotePort}` : `${remoteAddress}:${remotePort}`)
    if (record.truncated) headers.set('Dgram-Ring-Truncated', 'true')
    return Uint8Array.prototype.slice.call(record.data)
  }
  if (typeof record === 'string' || record instanceof Uint8Array) return record
  return JSON.stringify(record)
}

// Backoff between attempts of one publish: a full or leaderless stream, or a server restarting.
const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 2000

/** One record on its way: published, and published again until acknowledged or given up. */
interface Pending {
  settled: boolean
  wake?: () => void
}

class Sink extends Writable implements JetStreamSink {
  readonly #options: JetStreamSinkOptions
  readonly #maxInFlight: number
  readonly #timeout: number
  readonly #closeTimeout: number
  readonly #msgId: (record: unknown, sequence: number) => string
  #nc: NatsConnection | undefined
  #js: JetStreamClient | undefined
  #stream: string | undefined
  #sequence = 0
  #stats = { published: 0, acknowledged: 0, retried: 0, duplicates: 0, failed: 0 }
  readonly #pending = new Set<Pending>()
  // A write waiting for a free slot, and end() waiting for the last acknowledgement.
  #onSlot: (() => void) | undefined
  #onIdle: (() => void) | undefined
  #giveUp = false
  // Records write() took, and of those the ones that reached _write(): the rest are buffered.
  #accepted = 0
  #taken = 0
  #closeTimer: NodeJS.Timeout | undefined
  readonly #ready: Promise<void>
  #readyResolve!: () => void
  #readyReject!: (error: Error) => void

  // Every option is checked before super(): Writable schedules _construct() as soon as it is called.
  constructor(options: JetStreamSinkOptions, nats: NatsModules) {
    const highWaterMark = integerOption(options, 'highWaterMark', 1, 65536, 16)
    const maxInFlight = integerOption(options, 'maxInFlight', 1, 65536, 256)
    const timeout = integerOption(options, 'timeout', 1, 2 ** 31 - 1, 5000)
    const closeTimeout = integerOption(options, 'closeTimeout', 0, 2 ** 31 - 1, 30000)
    const msgId = options.msgId ?? receiverIdentity()
    if (typeof msgId !== 'string' && typeof msgId !== 'function') throw invalidArgType('msgId', 'a string or a function', msgId)
    super({ objectMode: true, highWaterMark })
    this.#options = options
    this.#nats = nats
    this.#maxInFlight = maxInFlight
    this.#timeout = timeout
    this.#closeTimeout = closeTimeout
    this.#msgId = typeof msgId === 'string' ? (_record, sequence) => `${msgId}-${sequence}` : msgId
    this.#ready = new Promise((resolve, reject) => {
      this.#readyResolve = resolve
      this.#readyReject = reject
    })
    this.#ready.catch(() => undefined) // also reported as 'error'
  }

  readonly #nats: NatsModules

  get stream(): string | undefined {
    return this.#stream
  }

  ready(): Promise<void> {
    return this.#ready
  }

  stats(): JetStreamSinkStats {
    return { ...this.#stats, inFlight: this.#pending.size }
  }

  // Main thread, from Writable's constructor: connects and finds the stream before the first write.
  override _construct(callback: (error?: Error | null) => void): void {
    this.#connect().then(
      () => {
        this.#readyResolve()
        callback()
      },
      (error: Error) => {
        this.#readyReject(error)
        // Destroyed meanwhile: no 'error' for what the caller asked for.
        callback(this.destroyed ? null : error)
      },
    )
  }

  async #connect(): Promise<void> {
    const { servers, subject, stream, name } = this.#options
    let nc: NatsConnection
    try {
      nc = await this.#nats.connect({
        servers: typeof servers === 'string' ? servers : [...servers],
        name: name ?? 'dgram-ring',
        // While the sink is open a lost server is waited for: its records are retried, not lost.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        // Else every publish builds two Errors (their stacks) in advance, in case it fails: a third of the CPU.
        noAsyncTraces: true,
      })
    } catch (cause) {
      throw jetstreamError(`cannot connect to NATS at ${String(servers)}: ${(cause as Error).message}`, cause)
    }
    this.#nc = nc
    await this.#unlessDestroyed()
    try {
      const jsm = await this.#nats.jetstreamManager(nc, { timeout: this.#timeout })
      if (stream !== undefined) {
        await jsm.streams.info(stream)
        this.#stream = stream
      } else {
        this.#stream = await jsm.streams.find(subject)
      }
    } catch (cause) {
      if (this.destroyed) throw cause
      await nc.close().catch(() => undefined)
      const what = stream !== undefined ? `stream '${stream}'` : `stream for the subject '${subject}'`
      throw jetstreamError(`JetStream has no ${what}: ${(cause as Error).message}`, cause)
    }
    await this.#unlessDestroyed()
    this.#js = this.#nats.jetstream(nc, { timeout: this.#timeout })
  }

  /** destroy() while connecting: the connection must not keep the process alive. */
  async #unlessDestroyed(): Promise<void> {
    if (!this.destroyed) return
    await this.#disconnect()
    throw jetstreamError('the sink was destroyed while connecting')
  }

  // Main thread: one record in; called back at once while a slot is free, else when an acknowledgement frees one.
  override _write(record: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#taken++
    let id: string
    let data: Uint8Array | string
    const headers = this.#nats.headers()
    try {
      const sequence = ++this.#sequence
      id = this.#msgId(record, sequence)
      if (typeof id !== 'string' || id === '') throw invalidArgType('msgId', 'a function returning a non-empty string', id)
      data = encode(record, headers)
    } catch (error) {
      // The sink fails with it (msgId threw, or the record cannot be encoded): the record counts as failed.
      this.#stats.failed++
      callback(error as Error)
      return
    }
    if (this.#giveUp) {
      this.#stats.failed++
      callback()
      return
    }
    this.#stats.published++
    const pending: Pending = { settled: false }
    this.#pending.add(pending)
    void this.#publish(pending, data, { msgID: id, headers, expect: { streamName: this.#stream as string }, timeout: this.#timeout })
    if (this.#pending.size < this.#maxInFlight) callback()
    else this.#onSlot = () => callback()
  }

  async #publish(pending: Pending, data: Uint8Array | string, options: PublishOptions): Promise<void> {
    const js = this.#js as JetStreamClient
    for (let attempt = 0; ; attempt++) {
      if (pending.settled) return
      let ack: PubAck
      try {
        ack = await js.publish(this.#options.subject, data, options)
      } catch (error) {
        if (pending.settled) return
        if (!this.#retryable(error) || this.#giveUp) {
          this.#settle(pending, false)
          return
        }
        const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 10))
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay)
          pending.wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        if (pending.settled) return
        this.#stats.retried++
        continue
      }
      if (pending.settled) return
      if (ack.duplicate) this.#stats.duplicates++
      this.#settle(pending, true)
      return
    }
  }

  /** Worth publishing again with the same id: no answer, no server, or a stream that cannot store now (503: no leader, full with `discard: new`). */
  #retryable(error: unknown): boolean {
    if (error instanceof this.#nats.JetStreamApiError) return error.status === 503
    // A connection closed for good (it reconnects by itself otherwise): nothing will answer.
    return this.#nc !== undefined && !this.#nc.isClosed()
  }

  #settle(pending: Pending, acknowledged: boolean): void {
    if (pending.settled) return
    pending.settled = true
    pending.wake?.()
    this.#pending.delete(pending)
    if (acknowledged) this.#stats.acknowledged++
    else this.#stats.failed++
    const onSlot = this.#onSlot
    if (onSlot !== undefined && this.#pending.size < this.#maxInFlight) {
      this.#onSlot = undefined
      onSlot()
    }
    if (this.#pending.size === 0) this.#onIdle?.()
  }

  /** Counts every record still unacknowledged as failed and stops its retries. */
  #failAll(): void {
    this.#giveUp = true
    for (const pending of [...this.#pending]) this.#settle(pending, false)
  }

  // Main thread: counts what is taken, so that a destroy() can count what never reached _write() as failed.
  override write(record: unknown, ...rest: unknown[]): boolean {
    if (!this.destroyed && !this.writableEnded && record !== null) this.#accepted++
    return super.write(record, ...(rest as [BufferEncoding, (error: Error | null | undefined) => void]))
  }

  // Main thread: end() starts the closeTimeout, which also covers the writes still waiting for a slot.
  override end(...args: unknown[]): this {
    // end(record) writes it without write().
    if (args.length > 0 && typeof args[0] !== 'function' && args[0] != null && !this.destroyed && !this.writableEnded) this.#accepted++
    if (this.#closeTimer === undefined && !this.destroyed) {
      this.#closeTimer = setTimeout(() => this.#failAll(), this.#closeTimeout)
    }
    return super.end(...(args as Parameters<Writable['end']>))
  }

  // Main thread, after end() and the last _write: waits for the acknowledgements, then closes the connection.
  override _final(callback: (error?: Error | null) => void): void {
    const done = (): void => {
      clearTimeout(this.#closeTimer)
      this.#onIdle = undefined
      this.#disconnect().then(() => callback(), callback)
    }
    this.#onIdle = done
    if (this.#pending.size === 0) done()
  }

  async #disconnect(): Promise<void> {
    const nc = this.#nc
    this.#nc = undefined
    if (nc === undefined || nc.isClosed()) return
    // drain() waits for the server; a lost one would keep it waiting.
    await nc.close()
  }

  // Main thread: destroy() or a failure; what is unacknowledged is counted as failed.
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#closeTimer)
    // Records written but still buffered never reach _write.
    this.#stats.failed += this.#accepted - this.#taken
    this.#taken = this.#accepted
    this.#failAll()
    this.#onSlot = undefined
    this.#disconnect().then(
      () => callback(error),
      () => callback(error),
    )
  }
}

/**
 * Creates an object-mode Writable that publishes each record written to it
 * on `subject`, into JetStream, and calls a write done only once JetStream
 * acknowledged it:
 *
 * - A {@link Datagram} is published as its payload (copied), with a
 *   `Dgram-Ring-Remote` header (`address:port`) and `Dgram-Ring-Truncated:
 *   true` when it was cut; a Buffer/Uint8Array or string as it is; any other
 *   record (a parser's) as its JSON.
 * - At most `maxInFlight` publishes are unacknowledged: beyond, `write()`
 *   returns false and `pipeline()` stops its source (a {@link DatagramStream}
 *   then grants the ring no buffers and the kernel drops, counted).
 * - Each message carries a `Nats-Msg-Id` (see {@link JetStreamSinkOptions.msgId}):
 *   a publish not acknowledged in `timeout` ms, lost with its connection, or
 *   refused for now (a stream without a leader, or full with `discard: new`)
 *   is published again with the same id until acknowledged, and JetStream
 *   stores it once.
 * - `end()` waits for the acknowledgements (at most `closeTimeout` ms);
 *   what is not acknowledged then, or at `destroy()`, is counted as `failed`.
 *
 * The connection is made at once; a connection or stream that fails is an
 * `'error'` (`code` `ERR_DGRAM_RING_JETSTREAM`, the NATS error as `cause`), and
 * `ready()` rejects with it.
 *
 * @example
 * ```js
 * const { pipeline } = require('node:stream/promises')
 * const { listen } = require('dgram-ring')
 * const { createSyslogParser } = require('dgram-ring/parsers')
 * const { createJetStreamSink } = require('dgram-ring/jetstream')
 * const sink = createJetStreamSink({ servers: 'nats://127.0.0.1:4222', subject: 'logs.syslog' })
 * await pipeline(await listen({ port: 5140 }), createSyslogParser(), sink)
 * ```
 * @throws TypeError / RangeError for bad options; an Error with `code`
 *   `ERR_DGRAM_RING_PEER_MISSING` when `@nats-io/transport-node` and
 *   `@nats-io/jetstream` are not installed.
 */
export function createJetStreamSink(options: JetStreamSinkOptions): JetStreamSink {
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'an object', options, 'argument')
  const { servers, subject, stream } = options
  const list = typeof servers === 'string' ? [servers] : servers
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string' && s !== '')) {
    throw invalidArgType('servers', 'a non-empty string or array of non-empty strings', servers)
  }
  if (typeof subject !== 'string' || subject === '' || /[\s*>]/.test(subject)) {
    throw invalidArgType('subject', 'a non-empty subject without spaces or wildcards', subject)
  }
  if (stream !== undefined && (typeof stream !== 'string' || stream === '' || /[\s.*>]/.test(stream))) {
    throw invalidArgType('stream', 'a stream name (no spaces, dots or wildcards)', stream)
  }
  if (options.name !== undefined && typeof options.name !== 'string') throw invalidArgType('name', 'of type string', options.name)
  return new Sink(options, loadNats())
}
