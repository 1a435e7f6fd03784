// A batch is what one native→JS crossing carries: one ArrayBuffer holding a
// table (fixed-size rows of 32-bit words, one row a datagram) followed by the
// payloads. A Datagram is an index into it; its fields are decoded when read,
// and address strings come from a cache instead of being formatted per packet.
import { Buffer } from 'node:buffer'
import util from 'node:util'
import { markAsUntransferable } from 'node:worker_threads'
import { binding } from './binding'
import { closedError, recycledError } from './errors'
import { isGroupAddress, type SendOptions } from './sender'

const T = binding.table
const F = binding.flags

// A Buffer over part of a batch's slab, made as node makes its own (a
// Uint8Array whose prototype chain has Buffer.prototype): Buffer.from(arrayBuffer,
// offset, length) would first ask C++ whether its argument is an ArrayBuffer
// and validate offset and length, for every datagram.
class Payload extends Uint8Array {}
Object.setPrototypeOf(Payload.prototype, Buffer.prototype)
Object.defineProperty(Payload.prototype, 'constructor', { value: Buffer, writable: true, configurable: true })

/** @internal what reply() needs of the socket a batch arrived on */
export interface Replier {
  send(data: string | ArrayBufferView, port: number, address: string, options?: SendOptions): Promise<void>
}

/** Address family of a datagram's addresses, named as in `node:dgram`. */
export type AddressFamily = 'IPv4' | 'IPv6'

/** The fields of a datagram as plain data, whatever form its payload takes. */
interface DatagramFields {
  remoteAddress: string
  remotePort: number
  family: AddressFamily
  /** Absent where the datagram's `localAddress` is undefined; likewise the other optional fields. */
  localAddress?: string
  interfaceIndex?: number
  truncated: boolean
  controlTruncated: boolean
  broadcast?: boolean
  multicast?: boolean
  /** With the `ttl` option. */
  ttl?: number
  /** With the `tos` option; likewise `ecn`. */
  tos?: number
  ecn?: number
  /** When its batch crossed into JavaScript, in milliseconds since the epoch. */
  receivedAt: number
}

/** A datagram as plain data: what `JSON.stringify(datagram)` writes (payload as base64). */
export interface DatagramJSON extends DatagramFields {
  data: string
  /** {@link Datagram.timestamp} in decimal (JSON has no bigint). */
  timestamp?: string
}

/**
 * A datagram as a plain object, from {@link Datagram.toObject}: its own copy of
 * the payload and every field as a data property, so spreading, `structuredClone()`
 * and `postMessage()` (with `data.buffer` in the transfer list, even) keep it all.
 */
export interface DatagramObject extends DatagramFields {
  data: Buffer
  timestamp?: bigint
}

/**
 * One batch of datagrams as the native ring delivered it. Every payload of the
 * batch lies in one block of memory, usually the very memory the kernel
 * received it into (Linux): a `data` Buffer you keep alive keeps that block
 * alive (up to 4 MiB), so copy (`Buffer.from(d.data)`) what you keep for long.
 */
export class DatagramBatch implements Iterable<Datagram> {
  /**
   * The memory the batch's payloads lie in: each datagram's `data` is a view
   * of it. (Where the payloads were copied, the batch's table comes first;
   * with `batches({ recycle: true })` it is the whole slab the batch was
   * received into, which the slab's other batches share.)
   */
  readonly buffer: ArrayBuffer
  /** Number of datagrams in the batch. */
  readonly length: number
  /**
   * When the batch crossed from the native ring into JavaScript, in
   * milliseconds since the epoch (`Date.now()`, taken once a batch). Every
   * datagram of the batch has this {@link Datagram.receivedAt}. It is later
   * than the kernel's arrival time by the time the batch waited in the ring.
   */
  readonly receivedAt: number
  /** @internal the table, one row of `binding.table.stride` words a datagram */
  readonly table: Uint32Array
  /** @internal byte view of `buffer`: the payloads at the table's offsets */
  readonly bytes: Uint8Array
  /** @internal byte view of the table's memory, for addresses */
  readonly tableBytes: Uint8Array
  /** @internal the socket it arrived on, for reply() */
  readonly socket: Replier | undefined
  /** @internal given back by batches({recycle: true}): its table and payloads may hold another batch's now */
  recycled = false

