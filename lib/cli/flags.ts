// The command line of `dgram-ring listen`: flags read and checked, every
// mistake one line that names the flag, and library option names translated
// back into flags.
import net from 'node:net'
import { parseArgs } from 'node:util'
import { lingerUnavailable } from '../linger'
import type { BackendName, ListenOptions, SocketType } from '../socket'
import { zoneConverter } from '../parsers/timezone'

/** The command's own default --buffer-size: the largest UDP payload fits, so nothing `node:dgram` delivers whole is cut. */
export const DEFAULT_BUFFER_SIZE = 65535

/**
 * The receive buffer the command asks for unless --recv-buffer-size says
 * otherwise: about 80 ms of 200-byte messages at 100k/s, so that a pause of
 * the process (a garbage collection, a slow write) does not become loss.
 * Linux grants it with CAP_NET_ADMIN (SO_RCVBUFFORCE), else up to
 * net.core.rmem_max; the command says what it got.
 */
export const DEFAULT_RECV_BUFFER_SIZE = 16 * 1024 * 1024

/**
 * How long, in milliseconds, the receive thread holds datagrams before the
 * command formats and writes them, unless --linger says otherwise: at low
 * rates one write a linger instead of one a burst, which is most of what a
 * message costs there (at 50k/s on a 2-core VM, --parse raw went from 2.9 to
 * 1.2 µs a message). A log line reaches the file at most this much later.
 */
export const DEFAULT_LINGER_MS = 10

/** A bad command line: reported in one line, exit status 2. */
export class UsageError extends Error {}

/** The library's validation error codes: a bad value given on the command line. */
export const USAGE_CODES: ReadonlySet<unknown> = new Set([
  'ERR_INVALID_ARG_TYPE',
  'ERR_INVALID_ARG_VALUE',
  'ERR_OUT_OF_RANGE',
  'ERR_SOCKET_BAD_PORT',
  'ERR_DGRAM_RING_BACKEND_UNAVAILABLE',
])

interface FlagSpec {
  readonly type: 'string' | 'boolean'
  readonly short?: string
}

const LISTEN_FLAGS = {
  address: { type: 'string' },
  port: { type: 'string', short: 'p' },
  type: { type: 'string' },
  count: { type: 'string', short: 'n' },
  duration: { type: 'string' },
  parse: { type: 'string' },
  encoding: { type: 'string' },
  timezone: { type: 'string' },
  backend: { type: 'string' },
  'ring-size': { type: 'string' },
  'buffer-size': { type: 'string' },
  'recv-buffer-size': { type: 'string' },
  'reuse-port': { type: 'boolean' },
  timestamp: { type: 'boolean' },
  thread: { type: 'string' },
  linger: { type: 'string' },
  stats: { type: 'boolean' },
  jetstream: { type: 'string' },
  subject: { type: 'string' },
  stream: { type: 'string' },
  'max-in-flight': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Record<string, FlagSpec>

type ListenFlag = keyof typeof LISTEN_FLAGS

/** Flags as given: string flags by value (the last one wins), boolean flags present or not. */
export interface Flags {
  readonly values: ReadonlyMap<ListenFlag, string>
  readonly switches: ReadonlySet<ListenFlag>
}

// Non-strict parsing with tokens, so that every mistake gets a one-line
// message of our own instead of parseArgs' multi-line ones.
export function parseFlags(args: readonly string[]): Flags {
  const { tokens } = parseArgs({ args: [...args], options: LISTEN_FLAGS, strict: false, allowPositionals: true, tokens: true })
  const values = new Map<ListenFlag, string>()
  const switches = new Set<ListenFlag>()
  for (const token of tokens) {
    if (token.kind === 'positional') throw new UsageError(`unexpected argument '${token.value}' (see dgram-ring listen --help)`)
    if (token.kind !== 'option') continue
    if (!Object.hasOwn(LISTEN_FLAGS, token.name)) throw new UsageError(`unknown option '${token.rawName}' (see dgram-ring listen --help)`)
    const name = token.name as ListenFlag
    if (LISTEN_FLAGS[name].type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`option '${token.rawName}' takes no value`)
      switches.add(name)
    } else {
      if (token.value === undefined) throw new UsageError(`option '${token.rawName}' needs a value`)
      values.set(name, token.value)
    }
  }
  return { values, switches }
}

