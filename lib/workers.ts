// listenWorkers(): one ring a core. `n` worker threads each open their own
// ring on one port with SO_REUSEPORT, in order (the order of the kernel's
// reuseport group, which `balance: 'spread'` indexes), and run the user's
// module with their stream. The main thread keeps a WorkerGroup: the port,
// summed stats, a graceful close, and every worker's errors and unexpected
// exits, each with the worker's index. worker-entry.ts is the other side.
import { EventEmitter } from 'node:events'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import { abortError, invalidArgType, invalidArgValue, outOfRange, unsupported, type CodedError } from './errors'
import { OPTION_KEYS, resolveOptions, type AddressInfo, type ListenOptions, type RingStats } from './socket'
import type { DatagramStream } from './stream'
import { deserializeError, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol'

/** Options of {@link listenWorkers}: those of `listen()` (each worker's ring gets them), and `workerData`. */
export interface WorkersOptions<Data = unknown> extends Omit<ListenOptions, 'reusePort' | 'spreadOver'> {
  /**
   * Given to every worker (structured-cloned, as `worker_threads` clones it): the `workerData` of
   * its {@link WorkerContext}, and `workerData` of `node:worker_threads` there.
   */
  workerData?: Data
  /**
   * Node's command-line options of the worker threads, as `worker_threads`' own option; default: the
   * process's (`process.execArgv`). `[]` starts them without the process's loaders and hooks.
   */
  execArgv?: string[]
}

/** What a worker's function gets besides its stream. */
export interface WorkerContext<Data = unknown> {
  /** This worker's index, 0 to `workers − 1`: the order it joined the port's group. */
  index: number
  /** How many workers the group has. */
  workers: number
  /** The `workerData` option, cloned. */
  workerData: Data
}

/**
 * The default export of a worker module: it gets the worker's stream (already listening) and reads it.
 * The worker ends once the stream is closed (by {@link WorkerGroup.close}) and the promise this
 * returns has settled; a rejection (or a throw) is the group's `'error'`, and the worker's stream is
 * then destroyed.
 */
export type WorkerFunction<Data = unknown> = (stream: DatagramStream, context: WorkerContext<Data>) => void | Promise<void>

/** The counters of every worker's ring, summed (every field, `peakPosted` too), and each worker's own. */
export interface WorkersStats extends RingStats {
  /** Each worker's `stats()`, by index; a worker that ended keeps its final counters. */
  workers: RingStats[]
}

/**
 * An error of one worker, from the group's `'error'` event or `listenWorkers()`'s rejection: the
 * error the worker raised (its `code`, `errno`, `syscall`… intact), with the worker's `index`. A
 * worker that exited by itself is `ERR_DGRAM_RING_WORKER_EXIT`, with its `exitCode`.
 */
export interface WorkerError extends Error {
  /** Which worker. */
  index: number
  code?: string
  /** The thread's exit code (`ERR_DGRAM_RING_WORKER_EXIT` only). */
  exitCode?: number
}

const MAX_WORKERS = 1024
const ENTRY = path.join(__dirname, 'worker-entry.js')
const ZERO: RingStats = { received: 0, bytes: 0, truncated: 0, batches: 0, discarded: 0, transientErrors: 0, posted: 0, peakPosted: 0, coalesced: 0 }

function withIndex(error: Error, index: number): WorkerError {
  return Object.assign(error, { index })
}

function exitError(index: number, exitCode: number): WorkerError & CodedError {
  const error = new Error(`dgram-ring worker ${index} exited unexpectedly (exit code ${exitCode}): its ring was discarded`)
  return Object.assign(error, { code: 'ERR_DGRAM_RING_WORKER_EXIT', index, exitCode })
}

/** Sums every numeric field; `kernelDrops` is present if any worker has it. */
function sum(all: readonly RingStats[]): RingStats {
  const total: Record<string, number> = { ...ZERO }
  for (const stats of all) {
    for (const [key, value] of Object.entries(stats)) {
      if (typeof value === 'number') total[key] = (total[key] ?? 0) + value
    }
  }
  return total as unknown as RingStats
}

// One worker thread as the main thread sees it. Loop thread.
class Member {
  readonly worker: Worker
  readonly control: MessagePort
  state: 'starting' | 'listening' | 'closing' | 'done' = 'starting'
  last: RingStats = { ...ZERO }
  address: AddressInfo | undefined
  readonly listening: Promise<AddressInfo>
  readonly exited: Promise<void>
  #reported = false
  #requests = new Map<number, () => void>()
  #nextId = 0

  constructor(
    readonly index: number,
    init: Omit<WorkerInit, 'index' | 'control'>,
    workerData: unknown,
    execArgv: string[] | undefined,
    emit: (event: 'error' | 'message', ...args: unknown[]) => void,
  ) {
    const channel = new MessageChannel()
    this.control = channel.port1
    this.worker = new Worker(ENTRY, { workerData, execArgv })
    let listened!: (address: AddressInfo) => void
    let failed!: (error: WorkerError) => void
    this.listening = new Promise((resolve, reject) => {
      listened = resolve
      failed = reject
    })
    // Reported once: while starting, as listenWorkers()'s rejection; then as 'error'.
    const report = (error: WorkerError): void => {
      if (this.#reported) return
      this.#reported = true
      if (this.state === 'starting') failed(error)
      else emit('error', error)
    }
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        // What the worker said before it ended comes first ('exit' may overtake the port's messages).
        for (let m = receiveMessageOnPort(this.control); m !== undefined; m = receiveMessageOnPort(this.control)) onControl(m.message as FromWorker)
        if (this.state !== 'done') report(exitError(index, code))
        this.#end()
        resolve()
      })
    })
    this.worker.on('error', (error) => report(withIndex(error, index)))
    this.worker.on('message', (value) => emit('message', value, index))
    const onControl = (message: FromWorker): void => {
      if (this.state === 'done') return
      switch (message.type) {
        case 'listening':
          this.address = message.address
          this.state = 'listening'
          listened(message.address)
          break
        case 'stats':
          this.last = message.stats
          this.#requests.get(message.id)?.()
          break
        case 'error':
          report(withIndex(deserializeError(message.error), index))
          if (this.address === undefined) void this.worker.terminate() // it never listened: nothing to close
          break
        case 'closed':
          this.last = message.stats
          this.#end()
          // The stream is closed and the user's function settled: nothing of ours is left in the thread.
          void this.worker.terminate()
          break
      }
    }
    this.control.on('message', onControl)
    const message: WorkerInit = { ...init, index, control: channel.port2 }
    this.worker.postMessage(message, [channel.port2])
  }

  #end(): void {
    this.state = 'done'
    this.control.close()
    for (const answer of this.#requests.values()) answer()
    this.#requests.clear()
  }

  stats(): Promise<RingStats> {
    if (this.state === 'done' || this.state === 'starting') return Promise.resolve({ ...this.last })
    const id = this.#nextId++
    return new Promise((resolve) => {
      this.#requests.set(id, () => {
        this.#requests.delete(id)
        resolve({ ...this.last })
      })
      this.#post({ type: 'stats', id })
    })
  }

  close(): Promise<void> {
    if (this.state === 'starting' || this.state === 'listening') {
      this.state = 'closing'
      this.#post({ type: 'close' })
    }
    return this.exited
  }

  #post(message: ToWorker): void {
    this.control.postMessage(message)
  }
}