  /**
   * @internal batches are made by the socket: `table` holds the table (and,
   * when `payloads` is `table`, the payloads after it)
   */
  constructor(table: ArrayBuffer, count: number, payloads: ArrayBuffer = table, socket?: Replier) {
    // Every payload of the batch is a view of this one block: transferring it
    // (postMessage(d.data, [d.data.buffer])) would empty every other datagram.
    // Marked as Node marks its Buffer pool: a transfer copies instead (or, in
    // newer Node, throws a DataCloneError).
    markAsUntransferable(payloads)
    this.buffer = payloads
    this.length = count
    this.receivedAt = Date.now()
    this.table = new Uint32Array(table, 0, count * T.stride)
    this.bytes = new Uint8Array(payloads)
    this.tableBytes = payloads === table ? this.bytes : new Uint8Array(table)
    this.socket = socket
  }

  /** @internal batches({recycle: true}): the memory may be received into again, the table reused; reading a datagram throws from now on */
  giveBack(): void {
    if (this.recycled) return
    this.recycled = true
    binding.recycle(this.table.buffer as ArrayBuffer, this.buffer)
  }

  /** The datagram at `index`, an integer with 0 ≤ index < length; undefined for any other index. */
  at(index: number): Datagram | undefined {
    return Number.isInteger(index) && index >= 0 && index < this.length ? new Datagram(this, index) : undefined
  }

  [Symbol.iterator](): IterableIterator<Datagram> {
    // A plain iterator object, not a generator: a generator's resumption cost
    // more than the Datagram it yields (measured 20-27 ns a datagram).
    return new BatchIterator(this)
  }
}

class BatchIterator implements IterableIterator<Datagram> {
  #batch: DatagramBatch
  #next = 0

  constructor(batch: DatagramBatch) {
    this.#batch = batch
  }

