// RingSocket: one bound socket and its ring of receive buffers (the native
// handle), with the options that open it. Streams and Observables are built on
// it; use it directly to drive credits yourself.
import net from 'node:net'
import util from 'node:util'
import { environmentBackend, lingerUnavailable } from './linger'
import { binding, type NativeOptions, type NativeRingSocket } from './binding'
import { DatagramBatch, formatIPv6, type AddressFamily } from './datagram'
import { resolveMulticast, type MulticastMembership } from './multicast'
import {
  backendUnavailable,
  badPort,
  closedError,
  fromNative,
  systemError,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  unsupported,
} from './errors'
import { SendQueue, type SendOptions } from './sender'

/** Socket types: UDP, or raw IP (`'raw4'`/`'raw6'` with a `protocol`; needs CAP_NET_RAW or administrator). */
export type SocketType = 'udp4' | 'udp6' | 'raw4' | 'raw6'

/**
 * A receive backend: `'auto'` picks the fastest this machine supports.
 * `'recvmmsg'` (Linux), `'io_uring'` (Linux 6.0+, where io_uring is allowed),
 * `'recvmsg'` (other POSIX systems), `'iocp'` (Windows).
 */
export type BackendName = 'auto' | 'recvmmsg' | 'io_uring' | 'recvmsg' | 'iocp'

