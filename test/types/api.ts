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
