// `dgram-ring listen`: datagrams in, JSON lines out on stdout, with stdout's
// backpressure carried back to the ring, and a summary on stderr that adds up.
import { once } from 'node:events'
import os from 'node:os'
import type { DatagramStream } from '../stream'
import type { RingStats } from '../socket'
import type { BatchFormatter } from './format'
import { LineBuffer, type Lines } from './output'
import { DEFAULT_BUFFER_SIZE, parseFlags, parseListen, type ListenCommand } from './flags'

export function listenHelp(backends: readonly string[]): string {
  return `Usage: dgram-ring listen [options]

Receives UDP datagrams and writes each as one JSON line on stdout, with
remoteAddress, remotePort, localAddress, interfaceIndex, receivedAt, size,
truncated and the payload (raw: data and encoding) or the parsed fields
(syslog: one line a datagram; statsd: one line a metric line). Stops on
SIGINT/SIGTERM/SIGHUP, --count or --duration: what the socket holds is
written, then a summary on stderr.

Options:
      --address ADDR       Numeric IPv4/IPv6 address or localhost to bind
                           (default: all, 0.0.0.0 or ::)
  -p, --port PORT          Port to bind, 0 for any free one (default: 0)
      --type udp4|udp6     Socket type (default: from --address, else udp4)
      --reuse-port         SO_REUSEPORT: several receivers share the port
  -n, --count N            Exit after writing N datagrams
      --duration SECONDS   Exit after SECONDS (fractions allowed), even if
                           stdout's reader stalls (at most a second later)
      --parse raw|syslog|statsd
                           How to write payloads (default: raw)
      --encoding utf8|base64|hex
                           Raw payload encoding (default: utf8; a payload that is
                           not valid UTF-8 is written as base64, "encoding":"base64")
      --timezone ZONE      Zone of RFC 3164 syslog timestamps, which carry none:
                           an IANA name (Asia/Tokyo), an offset (+09:00) or UTC
                           (default: UTC)
      --backend NAME       Receive backend: ${['auto', ...backends].join(', ')} (default: auto)
      --ring-size N        Receive buffers in the ring, 1-65536 (default: 256)
      --buffer-size BYTES  Bytes a buffer, 1-65535 (default: ${DEFAULT_BUFFER_SIZE}); longer
                           datagrams are cut and marked "truncated":true
      --recv-buffer-size BYTES
                           SO_RCVBUF: the kernel's queue for bursts and pauses
                           (default: 16 MiB; Linux caps it at net.core.rmem_max
                           without CAP_NET_ADMIN: the command warns)
      --thread on|off      A receive thread fills the ring while JavaScript
                           runs (default: on; POSIX systems)
      --linger MS          With the receive thread, hold datagrams up to MS
                           milliseconds before writing them: one write a
                           linger instead of one a burst, far less CPU at low
                           rates (default: 10; 0: write at once; not with
                           io_uring or on Windows)
      --timestamp          receivedAt is when the kernel received each datagram
                           (SO_TIMESTAMPNS; Windows SIO_TIMESTAMPING), not when
                           its batch reached the command
      --stats              Every second, a stats line on stderr (with
                           --jetstream: acknowledged and in flight too)
      --jetstream URLS     Publish each datagram's JSON (its lines, for statsd)
                           as one message into NATS JetStream instead of
                           writing stdout; URLS: nats://HOST:PORT, comma-separated
                           (needs npm packages @nats-io/transport-node and
                           @nats-io/jetstream)
      --subject SUBJECT    The subject to publish on (with --jetstream)
      --stream NAME        The stream expected to store it (default: the one
                           whose subjects hold SUBJECT)
      --max-in-flight N    Publishes unacknowledged at most, 1-65536 (default
                           256); beyond, the ring gets no buffers
  -h, --help               Show this help

On stderr: "dgram-ring: listening on ADDRESS:PORT (BACKEND, receive thread,
linger MS ms, receive buffer SIZE)" once bound, a warning if the system capped
the receive buffer, and at the end "dgram-ring: written W, received R, not written N, discarded D,
kernel drops K, truncated T, bytes B" (datagrams, but bytes). With
--jetstream: "dgram-ring: acknowledged A, failed F, received R, not published
N, discarded D, kernel drops K, truncated T, bytes B, retried X, duplicates
Y": acknowledged + failed + not published + discarded + kernel drops = sent
(at exit, acknowledgements are awaited 10 s at most; the rest is failed).
`
}

/** How long --duration waits, once over, for stdout to take what is left. */
const FLUSH_GRACE_MS = 1000

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