/** Options of {@link listen}, {@link DatagramStream} and {@link RingSocket}. */
export interface ListenOptions {
  /**
   * `'udp4'` or `'udp6'` (default: `'udp6'` if `address` is an IPv6 address, else `'udp4'`), or a raw
   * socket: `'raw4'` delivers whole IPv4 packets, header included; `'raw6'` what the OS delivers of IPv6
   * packets (the payload after the IPv6 header, on Linux). Raw sockets need `protocol` and privilege.
   */
  type?: SocketType
  /**
   * IP protocol number of a raw socket (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, …), 1 to 254. Raw sockets
   * only. 255 (IPPROTO_RAW) is refused: such a socket can only send.
   */
  protocol?: number
  /**
   * Numeric address to bind (or `'localhost'`); default (when absent): the wildcard (`0.0.0.0` / `::`).
   * An IPv6 address may carry a zone, `'fe80::1%eth0'` or `'fe80::1%2'` (on Windows, an index only).
   */
  address?: string
  /** Port to bind; default 0 (the OS picks one: see `address()`). UDP only. */
  port?: number
  /** Receive buffers in the ring, 1 to 65536; default 256. */
  ringSize?: number
  /** Bytes a buffer, 1 to 65535; longer datagrams arrive truncated and flagged. Default 2048. */
  bufferSize?: number
  /** Datagrams the stream buffers before it stops granting credits; default `ringSize`. */
  highWaterMark?: number
  /** SO_RCVBUF in bytes (beyond the OS cap where the process may: SO_RCVBUFFORCE). Default: the OS's. */
  recvBufferSize?: number
  /** SO_REUSEADDR. */
  reuseAddr?: boolean
  /** SO_REUSEPORT: several sockets share the port and the kernel spreads datagrams over them (not on Windows). */
  reusePort?: boolean
  /** On a `'udp6'` socket, refuse IPv4 (no dual stack). */
  ipv6Only?: boolean
  /**
   * The receive backend. Default: the environment variable `DGRAM_RING_BACKEND` if set (validated as
   * this option is), else `'auto'`. `'auto'` skips a backend that cannot run here (io_uring where the
   * kernel is older than 6.0, seccomp blocks it or `kernel.io_uring_disabled` is set); asking for it by
   * name there rejects with `ERR_DGRAM_RING_BACKEND_UNAVAILABLE` and the reason.
   */
  backend?: BackendName
  /**
   * A receive thread keeps the ring filled while JavaScript runs (a garbage
   * collection, a slow callback), as Windows' posted receives do, instead of
   * the event loop reading the socket when it gets to it. The `recvmmsg` and
   * `recvmsg` backends; ignored by `io_uring` (the kernel fills its provided
   * buffers itself, with no thread of ours) and on Windows, where receives
   * are always posted. Default `false`.
   */
  thread?: boolean
  /**
   * With `thread: true`: milliseconds (fractions allowed, at most 1000) the receive thread may hold
   * what it received before handing it to JavaScript, so that at low rates JS gets one larger batch
   * a linger instead of one a burst. A receive that empties the kernel's queue starts the hold; the
   * thread then sleeps and takes what arrived meanwhile in one receive call when it ends. A receive
   * that fills every credited buffer starts none (JS is woken at once), and `close()` or `destroy()`
   * end a hold at once. Trades latency (at most `linger` more per datagram) for CPU: measured on a
   * 2-core VM at 50k 200-byte datagrams/s, `dgram-ring listen` went from 2.9 to 1.8 µs a datagram
   * with 10 ms. The kernel's receive buffer must hold what arrives during a linger
   * (`recvBufferSize`). `linger` without `thread: true` is `ERR_INVALID_ARG_VALUE`; with the
   * `io_uring` backend or on Windows, `ERR_DGRAM_RING_UNSUPPORTED`. Default `0`: JS is woken at once.
   */
  linger?: number
  /**
   * UDP receive coalescing (Linux `UDP_GRO`, Windows URO): the kernel may hand over several
   * datagrams of one flow (same source, same size, as a GSO sender or a
   * burst makes them) in one buffer, which the ring splits back into
   * datagrams, each its own {@link Datagram}, counted in `received`. Far fewer
   * receive calls at high rates. Each buffer is then 64 KiB (whatever
   * `bufferSize`, which still bounds each datagram), and one buffer may hold up
   * to 128 datagrams, so a receive may deliver more datagrams than credits
   * were granted (at most 128 a posted buffer). A Windows buffer that comes
   * without its segment size (`UDP_COALESCED_INFO`: a known Windows fault) is
   * one datagram. Counted in `stats().coalesced`. Linux (`UDP_GRO`, kernel 5.0 and later) and Windows
   * (`UDP_RECV_MAX_COALESCED_SIZE`, Windows 10 version 2004 and later: where
   * Windows refuses the option, `listen()` fails with
   * `ERR_DGRAM_RING_UNSUPPORTED`); `ERR_DGRAM_RING_UNSUPPORTED` elsewhere.
   * UDP only. Default `false`.
   */
  coalesce?: boolean
  /**
   * Deliver each datagram's IPv4 TTL or IPv6 hop limit as {@link Datagram.ttl}
   * (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT`; Windows `IP_HOPLIMIT`). Costs control
   * buffer space a slot, so default `false`.
   */
  ttl?: boolean
  /**
   * Deliver each datagram's IPv4 TOS byte or IPv6 traffic class as
   * {@link Datagram.tos}, and its low two bits as {@link Datagram.ecn}
   * (`IP_RECVTOS` / `IPV6_RECVTCLASS`). Default `false`.
   */
  tos?: boolean
  /**
   * Deliver the kernel's receive time of each datagram as
   * {@link Datagram.timestamp}, a `bigint` of nanoseconds since the epoch
   * (Linux `SO_TIMESTAMPNS`; Windows `SIO_TIMESTAMPING`, Windows 10 1903+).
   * Default `false`.
   */
  timestamp?: boolean
  /**
   * Multicast groups to join once bound (IPv4 groups on a `udp4` socket, IPv6
   * groups on a `udp6` one), source-specific where `source` is given. Datagrams
   * sent to a group carry `multicast: true` where the OS says so.
   */
  multicast?: MulticastMembership | readonly MulticastMembership[]
  /**
   * How the kernel shares datagrams among the sockets bound to one port with `reusePort` (Linux only:
   * `ERR_DGRAM_RING_UNSUPPORTED` elsewhere; given without `reusePort: true`, or on a raw socket,
   * `ERR_INVALID_ARG_VALUE`). `'flow'` (the default): the kernel's hash of source and destination, so
   * a flow stays with one socket, in order. `'spread'`: a classic BPF program attached to the group
   * (`SO_ATTACH_REUSEPORT_CBPF`) picks one of the group's first `spreadOver` sockets at random for each
   * datagram, so even one sender's datagrams are spread evenly; order across sockets is then not kept.
   * {@link listenWorkers} sets it up for you.
   */
  balance?: Balance
  /**
   * With `balance: 'spread'` (and only then: it is required there), how many sockets of the port's
   * group the program spreads over, 1 to 65535: the program returns an index into the group in the
   * order its sockets were bound, so bind them one after another. Until that many are bound, what
   * the program picks beyond the group's end goes by the kernel's flow hash.
   */
  spreadOver?: number
  /** Aborting closes the socket and ends the stream, as `close()` does. */
  signal?: AbortSignal
}