function integerFlag(flags: Flags, name: ListenFlag, min: number, max: number): number | undefined {
  const text = flags.values.get(name)
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not '${text}'`)
  }
  return value
}

function choiceFlag<const T extends string>(flags: Flags, name: ListenFlag, choices: readonly T[]): T | undefined {
  const text = flags.values.get(name)
  if (text === undefined) return undefined
  const choice = choices.find((c) => c === text)
  if (choice === undefined) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, not '${text}'`)
  return choice
}

// setTimeout's longest delay, in whole seconds.
const MAX_DURATION_S = Math.floor((2 ** 31 - 1) / 1000)

function durationFlag(flags: Flags): number | undefined {
  const text = flags.values.get('duration')
  if (text === undefined) return undefined
  const seconds = Number(text)
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(text) || seconds <= 0 || seconds > MAX_DURATION_S) {
    throw new UsageError(`--duration must be a number of seconds > 0 and <= ${MAX_DURATION_S}, not '${text}'`)
  }
  return seconds
}

function lingerFlag(flags: Flags): number | undefined {
  const text = flags.values.get('linger')
  if (text === undefined) return undefined
  const ms = Number(text)
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(text) || ms > 1000) {
    throw new UsageError(`--linger must be a number of milliseconds from 0 to 1000, not '${text}'`)
  }
  return ms
}

function addressFlag(flags: Flags): string | undefined {
  const address = flags.values.get('address')
  if (address !== undefined && address !== 'localhost' && net.isIP(address) === 0) {
    throw new UsageError(`--address must be a numeric IPv4 or IPv6 address or localhost, not '${address}'`)
  }
  // Whether it fits --type, the library says: inFlagTerms() puts that in the command's terms.
  return address
}

function timeZoneFlag(flags: Flags): string | undefined {
  const text = flags.values.get('timezone')
  if (text === undefined) return undefined
  try {
    zoneConverter(text)
  } catch {
    throw new UsageError(`--timezone must be an IANA time zone (Asia/Tokyo), an offset (+09:00) or UTC, not '${text}'`)
  }
  return text
}

/** --jetstream and its flags: where each datagram's JSON goes instead of stdout. */
export interface JetStreamTarget {
  /** The NATS server URLs (--jetstream, comma-separated). */
  servers: string[]
  subject: string
  stream: string | undefined
  maxInFlight: number | undefined
}

function jetStreamFlags(flags: Flags): JetStreamTarget | undefined {
  const servers = flags.values.get('jetstream')
  const subject = flags.values.get('subject')
  const stream = flags.values.get('stream')
  const maxInFlight = integerFlag(flags, 'max-in-flight', 1, 65536)
  if (servers === undefined) {
    const stray = [subject !== undefined && '--subject', stream !== undefined && '--stream', maxInFlight !== undefined && '--max-in-flight'].find(Boolean)
    if (stray) throw new UsageError(`${stray} applies to --jetstream only`)
    return undefined
  }
  const urls = servers.split(',').map((url) => url.trim())
  for (const url of urls) {
    if (!/^(?:nats|tls):\/\/[^\s/]+$|^[^\s/:]+:\d+$/.test(url)) {
      throw new UsageError(`--jetstream must be NATS server URLs, comma-separated (nats://127.0.0.1:4222), not '${servers}'`)
    }
  }
  if (subject === undefined) throw new UsageError('--jetstream needs --subject')
  if (subject === '' || /[\s*>]/.test(subject) || subject.startsWith('.') || subject.endsWith('.') || subject.includes('..')) {
    throw new UsageError(`--subject must be a NATS subject without spaces or wildcards (logs.syslog), not '${subject}'`)
  }
  if (stream !== undefined && (stream === '' || /[\s.*>/\\]/.test(stream))) {
    throw new UsageError(`--stream must be a JetStream stream name (no spaces, dots, slashes or wildcards), not '${stream}'`)
  }
  return { servers: urls, subject, stream, maxInFlight }
}

