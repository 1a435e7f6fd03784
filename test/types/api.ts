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
  type SendOptions,
  type OutgoingDatagram,
  DatagramSender,
  listenWorkers,
  WorkerGroup,
  type Balance,
  type WorkerContext,
  type WorkerError,
  type WorkerFunction,
  type WorkersOptions,
  type WorkersStats,
  type MulticastMembership,
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
    const meta: [number | undefined, number | undefined, number | undefined, bigint | undefined] = [d.ttl, d.tos, d.ecn, d.timestamp]
    const stamped: [bigint | undefined, string | undefined] = [plain.timestamp, d.toJSON().timestamp]
    void [datagram, data, remote, port, local, index, flags, cast, copy, optional, meta, stamped]
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

  // Sending.
  const sendOptions: SendOptions = { from: '127.0.0.2', interfaceIndex: 1 }
  const sent: Promise<void> = stream.send(Buffer.from('x'), 53, '127.0.0.1', sendOptions)
  await sent
  await stream.send('text', 53, '::1')
  await stream.send(new Uint8Array(4), 53, 'localhost', {})
  // @ts-expect-error a port is a number
  await stream.send('x', '53', '127.0.0.1')
  const outgoing: OutgoingDatagram = { data: 'x', port: 53, address: '127.0.0.1', from: '127.0.0.1' }
  const sender: DatagramSender = stream.sender({ highWaterMark: 64 })
  const writable: Writable = sender
  writable.write(outgoing)
  for await (const d of stream) {
    const replied: Promise<void> = d.reply(d.data)
    await replied
    break
  }
}

// @ts-expect-error type is 'udp4' | 'udp6'
void listen({ type: 'tcp' })
// @ts-expect-error port is a number
void listen({ port: '80' })
// @ts-expect-error backend names are fixed
void listen({ backend: 'epoll' })
// @ts-expect-error no such option is typed as a number
void listen({ ringSize: '256' })

const membership: MulticastMembership = { group: '239.1.2.3', interface: 'eth0', source: '10.0.0.1' }
void listen({ ttl: true, tos: true, timestamp: true, multicast: membership })
void listen({ type: 'udp6', multicast: [{ group: 'ff15::1', interface: 2 }, { group: 'ff15::2' }] })
// @ts-expect-error a membership needs a group
void listen({ multicast: { interface: 'eth0' } })
// @ts-expect-error metadata options are booleans
void listen({ timestamp: 'ns' })

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

// Every core: listenWorkers() and the worker module's default export.
async function workersApi(): Promise<void> {
  const group: WorkerGroup = await listenWorkers(2, { port: 0, balance: 'spread', workerData: { tag: 'a' }, execArgv: [] }, new URL('file:///w.mjs'))
  group.on('error', (error: WorkerError) => void [error.index, error.code, error.exitCode])
  group.on('message', (value: unknown, index: number) => void [value, index])
  const stats: WorkersStats = await group.stats()
  const each: RingStats[] = stats.workers
  const port: number = group.port
  await group.close()
  const balance: Balance = 'flow'
  const worker: WorkerFunction<{ tag: string }> = async (stream: DatagramStream, context: WorkerContext<{ tag: string }>) => {
    const tag: string = context.workerData.tag
    for await (const d of stream) void [d.data, tag, context.index, context.workers]
  }
  const options: WorkersOptions = { balance }
  void [each, port, worker, options]
  // @ts-expect-error balance is 'flow' | 'spread'
  void listenWorkers(2, { balance: 'round-robin' }, 'w.mjs')
  // @ts-expect-error listenWorkers sets reusePort and spreadOver itself
  void listenWorkers(2, { spreadOver: 3 }, 'w.mjs')
  void listen({ reusePort: true, balance: 'spread', spreadOver: 4 })
}
void workersApi