/** How datagrams are shared among the sockets of one `reusePort` group: see {@link ListenOptions.balance}. */
export type Balance = 'flow' | 'spread'

const BALANCES: readonly Balance[] = ['flow', 'spread']

/** Counters of a ring, from `stats()`. */
export interface RingStats {
  /** Datagrams delivered to JS. */
  received: number
  /** Payload bytes delivered (truncated datagrams count what was kept). */
  bytes: number
  /** Datagrams delivered truncated. */
  truncated: number
  /** Native→JS crossings: `received / batches` is the mean batch size. */
  batches: number
  /**
   * Datagrams taken off the socket and thrown away because nothing would read
   * them: what the kernel still held when the socket was closed by `destroy()`,
   * an rx unsubscribe, garbage collection or process exit (a plain `close()`
   * delivers it instead), and a batch that could not be handed to JS.
   */
  discarded: number
  /**
   * Receive calls that failed for a reason that does not describe the socket
   * (`ENOMEM`, `ENOBUFS`): each is reported (`'warning'`) and the ring goes on.
   */
  transientErrors: number
  /** Buffers the kernel may fill right now (at most `ringSize`). */
  posted: number
  /** Highest `posted` so far (at most `ringSize`). */
  peakPosted: number
  /** Receive buffers that held more than one datagram (`coalesce: true`); 0 otherwise. */
  coalesced: number
  /**
   * Datagrams the kernel dropped for this socket (its receive queue was full,
   * or they arrived while it was closing), as of this call, in 64 bits (the
   * kernel's own counter is 32). Absent where the OS keeps no such counter
   * (Windows).
   */
  kernelDrops?: number
}

/** Options of {@link RingSocket.close}. */
export interface CloseOptions {
  /**
   * Throw away what the kernel still holds (counted in `stats().discarded`)
   * instead of delivering it. Given while a draining close is under way, it
   * discards the rest.
   */
  discard?: boolean
}

/** A bound address, as `node:dgram`'s `address()` gives it. */
export interface AddressInfo {
  address: string
  port: number
  family: AddressFamily
}

/** @internal validated options (only resolveOptions makes them) */
export interface ResolvedOptions {
  native: NativeOptions
  backend: string
  highWaterMark: number
  signal: AbortSignal | undefined
}

const KNOWN_BACKENDS: readonly string[] = ['auto', 'recvmmsg', 'recvmsg', 'iocp', 'io_uring']
const SOCKET_TYPES: readonly SocketType[] = ['udp4', 'udp6', 'raw4', 'raw6']
/** IPPROTO_RAW: a raw socket of this protocol only sends (the caller writes the IP header); it never receives. */
const IPPROTO_RAW = 255

/** @internal Every option, in the order it is read (listenWorkers passes them on to its workers). */
export const OPTION_KEYS = [
  'type', 'protocol', 'address', 'port', 'ringSize', 'bufferSize', 'highWaterMark',
  'recvBufferSize', 'reuseAddr', 'reusePort', 'ipv6Only', 'thread', 'linger', 'coalesce', 'ttl', 'tos', 'timestamp',
  'multicast', 'backend', 'signal', 'balance', 'spreadOver',
] as const satisfies readonly (keyof ListenOptions)[]

type OptionKey = (typeof OPTION_KEYS)[number]
// What the caller passed, read once: each value is checked from here on, never re-read.
type Snapshot = Record<OptionKey, unknown>

// Reads every option exactly once (a getter or Proxy answers once; an error
// it throws propagates as it is). Nothing else of `options` is touched.
function snapshot(options: ListenOptions): Snapshot {
  const values = {} as Snapshot
  for (const key of OPTION_KEYS) values[key] = options[key]
  return values
}

function integer(options: Snapshot, name: OptionKey, min: number, max: number, fallback: number): number {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value)
  return value
}

