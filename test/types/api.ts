// Compiled (not run) by test/types.test.mjs: the public API's types, as users
// write against them. Lines marked @ts-expect-error must fail to compile.
import { pipeline } from 'node:stream/promises'
import { Writable } from 'node:stream'
import {
  listen,
  DatagramStream,
  RingSocket,
  Datagram,
  DatagramBatch,
  backends,
  type ListenOptions,
  type RingStats,
  type AddressInfo,
  type SystemError,
  type CodedError,
  type BackendName,
  type DatagramObject,
} from 'dgram-ring'
import { fromDatagrams, fromDatagramBatches, mergeMapWithBackpressure } from 'dgram-ring/rx'
import type { Observable } from 'rxjs'

async function main(): Promise<void> {
  const options: ListenOptions = { port: 5140, type: 'udp4', ringSize: 512, bufferSize: 9000, backend: 'auto', signal: AbortSignal.timeout(1000) }
  const stream: DatagramStream = await listen(options)
  const address: AddressInfo = stream.address()
  const family: 'IPv4' | 'IPv6' = address.family
  const backend: string | undefined = stream.backend
  const stats: RingStats = stream.stats()
  const drops: number | undefined = stats.kernelDrops
  for await (const d of stream) {
    const datagram: Datagram = d
    const data: Buffer = d.data
    const remote: string = d.remoteAddress
    const port: number = d.remotePort
    const local: string | undefined = d.localAddress
    const index: number | undefined = d.interfaceIndex
    const flags: boolean[] = [d.truncated, d.controlTruncated]
    const cast: Array<boolean | undefined> = [d.broadcast, d.multicast]
    const plain: DatagramObject = d.toObject()
    const copy: Buffer = plain.data
    const optional: [string | undefined, number | undefined, boolean | undefined] = [plain.localAddress, plain.interfaceIndex, plain.broadcast]
    void [datagram, data, remote, port, local, index, flags, cast, copy, optional]
    // @ts-expect-error fields are read-only
    d.remotePort = 1
  }
  stream.on('data', (d) => {
    const b: Buffer = d.data
    void b
  })
  stream.on('error', (e) => void e.message)
  await pipeline(stream, new Writable({ objectMode: true, write: (_d: Datagram, _e, cb) => cb() }))
  const closed: Promise<void> = stream.close()
  const read: Datagram | null = stream.read()
  const socket = new RingSocket({ port: 0 }, (batch: DatagramBatch) => {
    for (const d of batch) void d.data
    socket.grant(batch.length)
  }, (error: Error) => void error)
  const names: BackendName[] = ['auto', 'recvmmsg', 'io_uring', 'recvmsg', 'iocp']
  const list: readonly string[] = backends
  try {
    await listen({ port: 53 })
  } catch (error) {
    const e = error as SystemError
    const code: string = e.code
    const errno: number = e.errno
    const c: CodedError = e
    void [code, errno, c]
  }
  void [family, backend, drops, closed, read, names, list]
}

// @ts-expect-error type is 'udp4' | 'udp6'
void listen({ type: 'tcp' })
// @ts-expect-error port is a number
void listen({ port: '80' })
// @ts-expect-error backend names are fixed
void listen({ backend: 'epoll' })
// @ts-expect-error no such option is typed as a number
void listen({ ringSize: '256' })

const datagrams: Observable<Datagram> = fromDatagrams({ port: 0 })
const batches: Observable<DatagramBatch> = fromDatagramBatches({ port: 0 })
const sizes: Observable<number> = datagrams.pipe(mergeMapWithBackpressure(async (d: Datagram) => d.data.length, 4))
// @ts-expect-error a batch stream emits batches, not datagrams
const wrong: Observable<Datagram> = fromDatagramBatches({ port: 0 })

void [main, batches, sizes, wrong]

// dgram-ring/jetstream: its declarations need none of the NATS packages' types.
import { createJetStreamSink, type JetStreamSink, type JetStreamSinkStats, type JetStreamSinkOptions } from 'dgram-ring/jetstream'
const sinkOptions: JetStreamSinkOptions = { servers: ['nats://127.0.0.1:4222'], subject: 'logs.a', maxInFlight: 64, msgId: (_record, sequence) => `a-${sequence}` }
const sink: JetStreamSink = createJetStreamSink(sinkOptions)
const sinkWritable: Writable = sink
const sinkStats: JetStreamSinkStats = sink.stats()
const acknowledged: number = sinkStats.acknowledged + sinkStats.failed + sinkStats.duplicates + sinkStats.retried + sinkStats.published
const sinkReady: Promise<void> = sink.ready()
// @ts-expect-error subject is required
void createJetStreamSink({ servers: 'nats://127.0.0.1:4222' })
// @ts-expect-error maxInFlight is a number
void createJetStreamSink({ servers: 'nats://127.0.0.1:4222', subject: 'a', maxInFlight: '64' })
void [sinkWritable, acknowledged, sinkReady]