  next(): IteratorResult<Datagram> {
    const index = this.#next
    if (index >= this.#batch.length) return { done: true, value: undefined }
    this.#next = index + 1
    return { done: false, value: new Datagram(this.#batch, index) }
  }

  [Symbol.iterator](): IterableIterator<Datagram> {
    return this
  }
}

/**
 * A received datagram: payload, source, destination address and interface
 * (from IP_PKTINFO / IPV6_PKTINFO), flags, and where the socket asked for them
 * TTL, TOS/ECN and the kernel's receive time. Fields are read-only and
 * decoded on first access.
 */
export class Datagram {
  #batch: DatagramBatch
  #row: number
  #data: Buffer | undefined = undefined

  /** @internal datagrams are made by the socket */
  constructor(batch: DatagramBatch, index: number) {
    this.#batch = batch
    this.#row = index * T.stride
  }

  /** The payload: at most `bufferSize` bytes, a view into the batch's slab. */
  get data(): Buffer {
    if (this.#data === undefined) {
      const table = this.#table
      this.#data = new Payload(this.#batch.buffer, table[this.#row + T.offset], table[this.#row + T.length]) as unknown as Buffer
    }
    return this.#data
  }

  /** When its batch crossed into JavaScript, in milliseconds since the epoch: {@link DatagramBatch.receivedAt}. */
  get receivedAt(): number {
    return this.#batch.receivedAt
  }

  /** The sender's address. On a dual-stack socket IPv4 senders appear v4-mapped (`::ffff:127.0.0.1`), as in `node:dgram`. */
  get remoteAddress(): string {
    return formatAddress(this.#batch, this.#row + T.remoteAddress, (this.#flags & F.remoteIPv6) !== 0)
  }

  /** The sender's port. */
  get remotePort(): number {
    return this.#table[this.#row + T.remotePort]
  }

  /** Family of `remoteAddress`. */
  get family(): AddressFamily {
    return this.#flags & F.remoteIPv6 ? 'IPv6' : 'IPv4'
  }

  /** The address the datagram was sent to (one of this host's, or a broadcast/multicast group); undefined if the OS did not say. */
  get localAddress(): string | undefined {
    const flags = this.#flags
    if (!(flags & F.hasLocal)) return undefined
    return formatAddress(this.#batch, this.#row + T.localAddress, (flags & F.localIPv6) !== 0)
  }

  /** Index of the interface the datagram arrived on (see `os.networkInterfaces()`); undefined if the OS did not say. */
  get interfaceIndex(): number | undefined {
    return this.#flags & F.hasLocal ? this.#table[this.#row + T.interfaceIndex] : undefined
  }

  /** The datagram was longer than `bufferSize`: `data` holds its first `bufferSize` bytes. */
  get truncated(): boolean {
    return (this.#flags & F.truncated) !== 0
  }

  /** The OS had more control data (metadata) than fit: `localAddress`, `interfaceIndex`, `ttl`, `tos` and `timestamp` may be missing. */
  get controlTruncated(): boolean {
    return (this.#flags & F.controlTruncated) !== 0
  }

  /** Sent to a broadcast address; undefined if the OS did not say. */
  get broadcast(): boolean | undefined {
    const flags = this.#flags
    return flags & F.hasBroadcastInfo ? (flags & F.broadcast) !== 0 : undefined
  }

  /** Sent to a multicast group; undefined if the OS did not say. */
  get multicast(): boolean | undefined {
    const flags = this.#flags
    return flags & F.hasBroadcastInfo ? (flags & F.multicast) !== 0 : undefined
  }

  /**
   * The IPv4 TTL or IPv6 hop limit the datagram arrived with; undefined
   * without the `ttl` option, or where the OS did not say.
   */
  get ttl(): number | undefined {
    return this.#flags & F.hasTtl ? this.#table[this.#row + T.ttlTos] & 0xff : undefined
  }

  /**
   * The IPv4 TOS byte or IPv6 traffic class (DSCP in the high six bits, ECN
   * in the low two); undefined without the `tos` option, or where the OS did not say.
   */
  get tos(): number | undefined {
    return this.#flags & F.hasTos ? (this.#table[this.#row + T.ttlTos] >>> 8) & 0xff : undefined
  }

  /** The ECN codepoint: the low two bits of {@link tos} (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE); undefined where `tos` is. */
  get ecn(): number | undefined {
    return this.#flags & F.hasTos ? (this.#table[this.#row + T.ttlTos] >>> 8) & 0x03 : undefined
  }

  /**
   * When the kernel received the datagram, in nanoseconds since the epoch;
   * undefined without the `timestamp` option, or where the OS did not say.
   * (`receivedAt` is when its batch reached JavaScript.)
   */
  get timestamp(): bigint | undefined {
    if (!(this.#flags & F.hasTimestamp)) return undefined
    const table = this.#table
    return (BigInt(table[this.#row + T.timestampHigh]) << 32n) | BigInt(table[this.#row + T.timestampLow])
  }

  /**
   * Sends `data` back to the sender (`remoteAddress`:`remotePort`) from the
   * socket it arrived on, **from the address and interface it arrived on**
   * (`localAddress`, `interfaceIndex`, with `IP_PKTINFO` / `IPV6_PKTINFO`):
   * on a host with several addresses, a wildcard socket answers from the
   * address the request was sent to, as clients expect. Where the OS gave no
   * `localAddress`, or the datagram was sent to a broadcast or multicast
   * address (never a source), it sends without a source address (on
   * `interfaceIndex` where known). As `stream.send()` otherwise: resolves once
   * sent; rejects with `ERR_DGRAM_RING_CLOSED` once the socket is closed.
   */
  reply(data: string | ArrayBufferView): Promise<void> {
    const socket = this.#batch.socket
    if (socket === undefined) return Promise.reject(closedError('reply()'))
    const local = this.localAddress
    const options: SendOptions = {}
    if (local !== undefined) {
      options.interfaceIndex = this.interfaceIndex
      if (this.broadcast !== true && this.multicast !== true && !isGroupAddress(local)) options.from = local
    }
    return socket.send(data, this.remotePort, this.remoteAddress, options)
  }

  // The batch's table, while it is the batch's: batches({recycle: true})
  // reuses it for another batch once the loop moves on.
  get #table(): Uint32Array {
    const batch = this.#batch
    if (batch.recycled) throw recycledError()
    return batch.table
  }

  get #flags(): number {
    return this.#table[this.#row + T.flags]
  }

  /** Plain data, payload in base64: for logs and `JSON.stringify`. */
  toJSON(): DatagramJSON {
    const fields: DatagramJSON = this.#plain(this.data.toString('base64'))
    const timestamp = this.timestamp
    if (timestamp !== undefined) fields.timestamp = timestamp.toString()
    return fields
  }

  /**
   * Plain data with its own copy of the payload: a Datagram's fields are
   * getters over its batch, so `{ ...d }` and `structuredClone(d)` keep
   * nothing; `d.toObject()` keeps everything, and holds no memory of the batch.
   * Optional fields are absent where undefined.
   */
  toObject(): DatagramObject {
    // Its own ArrayBuffer, exactly the payload's size: Buffer.from() would
    // place a short one in Node's shared pool, which structuredClone() copies whole.
    const data = this.data
    const copy = Buffer.allocUnsafeSlow(data.length)
    data.copy(copy)
    const fields: DatagramObject = this.#plain(copy)
    const timestamp = this.timestamp
    if (timestamp !== undefined) fields.timestamp = timestamp
    return fields
  }

  #plain<D>(data: D): DatagramFields & { data: D } {
    const fields: DatagramFields & { data: D } = {
      data,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
      family: this.family,
      truncated: this.truncated,
      controlTruncated: this.controlTruncated,
      receivedAt: this.receivedAt,
    }
    if (this.localAddress !== undefined) fields.localAddress = this.localAddress
    if (this.interfaceIndex !== undefined) fields.interfaceIndex = this.interfaceIndex
    if (this.broadcast !== undefined) fields.broadcast = this.broadcast
    if (this.multicast !== undefined) fields.multicast = this.multicast
    if (this.ttl !== undefined) fields.ttl = this.ttl
    if (this.tos !== undefined) {
      fields.tos = this.tos
      fields.ecn = this.ecn
    }
    return fields
  }

  [util.inspect.custom](depth: number, options: util.InspectOptionsStylized): string {
    const plain: DatagramFields & { data: Buffer; timestamp?: bigint } = this.#plain(this.data)
    if (this.timestamp !== undefined) plain.timestamp = this.timestamp
    const { data, ...fields } = plain
    return `Datagram ${util.inspect({ ...fields, data }, { ...options, depth })}`
  }
}

// Address strings, cached by their bytes. Bounded: a flood from many sources
// clears it rather than growing it.
const CACHE_LIMIT = 4096
const v4Cache = new Map<number, string>()
const v6Cache = new Map<string, string>()
let lastV6Words = [-1, -1, -1, -1]
let lastV6 = ''

/** @internal The text of the address at table word `word` of a batch (from a cache), without a Datagram. */
export function formatAddress(batch: DatagramBatch, word: number, ipv6: boolean): string {
  const table = batch.table
  if (!ipv6) {
    const key = table[word]
    let text = v4Cache.get(key)
    if (text === undefined) {
      const b = batch.tableBytes
      const at = word * 4
      text = `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`
      if (v4Cache.size >= CACHE_LIMIT) v4Cache.clear()
      v4Cache.set(key, text)
    }
    return text
  }
  const w0 = table[word], w1 = table[word + 1], w2 = table[word + 2], w3 = table[word + 3]
  // Most traffic comes from few peers: the last address answers most lookups.
  if (w0 === lastV6Words[0] && w1 === lastV6Words[1] && w2 === lastV6Words[2] && w3 === lastV6Words[3]) return lastV6
  const key = `${w0},${w1},${w2},${w3}`
  let text = v6Cache.get(key)
  if (text === undefined) {
    text = formatIPv6(batch.tableBytes, word * 4)
    if (v6Cache.size >= CACHE_LIMIT) v6Cache.clear()
    v6Cache.set(key, text)
  }
  lastV6Words = [w0, w1, w2, w3]
  lastV6 = text
  return text
}

/** RFC 5952 text for the 16 bytes at `at`, with IPv4-mapped addresses as `::ffff:a.b.c.d`. */
export function formatIPv6(bytes: Uint8Array, at: number): string {
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push((bytes[at + 2 * i] << 8) | bytes[at + 2 * i + 1])
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${bytes[at + 12]}.${bytes[at + 13]}.${bytes[at + 14]}.${bytes[at + 15]}`
  }
  // The longest run of two or more zero groups becomes "::" (the first, on a tie).
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = (from: number, to: number): string => groups.slice(from, to).map((g) => g.toString(16)).join(':')
  if (bestStart < 0) return hex(0, 8)
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`
}