function boolean(options: Snapshot, name: OptionKey): boolean {
  const value = options[name]
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value)
  return value
}

// Milliseconds the receive thread may hold a batch: only with the thread, which only the POSIX
// backends but io_uring have. Explicit `thread: false` with a linger is a contradiction (an
// invalid value); thread from DGRAM_RING_THREAD counts as given.
function resolveLinger(options: Snapshot, thread: boolean, backend: string): number {
  const value = options.linger
  if (value === undefined) return 0
  if (typeof value !== 'number') throw invalidArgType('linger', 'of type number', value)
  if (!(value >= 0 && value <= 1000)) throw outOfRange('linger', 'a number of milliseconds >= 0 and <= 1000', value)
  if (value === 0) return 0
  const why = lingerUnavailable(backend)
  if (why !== undefined) throw unsupported('linger', why)
  if (!thread) throw invalidArgValue('linger', 'needs thread: true (the receive thread is what holds datagrams)', value)
  return value
}

const abortedGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')?.get

// A real AbortSignal: not a Proxy, nor an object that merely inherits from
// AbortSignal.prototype (its getters would throw once the stream uses it).
function isAbortSignal(value: unknown): value is AbortSignal {
  if (typeof value !== 'object' || value === null || util.types.isProxy(value) || !(value instanceof AbortSignal)) return false
  try {
    abortedGetter?.call(value)
    return true
  } catch {
    return false
  }
}

// `balance` and `spreadOver`, checked: the group size the native side
// spreads over (Options::spread_over), 0 for the kernel's flow hash.
function resolveBalance(options: Snapshot, reusePort: boolean, raw: boolean): number {
  const balance = options.balance
  if (balance !== undefined) {
    if (typeof balance !== 'string') throw invalidArgType('balance', 'of type string', balance)
    if (!BALANCES.includes(balance as Balance)) throw invalidArgValue('balance', "must be 'flow' or 'spread'", balance)
    if (!reusePort) throw invalidArgValue('balance', 'applies only with reusePort: true', balance)
    if (raw) throw invalidArgValue('balance', 'applies to UDP sockets only', balance)
    if (process.platform !== 'linux') {
      throw unsupported(`balance: '${balance}'`, "it needs Linux's SO_REUSEPORT groups (and SO_ATTACH_REUSEPORT_CBPF for 'spread')")
    }
  }
  if (balance !== 'spread') {
    if (options.spreadOver !== undefined) throw invalidArgValue('spreadOver', "applies only with balance: 'spread'", options.spreadOver)
    return 0
  }
  if (options.spreadOver === undefined) {
    throw invalidArgValue('spreadOver', "is required with balance: 'spread' (the number of sockets of the group to spread over)", undefined)
  }
  return integer(options, 'spreadOver', 1, 65535, 0)
}

// What resolveOptions returned: a stream or Observable that validated its
// options passes them on without the socket validating them again.
const resolvedOptions = new WeakSet<ResolvedOptions>()

/**
 * @internal Validates options: throws a TypeError or RangeError with a `code` for anything wrong.
 * Reads every option of `options` once, then checks only what it read: the
 * result (frozen, plain data) is all the native side ever sees.
 */
