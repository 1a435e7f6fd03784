// The `dgram-ring` command. `listen` writes every datagram it receives as one
// JSON line on stdout; `bench` runs the loopback benchmark from the source tree.
// Exit codes: 0 done (including a reader that went away, as `| head` does),
// 1 a system error, 2 a bad command line.
import { isUtf8 } from 'node:buffer'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Transform, pipeline } from 'node:stream'
import { parseArgs } from 'node:util'
import type { DatagramStream } from './stream'
import type { BackendName, ListenOptions, RingStats, SocketType } from './socket'
import type { Datagram } from './datagram'
import { parseStatsd, parseSyslog } from './parsers'

const HELP = `Usage: dgram-ring <command> [options]

Commands:
  listen   Receive UDP datagrams and write each as one JSON line on stdout
  bench    Run the loopback benchmark (bench/run.mjs of the source tree);
           arguments after "bench" are passed to it (try: dgram-ring bench --help)

Options:
  -h, --help     Show this help (dgram-ring listen --help: the listen options)
  -V, --version  Show the version

Exit status: 0 done, 1 system error (address in use, ...), 2 bad command line.
`

function listenHelp(backends: readonly string[]): string {
  return `Usage: dgram-ring listen [options]

Receives UDP datagrams and writes each as one JSON line on stdout, with
remoteAddress, remotePort, localAddress, interfaceIndex, size, truncated and
the payload (raw: data and encoding) or the parsed fields (syslog: one line a
datagram; statsd: one line a metric). Stops on SIGINT/SIGTERM, --count or
--duration: what was received is written, then a summary on stderr.

Options:
      --address ADDR       Numeric IPv4/IPv6 address or localhost to bind
                           (default: all, 0.0.0.0 or ::)
  -p, --port PORT          Port to bind, 0 for any free one (default: 0)
      --type udp4|udp6     Socket type (default: from --address, else udp4)
  -n, --count N            Exit after N datagrams
      --duration SECONDS   Exit after SECONDS (fractions allowed)
      --parse raw|syslog|statsd
                           How to write payloads (default: raw)
      --encoding utf8|base64|hex
                           Raw payload encoding (default: utf8; a payload that is
                           not valid UTF-8 is written as base64, "encoding":"base64")
      --backend NAME       Receive backend: ${['auto', ...backends].join(', ')} (default: auto)
      --ring-size N        Receive buffers in the ring, 1-65536 (default: 256)
      --buffer-size BYTES  Bytes a buffer, 1-65535 (default: 2048); longer
                           datagrams are cut and marked "truncated":true
      --stats              Every second, a stats line on stderr
  -h, --help               Show this help

On stderr: "dgram-ring: listening on ADDRESS:PORT (BACKEND)" once bound.
`
}

/** A bad command line: reported in one line, exit status 2. */
class UsageError extends Error {}

