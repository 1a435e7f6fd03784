// `dgram-ring listen --jetstream`: each datagram's JSON (what stdout would
// get) published as one message into JetStream, the sink's acknowledgements
// being the backpressure that reaches the ring, and a summary that adds up
// from the wire to the stream.
import { once } from 'node:events'
import { finished } from 'node:stream/promises'
import type { DatagramStream } from '../stream'
import type { RingStats } from '../socket'
import type { JetStreamSink, JetStreamSinkStats } from '../jetstream'
import type { BatchFormatter } from './format'
import type { ListenCommand, JetStreamTarget } from './flags'
import { LineBuffer } from './output'
import { announce, reportStats } from './listen'

/** How long the command waits at exit for the acknowledgements still due; what is unacknowledged then is counted failed. */
export const JETSTREAM_CLOSE_TIMEOUT_MS = 10_000

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * The last line on stderr with --jetstream. Datagrams: `acknowledged`
 * (stored in the stream, JetStream said so), `failed` (not acknowledged when
 * the command stopped waiting), `received`, `not published` (received past
 * --count or after a second signal), `discarded`, `kernel drops`; then
 * `retried` and `duplicates` (publishes, of the acknowledged).
 * received = acknowledged + failed + not published;
 * sent = acknowledged + failed + not published + discarded + kernel drops.
 */
export function jetstreamSummary(stats: RingStats, sink: JetStreamSinkStats, accepted: number): string {
  return (
    `dgram-ring: acknowledged ${sink.acknowledged}, failed ${sink.failed}, received ${stats.received}, ` +
    `not published ${stats.received - accepted}, discarded ${stats.discarded}, kernel drops ${stats.kernelDrops ?? 'n/a'}, ` +
    `truncated ${stats.truncated}, bytes ${stats.bytes}, retried ${sink.retried}, duplicates ${sink.duplicates}\n`
  )
}

/** Connects to JetStream (failing before the socket is bound when it cannot). */
export async function openSink(target: JetStreamTarget): Promise<JetStreamSink> {
  const { createJetStreamSink } = await import('../jetstream')
  const sink = createJetStreamSink({
    servers: target.servers,
    subject: target.subject,
    stream: target.stream,
    maxInFlight: target.maxInFlight,
    closeTimeout: JETSTREAM_CLOSE_TIMEOUT_MS,
    name: 'dgram-ring listen',
  })
  // Reported by ready() (before the socket is bound) or, later, by the loop below.
  sink.on('error', () => undefined)
  await sink.ready()
  return sink
}

export async function publish(
  stream: DatagramStream,
  sink: JetStreamSink,
  command: ListenCommand,
  format: BatchFormatter,
  err: NodeJS.WriteStream,
): Promise<number> {
  const target = command.jetstream as JetStreamTarget
  announce(stream, command, err)
  err.write(`dgram-ring: publishing to JetStream stream ${sink.stream} as ${target.subject} (${target.servers.join(', ')})\n`)
  // Aborted when the sink may no longer be waited for: a second signal, or the sink failed.
  const stop = new AbortController()
  let failure: Error | undefined
  sink.on('error', (error) => {
    failure ??= error
    stop.abort()
    void stream.close()
  })
  const inFlight = (): string => {
    const { acknowledged, inFlight } = sink.stats()
    return `, ${acknowledged} acknowledged, ${inFlight} in flight`
  }
  const stopStats = command.stats ? reportStats(stream, err, inFlight) : undefined
  const timer = command.duration === undefined ? undefined : setTimeout(() => void stream.close(), command.duration * 1000)
  let signalled = false
  const onSignal = (): void => {
    // A second signal stops waiting for JetStream: what is unacknowledged is counted failed.
    if (signalled) {
      stop.abort()
      sink.destroy()
    }
    signalled = true
    // The draining close: what the kernel holds still goes to the stream.
    void stream.close()
  }
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal)

  const lines = new LineBuffer()
  const limit = command.count ?? Infinity
  let accepted = 0 // datagrams written to the sink
  try {
    for await (const batch of stream.batches()) {
      // Reading to the end, so that every datagram received is counted.
      if (accepted === limit || stop.signal.aborted) continue
      const take = Math.min(batch.length, limit - accepted)
      format(batch, 0, take, lines)
      const { bytes, ends } = lines.take()
      let more = true
      let start = 0
      for (const end of ends) {
        // One message a datagram: its line(s) without the last newline, copied (the buffer is used again).
        const last = end > start && bytes[end - 1] === 0x0a ? end - 1 : end
        more = sink.write(Uint8Array.prototype.slice.call(bytes, start, last))
        start = end
      }
      accepted += take
      if (accepted === limit) void stream.close()
      // Waiting here is the backpressure: batches() grants the ring no buffers meanwhile.
      if (!more) await once(sink, 'drain', { signal: stop.signal }).catch(() => undefined)
    }
    if (!sink.destroyed) {
      sink.end()
      await finished(sink).catch(() => undefined)
    }
  } finally {
    clearTimeout(timer)
    stopStats?.()
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal)
  }
  err.write(jetstreamSummary(stream.stats(), sink.stats(), accepted))
  if (failure !== undefined) throw failure
  return 0
}