export function resolveOptions(input: ListenOptions | undefined): ResolvedOptions {
  if (input === undefined) input = {}
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalidArgType('options', 'of type object', input)
  }
  const options = snapshot(input)
  if (options.address !== undefined && typeof options.address !== 'string') throw invalidArgType('address', 'of type string', options.address)
  let address = options.address as string | undefined
  let type = options.type as SocketType | undefined
  if (type !== undefined && !SOCKET_TYPES.includes(type)) {
    throw invalidArgValue('type', `must be one of ${SOCKET_TYPES.map((t) => `'${t}'`).join(', ')}`, type)
  }
  const ipv6Type = (t: SocketType): boolean => t === 'udp6' || t === 'raw6'
  if (address === 'localhost') address = type !== undefined && ipv6Type(type) ? '::1' : '127.0.0.1'
  if (address !== undefined) {
    const family = net.isIP(address)
    if (family === 0) throw invalidArgValue('address', 'must be a numeric IPv4 or IPv6 address (omit it for the wildcard)', address)
    type ??= family === 6 ? 'udp6' : 'udp4'
    if (ipv6Type(type) !== (family === 6)) throw invalidArgValue('address', `is not an address of type '${type}'`, address)
  }
  type ??= 'udp4'
  const raw = type === 'raw4' || type === 'raw6'
  const port = options.port
  if (port !== undefined) {
    if (typeof port !== 'number') throw invalidArgType('port', 'of type number', port)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw badPort(port)
    if (raw && port !== 0) throw invalidArgValue('port', 'does not apply to raw sockets', port)
  }
  if (!raw && options.protocol !== undefined) throw invalidArgValue('protocol', 'applies only to raw sockets', options.protocol)
  if (raw && options.protocol === undefined) throw invalidArgValue('protocol', `is required for a '${type}' socket`, options.protocol)
  const protocol = raw ? integer(options, 'protocol', 1, 255, 0) : 0
  if (protocol === IPPROTO_RAW) {
    throw invalidArgValue('protocol', 'is IPPROTO_RAW (255): such a socket can only send (the caller writes the IP header), never receive', protocol)
  }
  const ringSize = integer(options, 'ringSize', 1, 65536, 256)
  const bufferSize = integer(options, 'bufferSize', 1, 65535, 2048)
  const highWaterMark = integer(options, 'highWaterMark', 1, 2 ** 31 - 1, ringSize)
  const recvBufferSize = integer(options, 'recvBufferSize', 1, 2 ** 31 - 1, 0)
  const coalesce = boolean(options, 'coalesce')
  if (coalesce && raw) throw invalidArgValue('coalesce', `applies to UDP sockets, not '${type}'`, true)
  if (coalesce && process.platform !== 'linux' && process.platform !== 'win32') {
    throw unsupported('coalesce: true', "it needs Linux's UDP_GRO or Windows' UDP_RECV_MAX_COALESCED_SIZE")
  }
  const multicast = resolveMulticast(options.multicast, ipv6Type(type), type)
  const environment = environmentBackend()
  const fromEnvironment = options.backend === undefined && environment !== undefined
  const backend = options.backend ?? environment ?? 'auto'
  if (typeof backend !== 'string') throw invalidArgType('backend', 'of type string', backend)
  if (!KNOWN_BACKENDS.includes(backend)) {
    const where = fromEnvironment ? ' (from the environment variable DGRAM_RING_BACKEND)' : ''
    throw invalidArgValue('backend', `must be one of ${KNOWN_BACKENDS.map((b) => `'${b}'`).join(', ')}${where}`, backend)
  }
  if (backend !== 'auto' && !binding.backends.includes(backend)) {
    throw backendUnavailable(backend, binding.backends, binding.backendUnavailable(backend))
  }
  const thread = options.thread === undefined ? process.env.DGRAM_RING_THREAD === '1' : boolean(options, 'thread')
  const linger = resolveLinger(options, thread, backend)
  const reusePort = boolean(options, 'reusePort')
  const spreadOver = resolveBalance(options, reusePort, raw)
  const signal = options.signal
  if (signal !== undefined && !isAbortSignal(signal)) throw invalidArgType('signal', 'an instance of AbortSignal', signal)
  const native: NativeOptions = Object.freeze({
    ipv6: ipv6Type(type),
    raw,
    protocol,
    address: address ?? '',
    port: port ?? 0,
    ringSize,
    bufferSize,
    recvBufferSize,
    reuseAddr: boolean(options, 'reuseAddr'),
    reusePort,
    ipv6Only: boolean(options, 'ipv6Only'),
    thread,
    lingerMicroseconds: Math.round(linger * 1000),
    coalesce,
    ttl: boolean(options, 'ttl'),
    tos: boolean(options, 'tos'),
    timestamp: boolean(options, 'timestamp'),
    multicast,
    spreadOver,
  })
  const resolved: ResolvedOptions = Object.freeze({ native, backend, highWaterMark, signal })
  resolvedOptions.add(resolved)
  return resolved
}