/**
 * `n` worker threads, each with its own ring on the same port, from {@link listenWorkers}.
 *
 * Events: `'error'` `(error: WorkerError)` when a worker's function failed (its stream is then
 * destroyed, counted), its thread threw, or it exited by itself (`ERR_DGRAM_RING_WORKER_EXIT`);
 * `'message'` `(value, index)` for what a worker posts on `parentPort`.
 */
export class WorkerGroup extends EventEmitter {
  readonly #members: Member[] = []
  #address: AddressInfo | undefined
  #closing: Promise<void> | undefined
  #signal: AbortSignal | undefined
  #onAbort: (() => void) | undefined

  /** @internal listenWorkers() makes groups. */
  constructor() {
    super()
  }

  /** @internal Starts the workers one after another, each once the one before listens. */
  async start(n: number, options: ListenOptions, module: string, workerData: unknown, execArgv: string[] | undefined, signal: AbortSignal | undefined): Promise<void> {
    if (signal) {
      this.#signal = signal
      this.#onAbort = () => void this.close()
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
    // Until the caller has the group nobody listens to it: while the workers start, an error of
    // any fails the start; what workers post, and errors once all listen, are held and emitted
    // after the caller's `await` has run (and attached its listeners).
    let phase: 'starting' | 'handing' | 'running' = 'starting'
    let failStart!: (error: WorkerError) => void
    const startFailed = new Promise<never>((_, reject) => (failStart = reject))
    startFailed.catch(() => {})
    const held: [string, unknown[]][] = []
    const emit = (event: 'error' | 'message', ...args: unknown[]): void => {
      if (phase === 'running') void this.emit(event, ...args)
      else if (phase === 'starting' && event === 'error') failStart(args[0] as WorkerError)
      else held.push([event, args])
    }
    try {
      for (let index = 0; index < n; index++) {
        if (this.#closing !== undefined) throw signal?.aborted ? abortError(signal) : new Error('closed while starting')
        const port = this.#address?.port ?? options.port
        const member = new Member(index, { kind: 'dgram-ring.worker-init', workers: n, options: { ...options, port }, module }, workerData, execArgv, emit)
        this.#members.push(member)
        const address = await Promise.race([member.listening, startFailed])
        this.#address ??= address
      }
    } catch (error) {
      await this.close()
      throw error
    }
    phase = 'handing'
    setImmediate(() => {
      phase = 'running'
      for (const [event, args] of held) this.emit(event, ...args)
    })
  }

  /** The port every worker listens on. */
  get port(): number {
    return this.address().port
  }

  /** How many workers the group has (also after some ended). */
  get workers(): number {
    return this.#members.length
  }

  /** The bound address, the same for every worker. */
  address(): AddressInfo {
    if (this.#address === undefined) throw Object.assign(new Error('address(): the group never listened'), { code: 'ERR_DGRAM_RING_CLOSED' })
    return { ...this.#address }
  }

  /**
   * Every worker's counters, summed, and each worker's own (`workers[i]`). Asks each worker thread (it
   * answers when its event loop gets to it); a worker that ended answers with its final counters,
   * which, after {@link close}, make the sum exact: `received + kernelDrops + discarded` is what
   * reached the port. A worker that exited by itself keeps the counters of the last `stats()` call.
   */
  async stats(): Promise<WorkersStats> {
    const workers = await Promise.all(this.#members.map((member) => member.stats()))
    return { ...sum(workers), workers }
  }

  /**
   * Closes every worker's stream as `stream.close()` does: what each socket holds reaches that
   * worker's function before its stream ends. Resolves once every worker's function has settled and
   * its thread has ended; `stats()` then has the final counters. Idempotent: every call returns the
   * same promise. Aborting the `signal` calls it.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#signal && this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort)
      await Promise.all(this.#members.map((member) => member.close()))
    })()
    return this.#closing
  }
}

export interface WorkerGroup {
  on(event: 'error', listener: (error: WorkerError) => void): this
  on(event: 'message', listener: (value: unknown, index: number) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'error', listener: (error: WorkerError) => void): this
  once(event: 'message', listener: (value: unknown, index: number) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

function moduleUrl(workerFile: unknown): string {
  if (typeof workerFile === 'string') {
    if (workerFile === '') throw invalidArgValue('workerFile', 'must name a module file', workerFile, 'argument')
    return pathToFileURL(path.resolve(workerFile)).href
  }
  if (workerFile instanceof URL) {
    if (workerFile.protocol !== 'file:') throw invalidArgValue('workerFile', 'must be a file: URL', workerFile.href, 'argument')
    return workerFile.href
  }
  throw invalidArgType('workerFile', 'of type string or an instance of URL', workerFile, 'argument')
}

/**
 * Starts `n` worker threads, each with its own ring on one port (SO_REUSEPORT), running the default
 * export of `workerFile` (a {@link WorkerFunction}) with its stream. The workers start one after
 * another, each once the one before listens (with `port: 0`, on the port the first was given), so
 * their order is the order of the kernel's group. `balance: 'flow'` (default) keeps each flow on one
 * worker, in order; `'spread'` spreads every flow over all of them (order across workers is then not
 * kept). Resolves once every worker listens; rejects with a validation error, or with the first
 * worker's failure (a bind error, a module that does not load or has no default function) and its
 * `index`, after closing the workers already started. Linux only (`ERR_DGRAM_RING_UNSUPPORTED`
 * elsewhere: Windows has no SO_REUSEPORT).
 *
 * @example
 * // main.mjs
 * const group = await listenWorkers(os.availableParallelism(), { port: 5140, balance: 'spread' },
 *   new URL('./worker.mjs', import.meta.url))
 * group.on('error', (error) => console.error(`worker ${error.index}:`, error))
 * // worker.mjs
 * export default async function (stream, { index }) {
 *   for await (const d of stream) handle(d)
 * }
 */
export async function listenWorkers<Data = unknown>(n: number, options: WorkersOptions<Data> | undefined, workerFile: string | URL): Promise<WorkerGroup> {
  if (typeof n !== 'number') throw invalidArgType('n', 'of type number', n, 'argument')
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw outOfRange('n', `an integer >= 1 and <= ${MAX_WORKERS}`, n, 'argument')
  if (options === undefined) options = {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgType('options', 'of type object', options, 'argument')
  const module = moduleUrl(workerFile)
  if (process.platform !== 'linux') {
    throw unsupported(
      'listenWorkers()',
      process.platform === 'win32' ? 'Windows has no SO_REUSEPORT, so only one socket may receive on a port' : "it needs Linux's SO_REUSEPORT load balancing",
    )
  }
  // Each option read once, checked as listen() checks it, then handed to the workers as plain data.
  const given: Record<string, unknown> = {}
  for (const key of OPTION_KEYS) given[key] = (options as Record<string, unknown>)[key]
  const workerData = options.workerData
  const execArgv: unknown = options.execArgv
  if (execArgv !== undefined && (!Array.isArray(execArgv) || !execArgv.every((a) => typeof a === 'string'))) {
    throw invalidArgType('execArgv', 'an array of strings', execArgv)
  }
  if (given.reusePort !== undefined && given.reusePort !== true) throw invalidArgValue('reusePort', 'is always true for listenWorkers()', given.reusePort)
  if (given.spreadOver !== undefined) throw invalidArgValue('spreadOver', 'is set by listenWorkers(): the number of workers', given.spreadOver)
  const balance = given.balance ?? 'flow'
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries({ ...given, reusePort: true, balance, spreadOver: balance === 'spread' ? n : undefined })) {
    if (value !== undefined && key !== 'signal') plain[key] = value
  }
  const signal = resolveOptions({ ...plain, signal: given.signal } as ListenOptions).signal
  if (signal?.aborted) throw abortError(signal)
  const group = new WorkerGroup()
  await group.start(n, plain as ListenOptions, module, workerData, execArgv === undefined ? undefined : [...execArgv], signal)
  return group
}
