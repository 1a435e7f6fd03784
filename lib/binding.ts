// The native addon, loaded once: a prebuild from prebuilds/ or a local build
// (node-gyp-build picks), and the shape of what it exports (native/addon.cc).
import path from 'node:path'
import loadBinding from 'node-gyp-build'
import type { RingStats } from './socket'

/** The options the native side reads, already validated (socket.ts). */
export interface NativeOptions {
  ipv6: boolean
  raw: boolean
  protocol: number
  address: string
  port: number
  ringSize: number
  bufferSize: number
  recvBufferSize: number
  reuseAddr: boolean
  reusePort: boolean
  ipv6Only: boolean
  thread: boolean
  /** Options::linger_us: with thread, how long the receive thread may hold a batch. */
  lingerMicroseconds: number
  coalesce: boolean
  /** Options::spread_over: reuseport group members to spread over (SO_ATTACH_REUSEPORT_CBPF); 0 = the flow hash. */
  spreadOver: number
  ttl: boolean
  tos: boolean
  timestamp: boolean
  multicast: readonly NativeMulticastJoin[]
}

/** One group to join, resolved (multicast.ts): every field present, '' or 0 when unused. */
export interface NativeMulticastJoin {
  group: string
  source: string
  interfaceAddress: string
  interfaceName: string
  interfaceIndex: number
}

export interface NativeAddress {
  family: 4 | 6
  port: number
  bytes: Uint8Array
}

export interface NativeRingSocket {
  readonly backend: string
  /** SO_RCVBUF as the OS reports it; undefined once closed. */
  readonly recvBufferSize: number | undefined
  grant(credits: number): void
  /** The consumer gives every batch back with recycle() from now on: batch memory is pooled (native/recycle.h). */
  recycling(): void
  stats(): RingStats
  address(): NativeAddress
  /** Drains what the kernel holds into onbatch (or, with `discard`, throws it away), then calls `callback`. */
  close(callback: (() => void) | undefined, discard: boolean): void
  ref(): void
  unref(): void
  /** Sends rows [start, start + count) of a send table (native/send.h) over `payloads`; returns the rows done (each row's result word says how). */
  send(table: Uint32Array, payloads: Uint8Array, start: number, count: number): number
  /** Calls `callback` once the socket may take more; 0, or a negative errno (ENOTSUP on iocp: retry on a timer). */
  waitWritable(callback: () => void): number
}

export interface Binding {
  RingSocket: new (
    backend: string,
    options: NativeOptions,
    onbatch: (table: ArrayBuffer, count: number, payloads: ArrayBuffer) => void,
    onerror: (errno: number, syscall: string) => void,
    onwarning: (errno: number, syscall: string) => void,
  ) => NativeRingSocket
  /** Backends this build has that can run in this process, fastest first. */
  backends: string[]
  /** Why a backend of this build cannot run in this process, or undefined if it can (or the build has none of that name). */
  backendUnavailable(name: string): string | undefined
  /** A batch's lent memory may be received into again (batches({recycle: true})), its table reused; copied payloads: nothing to do. */
  recycle(table: ArrayBuffer, payloads: ArrayBuffer): void
  /** Word indices of the per-batch table. */
  table: {
    stride: number
    offset: number
    length: number
    flags: number
    remotePort: number
    interfaceIndex: number
    remoteAddress: number
    localAddress: number
    ttlTos: number
    timestampLow: number
    timestampHigh: number
  }
  flags: {
    truncated: number
    controlTruncated: number
    broadcast: number
    multicast: number
    remoteIPv6: number
    hasLocal: number
    localIPv6: number
    hasBroadcastInfo: number
    hasTtl: number
    hasTos: number
    hasTimestamp: number
  }
}

export const binding: Binding = loadBinding(path.join(__dirname, '..'))