/**
 * A bound UDP socket with a ring of receive buffers. Datagrams arrive in
 * batches, one callback a batch, only as far as credits allow: `grant(n)`
 * says how many more datagrams you will take (it replaces the previous grant;
 * each delivered datagram uses one). With no credits nothing is posted, the
 * socket is not read, and what the kernel then drops is in
 * `stats().kernelDrops`.
 *
 * Most users want {@link DatagramStream}; this is the layer under it.
 *
 * @example
 * const socket = new RingSocket({ port: 5140 }, (batch) => {
 *   for (const d of batch) handle(d)
 *   socket.grant(256)
 * }, (error) => console.error(error))
 * socket.grant(256)
 */
export class RingSocket {
  readonly #handle: NativeRingSocket
  readonly #ringSize: number
  readonly #ipv6: boolean
  readonly #raw: boolean
  #closing: Promise<void> | undefined
  #sends: SendQueue | undefined

  /**
   * Opens and binds the socket (synchronously). Throws a TypeError/RangeError
   * with a `code` for bad options or callbacks that are not functions, or a
   * system error (`code` `EADDRINUSE`, `EACCES`, …).
   * @param onBatch called with every batch, on the event loop
   * @param onError called if the ring stops on a system error (the socket stays open until `close()`)
   * @param onWarning called when a receive failed for a passing reason (`ENOMEM`, `ENOBUFS`) and the ring goes on
   */
  constructor(
    options: ListenOptions | ResolvedOptions | undefined,
    onBatch: (batch: DatagramBatch) => void,
    onError: (error: Error) => void,
    onWarning: (error: Error) => void = (error) => process.emitWarning(error),
  ) {
    if (typeof onBatch !== 'function') throw invalidArgType('onBatch', 'of type function', onBatch, 'argument')
    if (typeof onError !== 'function') throw invalidArgType('onError', 'of type function', onError, 'argument')
    if (typeof onWarning !== 'function') throw invalidArgType('onWarning', 'of type function', onWarning, 'argument')
    const resolved = resolvedOptions.has(options as ResolvedOptions) ? (options as ResolvedOptions) : resolveOptions(options as ListenOptions)
    const native = resolved.native
    this.#ringSize = native.ringSize
    this.#ipv6 = native.ipv6
    this.#raw = native.raw
    try {
      this.#handle = new binding.RingSocket(
        resolved.backend,
        native,
        (table, count, payloads) => onBatch(new DatagramBatch(table, count, payloads, this)),
        (errno, syscall) => onError(systemError(errno, syscall)),
        (errno, syscall) => onWarning(systemError(errno, syscall)),
      )
    } catch (error) {
      const system = fromNative(error, { address: native.address || (native.ipv6 ? '::' : '0.0.0.0'), port: native.port })
      if ((system as { syscall?: unknown }).syscall === 'setsockopt(UDP_RECV_MAX_COALESCED_SIZE)') {
        // Windows before 10 version 2004 (and wine): no receive coalescing. Absent, never faked.
        const why = `this Windows refuses UDP_RECV_MAX_COALESCED_SIZE (${(system as { code?: unknown }).code}); receive coalescing needs Windows 10 version 2004 or later`
        throw Object.assign(unsupported('coalesce: true', why), { cause: system })
      }
      const code = (system as { code?: unknown }).code
      if ((system as { syscall?: unknown }).syscall === 'WSAIoctl(SIO_TIMESTAMPING)' && (code === 'ENOTSUP' || code === 'EINVAL')) {
        throw Object.assign(unsupported('timestamp: true', 'this Windows has no receive timestamps (SIO_TIMESTAMPING: Windows 10 1903 and later)'), { cause: system })
      }
      if (native.raw && (code === 'EPERM' || code === 'EACCES')) {
        system.message += ': raw sockets need privilege (CAP_NET_RAW on Linux, e.g. root; administrator on Windows)'
      }
      throw system
    }
  }

  /** The backend in use (`'recvmmsg'`, `'iocp'`, …). */
  get backend(): string {
    return this.#handle.backend
  }

  /**
   * The kernel's receive queue for this socket in bytes, as the OS reports it
   * (`SO_RCVBUF`: Linux reports twice what was asked, its bookkeeping
   * included, and caps a request at `net.core.rmem_max` unless the process
   * may pass it). Undefined once closed.
   */
  get recvBufferSize(): number | undefined {
    return this.#handle.recvBufferSize
  }

  /** Buffers in the ring. */
  get ringSize(): number {
    return this.#ringSize
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined
  }

  /**
   * Allows `credits` more datagrams from now on (replacing the previous grant;
   * below 0 is 0). Ignored after close. Throws `ERR_INVALID_ARG_TYPE` for a
   * non-number, `ERR_OUT_OF_RANGE` for NaN.
   */
  grant(credits: number): void {
    if (typeof credits !== 'number') throw invalidArgType('credits', 'of type number', credits, 'argument')
    if (Number.isNaN(credits)) throw outOfRange('credits', 'a number', credits, 'argument')
    if (this.#closing === undefined) this.#handle.grant(Math.max(0, Math.min(credits, 2 ** 32 - 1)))
  }

  /** @internal the consumer gives every batch back (DatagramBatch.giveBack()) from now on */
  recycling(): void {
    if (this.#closing === undefined) this.#handle.recycling()
  }

  /** Counters; keeps answering after close with the final values. */
  stats(): RingStats {
    return this.#handle.stats()
  }

  /** The bound address. Throws `ERR_DGRAM_RING_CLOSED` after close. */
  address(): AddressInfo {
    if (this.#closing !== undefined) throw closedError('address()')
    let native
    try {
      native = this.#handle.address()
    } catch (error) {
      throw fromNative(error)
    }
    const b = native.bytes
    return native.family === 6
      ? { address: formatIPv6(b, 0), port: native.port, family: 'IPv6' }
      : { address: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, port: native.port, family: 'IPv4' }
  }

  /**
   * Closes the socket. What the kernel holds at the moment of the call is
   * delivered to `onBatch` first (credits notwithstanding; datagrams arriving
   * during the drain are not waited for, and the kernel counts them as
   * drops), or with `{ discard: true }` thrown away and counted in
   * `stats().discarded`. Then the kernel gives every buffer back, the port is
   * free and the promise resolves; no batch arrives after that. Idempotent:
   * every call returns the same promise.
   */
  close(options?: CloseOptions): Promise<void> {
    const discard = options?.discard === true
    if (this.#closing === undefined) {
      this.#sends?.close() // what this turn queued goes out; what waits for room rejects
      this.#closing = new Promise((resolve) => this.#handle.close(resolve, discard))
    } else if (discard) {
      this.#handle.close(undefined, true)
    }
    return this.#closing
  }

  /**
   * Sends `data` to `address`:`port` from this socket (its port), with
   * `options.from` as the source address and `options.interfaceIndex` as the
   * interface where given (`IP_PKTINFO` / `IPV6_PKTINFO`). Resolves once the
   * kernel took the datagram. Every send of one turn goes out in one batch
   * (one `sendmmsg`; UDP GSO for same-size runs to one destination, on Linux);
   * when the socket has no room the datagrams wait for it, in order, and none
   * is dropped. Rejects with a TypeError/RangeError (`code`) for bad
   * arguments, `ERR_DGRAM_RING_CLOSED` once closed (what was queued in the
   * turn `close()` was called in is still sent), or a system error of this
   * datagram's own (`EACCES` for a broadcast address, `EMSGSIZE` beyond 65507
   * bytes over IPv4 or 65527 over IPv6, `EINVAL` for a `from` that is not
   * one of this host's addresses, …), which leaves the others unharmed.
   */
  send(data: string | ArrayBufferView, port: number, address: string, options?: SendOptions): Promise<void> {
    if (this.#sends === undefined) {
      if (this.#closing !== undefined) return Promise.reject(closedError('send()'))
      const handle = this.#handle
      this.#sends = new SendQueue({
        ipv6: this.#ipv6,
        raw: this.#raw,
        handle: () => (this.#closing === undefined ? handle : undefined),
      })
    }
    return this.#sends.send(data, port, address, options)
  }

  /**
   * While it waits for datagrams, the socket keeps the event loop alive (as a
   * `node:dgram` socket does); `unref()` lets the process exit regardless.
   * Returns the socket.
   */
  unref(): this {
    this.#handle.unref()
    return this
  }

  /** Undoes `unref()`. Returns the socket. */
  ref(): this {
    this.#handle.ref()
    return this
  }
}
