// Errors with stable codes: validation errors (TypeError / RangeError, as
// Node's own APIs throw them) and system errors carrying errno and syscall.
import util from 'node:util'

/** Codes of the errors dgram-ring itself raises. System errors carry the OS's name instead (`EADDRINUSE`, …). */
export type DgramRingErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_SOCKET_BAD_PORT'
  | 'ERR_DGRAM_RING_BACKEND_UNAVAILABLE'
  | 'ERR_DGRAM_RING_CLOSED'
  | 'ERR_DGRAM_RING_RECYCLED'
  | 'ERR_DGRAM_RING_INTERNAL'
  | 'ERR_DGRAM_RING_UNSUPPORTED'
  | 'ERR_INVALID_STATE'
  | 'ERR_DGRAM_RING_PEER_MISSING'
  | 'ERR_DGRAM_RING_JETSTREAM'
  | 'ERR_DGRAM_RING_WORKER_EXIT'

/** An error with a stable `code`. */
export interface CodedError extends Error {
  code: string
}

/** A failed system call: `code` is the OS error's name (`EADDRINUSE`, `EACCES`, …). */
export interface SystemError extends CodedError {
  errno: number
  syscall: string
  address?: string
  port?: number
}

function withCode<E extends Error>(error: E, code: DgramRingErrorCode): E & CodedError {
  return Object.assign(error, { code })
}

// What a caller passed, in words, without running any of the caller's code: no
// getter, Proxy trap, valueOf, toString or custom inspect of theirs is called.
function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'function') return `function ${ownValue(value, 'name') || '(anonymous)'}`
  if (typeof value === 'object') {
    if (util.types.isProxy(value)) return 'a Proxy'
    const prototype = Object.getPrototypeOf(value) as object | null
    const constructor = prototype === null || util.types.isProxy(prototype) ? undefined : ownValue(prototype, 'constructor')
    const name = typeof constructor === 'function' ? ownValue(constructor, 'name') : undefined
    return `an instance of ${typeof name === 'string' && name !== '' ? name : 'Object'}`
  }
  return `type ${typeof value} (${util.inspect(value)})`
}

// A data property's value; undefined for a getter, whose code is not run.
function ownValue(object: object, key: string): unknown {
  return Object.getOwnPropertyDescriptor(object, key)?.value
}

// A value for "Received …": a primitive as util.inspect writes it, an object by its constructor.
function received(value: unknown): string {
  return (typeof value === 'object' && value !== null) || typeof value === 'function' ? describe(value) : util.inspect(value)
}

/** What a validation error is about: an option of `listen()` and its kin, or a function's argument. */
export type Subject = 'option' | 'argument'

/** `name` had the wrong type. */
export function invalidArgType(name: string, expected: string, actual: unknown, subject: Subject = 'option'): TypeError & CodedError {
  return withCode(new TypeError(`The "${name}" ${subject} must be ${expected}. Received ${describe(actual)}`), 'ERR_INVALID_ARG_TYPE')
}

/** An `options` argument, where one is given, must be an object (not null). */
export function checkOptionsArgument(options: unknown): void {
  if (options !== undefined && (options === null || typeof options !== 'object')) throw invalidArgType('options', 'of type object', options, 'argument')
}

/** `name` had the right type but a value that cannot work. */
export function invalidArgValue(name: string, reason: string, actual: unknown, subject: Subject = 'option'): TypeError & CodedError {
  return withCode(new TypeError(`The "${name}" ${subject} ${reason}. Received ${received(actual)}`), 'ERR_INVALID_ARG_VALUE')
}

/** `name` had the right type but a value outside what it may be (a RangeError, as Node's `ERR_INVALID_ARG_VALUE` is for ranges). */
export function invalidArgValueRange(name: string, reason: string, actual: unknown, subject: Subject = 'option'): RangeError & CodedError {
  return withCode(new RangeError(`The "${name}" ${subject} ${reason}. Received ${received(actual)}`), 'ERR_INVALID_ARG_VALUE')
}