function codeOf(error: unknown): unknown {
  return error instanceof Error ? (error as Error & { code?: unknown }).code : undefined
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function describeAddress(stream: DatagramStream): string {
  const { address, port, family } = stream.address()
  return family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`
}

function describeBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`
  return `${bytes} bytes`
}

/** The receive buffer the socket got, in the units it was asked in (Linux reports twice that). */
function grantedRecvBuffer(stream: DatagramStream): number | undefined {
  const reported = stream.recvBufferSize
  if (reported === undefined) return undefined
  return process.platform === 'linux' ? reported / 2 : reported
}

/** The listening line, and a warning when the system gave less receive buffer than asked. */
export function announce(stream: DatagramStream, command: ListenCommand, err: NodeJS.WriteStream): void {
  const granted = grantedRecvBuffer(stream)
  // io_uring and iocp have no receive thread of ours: the kernel fills their buffers.
  const threaded = command.options.thread && (stream.backend === 'recvmmsg' || stream.backend === 'recvmsg')
  const thread = threaded ? ', receive thread' : ''
  const linger = command.options.linger ? `, linger ${command.options.linger} ms` : ''
  const buffer = granted === undefined ? '' : `, receive buffer ${describeBytes(granted)}`
  err.write(`dgram-ring: listening on ${describeAddress(stream)} (${stream.backend}${thread}${linger}${buffer})\n`)
  if (granted !== undefined && granted < command.recvBufferSize) {
    err.write(
      `dgram-ring: warning: the receive buffer is ${describeBytes(granted)}, not the ${describeBytes(command.recvBufferSize)} asked for: ` +
        (process.platform === 'linux'
          ? `the system caps it at net.core.rmem_max (sysctl -w net.core.rmem_max=${command.recvBufferSize}, or run with CAP_NET_ADMIN)\n`
          : `the system capped it\n`),
    )
  }
}

/** Writes a stats line every second until stopped: on a TTY one line rewritten in place, else a line each. */
export function reportStats(stream: DatagramStream, err: NodeJS.WriteStream, more: () => string = () => ''): () => void {
  const tty = err.isTTY === true
  let last = stream.stats()
  let lastTime = process.hrtime.bigint()
  const timer = setInterval(() => {
    const now = process.hrtime.bigint()
    const stats = stream.stats()
    const seconds = Number(now - lastTime) / 1e9
    const pps = Math.round((stats.received - last.received) / seconds)
    const mbps = (stats.bytes - last.bytes) / seconds / 1e6
    const drops = stats.kernelDrops === undefined ? 'kernel drops not counted here' : plural(stats.kernelDrops, 'kernel drop')
    const line = `dgram-ring: ${pps} pps, ${mbps.toFixed(2)} MB/s, ${drops}, ${plural(stats.posted, 'buffer')} posted${more()}`
    err.write(tty ? `\r\x1b[K${line}` : `${line}\n`)
    last = stats
    lastTime = now
  }, 1000)
  return () => {
    clearInterval(timer)
    if (tty) err.write('\r\x1b[K')
  }
}

/**
 * The last line on stderr. Datagrams: `written` (stdout took their lines),
 * `received` (off the socket), `not written` (received past --count, or left
 * when --duration's grace ran out), `discarded` (taken off the socket at close
 * and thrown away), `kernel drops` (`n/a` where the OS counts none).
 * received = written + not written; sent = received + discarded + kernel drops.
 */
export function summary(stats: RingStats, written: number): string {
  return (
    `dgram-ring: written ${written}, received ${stats.received}, not written ${stats.received - written}, ` +
    `discarded ${stats.discarded}, kernel drops ${stats.kernelDrops ?? 'n/a'}, truncated ${stats.truncated}, bytes ${stats.bytes}\n`
  )
}

/**
 * Datagrams whose lines all reached the output of the write under way
 * (`oldest`): the stream's handle knows how many of its bytes it has not
 * written yet (libuv's write queue); the ones before those are out.
 */
function partlyWritten(out: NodeJS.WriteStream, oldest: Lines): number {
  const unwritten = (out as NodeJS.WriteStream & { _handle?: { writeQueueSize?: unknown } })._handle?.writeQueueSize
  if (typeof unwritten !== 'number' || unwritten > oldest.bytes.length) return 0
  const reached = oldest.bytes.length - unwritten
  let datagrams = 0
  while (datagrams < oldest.ends.length && (oldest.ends[datagrams] as number) <= reached) datagrams++
  return datagrams
}

export async function listenCommand(args: readonly string[]): Promise<number> {
  const flags = parseFlags(args)
  // Loaded here, not at the top: --version, --help and bench work without the native addon.
  const { backends, listen } = await import('../index')
  if (flags.switches.has('help')) {
    process.stdout.write(listenHelp(backends))
    return 0
  }
  const command = parseListen(flags, backends)
  // With the addon, like the index: the formatter reads the batch's table.
  const { batchFormatter } = await import('./format')
  if (command.jetstream !== undefined) {
    // Connected before the socket is bound: a server or stream that is not there fails the command at once.
    const { openSink, publish } = await import('./jetstream')
    const sink = await openSink(command.jetstream)
    let stream: DatagramStream
    try {
      stream = await listen(command.options)
    } catch (error) {
      sink.destroy()
      throw error
    }
    return publish(stream, sink, command, batchFormatter(command), process.stderr)
  }
  return receive(await listen(command.options), command, batchFormatter(command), process.stdout, process.stderr)
}

async function receive(
  stream: DatagramStream,
  command: ListenCommand,
  format: BatchFormatter,
  out: NodeJS.WriteStream,
  err: NodeJS.WriteStream,
): Promise<number> {
  // Aborted when output may no longer be waited for: a reader went away
  // (EPIPE: end quietly), output failed, or --duration's grace ran out.
  const stop = new AbortController()
  let broken = false
  let failure: Error | undefined
  const onOutputError = (error: Error): void => {
    if (codeOf(error) === 'EPIPE') broken = true
    else failure ??= error
    stop.abort()
    void stream.close()
  }
  // Never removed: a late EPIPE must not become an uncaught exception.
  out.on('error', onOutputError)
  err.on('error', onOutputError)

  announce(stream, command, err)
  const stopStats = command.stats ? reportStats(stream, err) : undefined
  let grace: NodeJS.Timeout | undefined
  const timer =
    command.duration === undefined
      ? undefined
      : setTimeout(() => {
          void stream.close()
          grace = setTimeout(() => stop.abort(), FLUSH_GRACE_MS)
        }, command.duration * 1000)
  let signalled = false
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second signal does not wait for a reader that stopped reading.
    if (signalled) process.exit(128 + os.constants.signals[signal])
    signalled = true
    // The draining close: what the kernel holds still comes through the stream.
    void stream.close()
  }
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal)

  const lines = new LineBuffer()
  const limit = command.count ?? Infinity
  let accepted = 0 // datagrams whose lines were handed to stdout
  let written = 0 // ... and that stdout took
  const inFlight: Lines[] = [] // writes stdout has not finished, oldest first
  let onFlushed: (() => void) | undefined
  // A batch at a time: its lines as one buffer, one write (the batch's
  // datagrams share their receive time and their crossing). The lines are
  // copies, so each batch's memory goes back to the ring as the loop moves on
  // (lent memory only: the default 64 KiB buffers' payloads are copied).
  try {
    for await (const batch of stream.batches({ recycle: true })) {
      // Reading to the end, also past --count and after a stop, so that every
      // datagram received is counted (as not written when it was not).
      if (accepted === limit || stop.signal.aborted) continue
      const take = Math.min(batch.length, limit - accepted)
      format(batch, 0, take, lines)
      accepted += take
      if (accepted === limit) void stream.close()
      if (lines.length === 0) {
        written += take // no lines to write (a StatsD datagram of no metric lines cannot be: it is an error record)
        continue
      }
      const chunk = lines.take()
      inFlight.push(chunk)
      const more = out.write(chunk.bytes, (error) => {
        inFlight.shift()
        if (error == null) written += take
        if (inFlight.length === 0) onFlushed?.()
      })
      // A file takes the bytes at once; a pipe may keep them until it can write.
      if (out.writableLength > 0) lines.detach()
      // Waiting here is the backpressure: batches() grants the ring no buffers meanwhile.
      if (!more) await once(out, 'drain', { signal: stop.signal }).catch(() => undefined)
    }
    if (inFlight.length > 0 && !stop.signal.aborted) {
      await new Promise<void>((resolve) => {
        onFlushed = resolve
        stop.signal.addEventListener('abort', () => resolve(), { once: true })
      })
    }
  } finally {
    // Also when the stream failed: nothing of the command may keep the process alive.
    clearTimeout(timer)
    clearTimeout(grace)
    stopStats?.()
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal)
  }
  // The reader went away (`| head`): that is how such a pipe ends, not a failure.
  if (broken) return 0
  if (failure !== undefined) throw failure
  // stdout's reader stalled past --duration: what it holds goes with the
  // process, but the oldest write may have reached the pipe in part.
  if (inFlight.length > 0) written += partlyWritten(out, inFlight[0] as Lines)
  err.write(summary(stream.stats(), written))
  if (inFlight.length > 0) process.exit(0)
  return 0
}
