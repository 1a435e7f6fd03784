// What listenWorkers (workers.ts, the main thread) and each worker thread
// (worker-entry.ts) say to each other over their private MessagePort, and
// errors made to cross it with their `code`, `errno`, `syscall`, … intact
// (structured cloning keeps only an Error's name, message and stack).
import type { MessagePort } from 'node:worker_threads'
import type { AddressInfo, ListenOptions, RingStats } from './socket'

/** @internal The first message on a worker's parentPort: who it is, what to open and run, and its control port. */
export interface WorkerInit {
  kind: 'dgram-ring.worker-init'
  index: number
  workers: number
  /** Validated, plain listen() options (no signal), with reusePort, balance and spreadOver set. */
  options: ListenOptions
  /** The user's module, as a file: URL. */
  module: string
  control: MessagePort
}

/** @internal An error as it crosses threads: its message and every own enumerable primitive field. */
export interface SerializedError {
  name: string
  message: string
  stack: string | undefined
  fields: Record<string, string | number | boolean | null>
  cause: SerializedError | undefined
}

/** @internal Main thread → worker. */
export type ToWorker = { type: 'stats'; id: number } | { type: 'close' }

/** @internal Worker → main thread. */
export type FromWorker =
  | { type: 'listening'; address: AddressInfo }
  | { type: 'stats'; id: number; stats: RingStats }
  /** Before listening: the worker cannot start (import, listen). After: the user's function or the stream failed. */
  | { type: 'error'; error: SerializedError }
  /** The stream is closed and the user's function settled: the final counters. The thread may end now. */
  | { type: 'closed'; stats: RingStats }

/** @internal */
export function serializeError(value: unknown, depth = 0): SerializedError {
  if (!(value instanceof Error)) {
    return { name: 'Error', message: `a non-Error was thrown: ${String(value)}`, stack: undefined, fields: {}, cause: undefined }
  }
  const fields: Record<string, string | number | boolean | null> = {}
  for (const [key, field] of Object.entries(value)) {
    if (field === null || ['string', 'number', 'boolean'].includes(typeof field)) fields[key] = field as string | number | boolean | null
  }
  const cause = depth < 4 && value.cause !== undefined ? serializeError(value.cause, depth + 1) : undefined
  return { name: value.name, message: value.message, stack: value.stack, fields, cause }
}

const ERROR_TYPES: Record<string, ErrorConstructor> = { TypeError, RangeError, SyntaxError, ReferenceError }

/** @internal The error again, of its standard class where it had one, with its fields. */
export function deserializeError(serialized: SerializedError): Error {
  const Type = ERROR_TYPES[serialized.name] ?? Error
  const error = new Type(serialized.message)
  if (serialized.name !== error.name) Object.defineProperty(error, 'name', { value: serialized.name, configurable: true, writable: true })
  if (serialized.stack !== undefined) error.stack = serialized.stack
  if (serialized.cause !== undefined) error.cause = deserializeError(serialized.cause)
  return Object.assign(error, serialized.fields)
}