/** A number outside its range. */
export function outOfRange(name: string, range: string, actual: unknown, subject: Subject = 'option'): RangeError & CodedError {
  return withCode(new RangeError(`The "${name}" ${subject} must be ${range}. Received ${received(actual)}`), 'ERR_OUT_OF_RANGE')
}

/** A port that is not an integer in 0..65535 (Node's dgram uses the same code). */
export function badPort(actual: unknown): RangeError & CodedError {
  return withCode(new RangeError(`The "port" option must be an integer >= 0 and <= 65535. Received ${received(actual)}`), 'ERR_SOCKET_BAD_PORT')
}

/** An operation the object's state does not allow now (a second consumer of a stream). */
export function invalidState(message: string): CodedError {
  return withCode(new Error(message), 'ERR_INVALID_STATE')
}

/** An operation on a socket that is closed (or never opened). */
export function closedError(operation: string): CodedError {
  return withCode(new Error(`${operation}: the socket is closed`), 'ERR_DGRAM_RING_CLOSED')
}

/** A datagram read after batches({ recycle: true }) gave its batch back. */
export function recycledError(): CodedError {
  return withCode(
    new Error('the datagram was read after its batch was given back (batches({ recycle: true })): read datagrams before the loop moves on, or keep a copy (d.toObject())'),
    'ERR_DGRAM_RING_RECYCLED',
  )
}

/** What an AbortSignal that was already aborted rejects with, as Node's own APIs do. */
export function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' })
}

/** The requested backend does not exist in this build or on this OS, or cannot run in this process (`reason` says why). */
export function backendUnavailable(name: string, available: readonly string[], reason?: string): CodedError {
  const why = reason === undefined ? '' : `: ${reason}`
  return withCode(
    new Error(`The "${name}" backend is not available here${why} (available: ${available.join(', ')})`),
    'ERR_DGRAM_RING_BACKEND_UNAVAILABLE',
  )
}

/** An option this platform cannot honour (yet): the feature is absent, never faked. */
export function unsupported(what: string, why: string): CodedError {
  return withCode(new Error(`${what} is not supported on ${process.platform}: ${why}`), 'ERR_DGRAM_RING_UNSUPPORTED')
}

/**
 * Turns what the native side threw or reported (an Error with `errno` and
 * `syscall`, or one with a `code`) into the error users see: for a system
 * error, `code` is the OS's error name and the message says what failed where
 * (for a link-local address, which zone did not resolve).
 */
export function fromNative(error: unknown, where?: { address: string; port: number }): Error {
  if (!(error instanceof Error)) return new Error(String(error))
  const native = error as Error & { errno?: unknown; syscall?: unknown; code?: unknown }
  if (typeof native.errno !== 'number' || typeof native.syscall !== 'string') return error
  const resolving = native.syscall === 'getaddrinfo'
  const system = systemError(native.errno, native.syscall, native.syscall === 'bind' || resolving ? where : undefined)
  // The address itself was checked before (net.isIP): what failed to resolve is its zone.
  const zone = where?.address.indexOf('%') ?? -1
  if (resolving && zone >= 0) {
    system.message += `: the zone '${where?.address.slice(zone + 1)}' names no network interface of this host`
    if (process.platform === 'win32') system.message += ' (on Windows, give the interface index)'
  }
  return system
}

/** A system error from a negative libuv-style errno, named as Node names it. */
export function systemError(errno: number, syscall: string, where?: { address: string; port: number }): SystemError {
  let code: string
  try {
    code = util.getSystemErrorName(errno)
  } catch {
    code = `Unknown system error ${errno}`
  }
  const target = where ? ` ${where.address}:${where.port}` : ''
  const error = new Error(`${syscall} ${code}${target}`) as SystemError
  error.code = code
  error.errno = errno
  error.syscall = syscall
  if (where) {
    error.address = where.address
    error.port = where.port
  }
  return error
}