export type Parse = 'raw' | 'syslog' | 'statsd'
export type Encoding = 'utf8' | 'base64' | 'hex'

/** What `dgram-ring listen` was asked to do. */
export interface ListenCommand {
  options: ListenOptions
  count: number | undefined
  duration: number | undefined
  parse: Parse
  encoding: Encoding | undefined
  /** --timezone, checked; undefined: UTC. */
  timeZone: string | undefined
  stats: boolean
  /** The receive buffer asked for (--recv-buffer-size or the default), in bytes. */
  recvBufferSize: number
  /** --jetstream: publish into JetStream instead of writing stdout. */
  jetstream: JetStreamTarget | undefined
}

export function parseListen(flags: Flags, backends: readonly string[]): ListenCommand {
  const parse = choiceFlag(flags, 'parse', ['raw', 'syslog', 'statsd'] as const) ?? 'raw'
  const encoding = choiceFlag(flags, 'encoding', ['utf8', 'base64', 'hex'] as const)
  if (encoding !== undefined && parse !== 'raw') throw new UsageError(`--encoding applies to --parse raw only`)
  const timeZone = timeZoneFlag(flags)
  if (timeZone !== undefined && parse !== 'syslog') throw new UsageError(`--timezone applies to --parse syslog only`)
  const thread = (choiceFlag(flags, 'thread', ['on', 'off'] as const) ?? 'on') === 'on'
  const backend = choiceFlag(flags, 'backend', ['auto', ...backends] as BackendName[])
  const linger = lingerFlag(flags)
  if (linger && !thread) throw new UsageError('--linger needs --thread on (the receive thread is what holds datagrams)')
  const options: ListenOptions = {
    address: addressFlag(flags),
    port: integerFlag(flags, 'port', 0, 65535),
    type: choiceFlag<SocketType>(flags, 'type', ['udp4', 'udp6']),
    // The library validates too; checking here names the flag in the message.
    backend,
    ringSize: integerFlag(flags, 'ring-size', 1, 65536),
    bufferSize: integerFlag(flags, 'buffer-size', 1, 65535) ?? DEFAULT_BUFFER_SIZE,
    recvBufferSize: integerFlag(flags, 'recv-buffer-size', 1, 2 ** 31 - 1) ?? DEFAULT_RECV_BUFFER_SIZE,
    reusePort: flags.switches.has('reuse-port') || undefined,
    // receivedAt then says when the kernel received each datagram (format.ts).
    timestamp: flags.switches.has('timestamp') || undefined,
    // A log receiver must not lose what arrives while JavaScript runs.
    thread,
    // Given explicitly where it cannot apply, the library says why (in flag terms).
    linger: linger ?? (thread && lingerUnavailable(backend) === undefined ? DEFAULT_LINGER_MS : undefined),
  }
  return {
    recvBufferSize: options.recvBufferSize as number,
    options,
    count: integerFlag(flags, 'count', 1, Number.MAX_SAFE_INTEGER),
    duration: durationFlag(flags),
    parse,
    encoding,
    timeZone,
    stats: flags.switches.has('stats'),
    jetstream: jetStreamFlags(flags),
  }
}

/** The library's `The "recvBufferSize" option …` in the command's terms: `--recv-buffer-size …`. */
export function inFlagTerms(message: string): string {
  return message.replace(/The "(\w+)" option/g, (text, name: string) => {
    const flag = name.replace(/[A-Z]/g, (upper) => `-${upper.toLowerCase()}`)
    return Object.hasOwn(LISTEN_FLAGS, flag) ? `--${flag}` : text
  })
}