/** The library's validation error codes: a bad value given on the command line. */
const USAGE_CODES: ReadonlySet<unknown> = new Set([
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
  backend: { type: 'string' },
  'ring-size': { type: 'string' },
  'buffer-size': { type: 'string' },
  stats: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Record<string, FlagSpec>

type ListenFlag = keyof typeof LISTEN_FLAGS

/** Flags as given: string flags by value (the last one wins), boolean flags present or not. */
interface Flags {
  readonly values: ReadonlyMap<ListenFlag, string>
  readonly switches: ReadonlySet<ListenFlag>
}

// Non-strict parsing with tokens, so that every mistake gets a one-line
// message of our own instead of parseArgs' multi-line ones.
function parseFlags(args: readonly string[]): Flags {
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

type Parse = 'raw' | 'syslog' | 'statsd'
type Encoding = 'utf8' | 'base64' | 'hex'

interface ListenCommand {
  options: ListenOptions
  count: number | undefined
  duration: number | undefined
  parse: Parse
  encoding: Encoding | undefined
  stats: boolean
}

function parseListen(flags: Flags, backends: readonly string[]): ListenCommand {
  const address = flags.values.get('address')
  if (address !== undefined && address !== 'localhost' && net.isIP(address) === 0) {
    throw new UsageError(`--address must be a numeric IPv4 or IPv6 address or localhost, not '${address}'`)
  }
  const parse = choiceFlag(flags, 'parse', ['raw', 'syslog', 'statsd'] as const) ?? 'raw'
  const encoding = choiceFlag(flags, 'encoding', ['utf8', 'base64', 'hex'] as const)
  if (encoding !== undefined && parse !== 'raw') throw new UsageError(`--encoding applies to --parse raw only`)
  const options: ListenOptions = {
    address,
    port: integerFlag(flags, 'port', 0, 65535),
    type: choiceFlag<SocketType>(flags, 'type', ['udp4', 'udp6']),
    // The library validates too; checking here names the flag in the message.
    backend: choiceFlag(flags, 'backend', ['auto', ...backends] as BackendName[]),
    ringSize: integerFlag(flags, 'ring-size', 1, 65536),
    bufferSize: integerFlag(flags, 'buffer-size', 1, 65535),
  }
  return {
    options,
    count: integerFlag(flags, 'count', 1, Number.MAX_SAFE_INTEGER),
    duration: durationFlag(flags),
    parse,
    encoding,
    stats: flags.switches.has('stats'),
  }
}

// --- output ---------------------------------------------------------------------

/** What every output line starts with. Undefined fields (not reported by the OS) are left out by JSON.stringify. */
interface DatagramFields {
  remoteAddress: string
  remotePort: number
  localAddress: string | undefined
  interfaceIndex: number | undefined
  size: number
  truncated: boolean
}

function fieldsOf(datagram: Datagram): DatagramFields {
  return {
    remoteAddress: datagram.remoteAddress,
    remotePort: datagram.remotePort,
    localAddress: datagram.localAddress,
    interfaceIndex: datagram.interfaceIndex,
    size: datagram.data.length,
    truncated: datagram.truncated,
  }
}

/** The records a datagram becomes, one output line each. */
type Formatter = (datagram: Datagram) => readonly object[]

function formatter(parse: Parse, encoding: Encoding | undefined): Formatter {
  switch (parse) {
    case 'syslog':
      return (d) => [{ ...fieldsOf(d), ...parseSyslog(d.data) }]
    case 'statsd':
      return (d) => {
        const fields = fieldsOf(d)
        return parseStatsd(d.data).map((metric) => ({ ...fields, ...metric }))
      }
    case 'raw':
      return (d) => {
        const data = d.data
        // Text stays readable by default; bytes that are not UTF-8 would be mangled by it, so they go as base64.
        const as = encoding ?? (isUtf8(data) ? 'utf8' : 'base64')
        return [{ ...fieldsOf(d), data: data.toString(as), encoding: as }]
      }
  }
}

/**
 * Datagrams in, JSON lines out. After `limit` datagrams it calls `onLimit`
 * and drops the rest: those the ring delivered before the socket closed.
 */
function jsonLines(format: Formatter, limit: number, onLimit: () => void): Transform {
  let seen = 0
  return new Transform({
    writableObjectMode: true,
    transform(datagram: Datagram, _encoding, callback) {
      if (seen === limit) return callback()
      seen++
      let text = ''
      for (const record of format(datagram)) text += `${JSON.stringify(record)}\n`
      if (seen === limit) onLimit()
      callback(null, text)
    },
  })
}

// --- stats ----------------------------------------------------------------------

function drops(stats: RingStats): string {
  return stats.kernelDrops === undefined ? 'kernel drops not counted here' : plural(stats.kernelDrops, 'kernel drop')
}

/** Writes a stats line every second until stopped: on a TTY one line rewritten in place, else a line each. */
function reportStats(stream: DatagramStream, err: NodeJS.WriteStream): () => void {
  const tty = err.isTTY === true
  let last = stream.stats()
  let lastTime = process.hrtime.bigint()
  const timer = setInterval(() => {
    const now = process.hrtime.bigint()
    const stats = stream.stats()
    const seconds = Number(now - lastTime) / 1e9
    const pps = Math.round((stats.received - last.received) / seconds)
    const mbps = (stats.bytes - last.bytes) / seconds / 1e6
    const line = `dgram-ring: ${pps} pps, ${mbps.toFixed(2)} MB/s, ${drops(stats)}, ${stats.posted} buffers posted`
    err.write(tty ? `\r\x1b[K${line}` : `${line}\n`)
    last = stats
    lastTime = now
  }, 1000)
  return () => {
    clearInterval(timer)
    if (tty) err.write('\r\x1b[K')
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function summary(stats: RingStats): string {
  return `dgram-ring: ${plural(stats.received, 'datagram')}, ${plural(stats.bytes, 'byte')}, ${stats.truncated} truncated, ${drops(stats)}\n`
}

// --- commands -------------------------------------------------------------------

function describeAddress(stream: DatagramStream): string {
  const { address, port, family } = stream.address()
  return family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`
}

function codeOf(error: unknown): unknown {
  return error instanceof Error ? (error as Error & { code?: unknown }).code : undefined
}

async function listenCommand(args: readonly string[]): Promise<number> {
  const flags = parseFlags(args)
  // Loaded here, not at the top: --version, --help and bench work without the native addon.
  const { backends, listen } = await import('./index')
  const out = process.stdout
  const err = process.stderr
  if (flags.switches.has('help')) {
    out.write(listenHelp(backends))
    return 0
  }
  const command = parseListen(flags, backends)
  const stream = await listen(command.options)
  err.write(`dgram-ring: listening on ${describeAddress(stream)} (${stream.backend})\n`)
  const stopStats = command.stats ? reportStats(stream, err) : undefined
  const timer = command.duration === undefined ? undefined : setTimeout(() => void stream.close(), command.duration * 1000)
  let signalled = false
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second signal does not wait for a reader that stopped reading.
    if (signalled) process.exit(128 + os.constants.signals[signal])
    signalled = true
    void stream.close()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const lines = jsonLines(formatter(command.parse, command.encoding), command.count ?? Infinity, () => void stream.close())
  // pipeline() carries stdout's backpressure back to the ring: a slow reader means fewer posted buffers.
  const failure = await new Promise<Error | undefined>((resolve) => pipeline(stream, lines, out, (error) => resolve(error ?? undefined)))

  clearTimeout(timer)
  stopStats?.()
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  // The reader went away (`| head`): that is how such a pipe ends, not a failure.
  if (codeOf(failure) === 'EPIPE') return 0
  if (failure !== undefined) throw failure
  err.write(summary(stream.stats()))
  return 0
}

function benchCommand(args: readonly string[]): Promise<number> {
  const script = path.join(__dirname, '..', 'bench', 'run.mjs')
  if (!fs.existsSync(script)) {
    throw new Error(`bench needs ${script}, which only the source repository has (git clone, npm install, then run it there)`)
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit' })
    // Stay alive until the benchmark has printed its results, and pass signals on to it.
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal)
    process.on('SIGINT', forward)
    process.on('SIGTERM', forward)
    const done = (): void => {
      process.off('SIGINT', forward)
      process.off('SIGTERM', forward)
    }
    child.on('error', (error) => {
      done()
      reject(error)
    })
    child.on('exit', (code, signal) => {
      done()
      resolve(code ?? 128 + (signal === null ? 0 : os.constants.signals[signal]))
    })
  })
}

function version(): string {
  const manifest: unknown = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
  const value = typeof manifest === 'object' && manifest !== null ? (manifest as { version?: unknown }).version : undefined
  if (typeof value !== 'string') throw new Error('package.json has no version')
  return value
}

async function run(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'listen':
      return listenCommand(rest)
    case 'bench':
      return benchCommand(rest)
    case '-h':
    case '--help':
      process.stdout.write(HELP)
      return 0
    case '-V':
    case '--version':
      process.stdout.write(`${version()}\n`)
      return 0
    case undefined:
      throw new UsageError('missing command: listen or bench (see dgram-ring --help)')
    default:
      throw new UsageError(
        command.startsWith('-') ? `unknown option '${command}' (see dgram-ring --help)` : `unknown command '${command}' (see dgram-ring --help)`,
      )
  }
}

/**
 * Runs the `dgram-ring` command line with `argv` (the arguments after the
 * script name) on this process's stdio and signals, and resolves with the exit
 * status: 0 done, 1 a system error, 2 a bad command line. Errors are reported
 * on stderr as one `dgram-ring: …` line; the promise never rejects.
 *
 * @example
 * main(process.argv.slice(2)).then((code) => { process.exitCode = code })
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await run(argv)
  } catch (error) {
    const usage = error instanceof UsageError || USAGE_CODES.has(codeOf(error))
    // One line, whatever the error: scripts read stderr line by line.
    const message = (error instanceof Error ? error.message : String(error)).split('\n')[0]
    process.stderr.write(`dgram-ring: ${message}\n`)
    return usage ? 2 : 1
  }
}
