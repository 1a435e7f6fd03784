// Sending from the ring's socket: stream.send(), datagram.reply() and
// stream.sender(). Every send of one JS turn is queued, and at the end of the
// turn (process.nextTick) the queue crosses into native once: a table of rows
// (native/send.h's layout) over one payload buffer (the payloads copied into
// it once; a lone payload is passed as it is). Native sends them with one
// sendmmsg (UDP GSO for runs of same-size datagrams to one destination) and
// writes each row's result back. When the socket has no room (EAGAIN,
// ENOBUFS) the rest waits for writability (Windows: a short timer) and goes
// on from where it stopped: nothing is dropped, and later sends queue behind it.
import { Buffer } from 'node:buffer'
import net from 'node:net'
import util from 'node:util'
import { Writable } from 'node:stream'
import type { NativeRingSocket } from './binding'
import { badPort, checkOptionsArgument, closedError, invalidArgType, invalidArgValue, outOfRange, systemError, unsupported } from './errors'

/** Options of {@link DatagramStream.send}. */
export interface SendOptions {
  /**
   * The source address: one of this host's addresses, of the socket's family (on a `'udp6'` socket an
   * IPv4 source is written v4-mapped, `::ffff:192.0.2.1`). Sent with `IP_PKTINFO` / `IPV6_PKTINFO`.
   * Default: the one the routing table picks (or the bound address).
   */
  from?: string
  /** Index of the interface to send on (see `os.networkInterfaces()`, `Datagram.interfaceIndex`); default: the routing table's. */
  interfaceIndex?: number
}

/** What {@link DatagramStream.sender} takes: one datagram. */
export interface OutgoingDatagram extends SendOptions {
  /** The payload: a Buffer, TypedArray, DataView or string (UTF-8). */
  data: string | ArrayBufferView
  /** The destination port, 1 to 65535. */
  port: number
  /** A numeric IPv4 or IPv6 address, or `'localhost'`. */
  address: string
}

// native/send.h's row layout.
const STRIDE = 14
const W_OFFSET = 0
const W_LENGTH = 1
const W_PORT = 2
const W_FLAGS = 3
const W_INTERFACE = 4
const W_ADDRESS = 5
const W_FROM = 9
const W_RESULT = 13
const F_IPV6 = 1
const F_HAS_FROM = 2
const F_FROM_IPV6 = 4

const SYSCALL = process.platform === 'win32' ? 'WSASendMsg' : process.platform === 'linux' ? 'sendmmsg' : 'sendmsg'

// ---- Addresses --------------------------------------------------------------

/** An address as the send table holds it: 16 bytes (4 used for IPv4). */
interface Destination {
  bytes: Uint8Array
  ipv6: boolean
  /** A numeric zone (`fe80::1%2`): the interface to send on. */
  zone: number
}

const CACHE_LIMIT = 4096
const parsed = new Map<string, Destination | null>()

function parseIPv4(text: string, into: Uint8Array, at: number): void {
  const parts = text.split('.')
  for (let i = 0; i < 4; i++) into[at + i] = Number(parts[i])
}

function parseIPv6(text: string, into: Uint8Array): void {
  let tail = text
  let v4 = ''
  const lastColon = tail.lastIndexOf(':')
  if (tail.indexOf('.', lastColon) >= 0) {
    v4 = tail.slice(lastColon + 1)
    tail = tail.slice(0, lastColon + 1) + '0:0'
  }
  const [head, rest] = tail.includes('::') ? tail.split('::') : [tail, undefined]
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)))
  const front = groups(head)
  const back = rest === undefined ? [] : groups(rest)
  const all = rest === undefined ? front : [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
  for (let i = 0; i < 8; i++) {
    into[2 * i] = all[i] >> 8
    into[2 * i + 1] = all[i] & 0xff
  }
  if (v4 !== '') parseIPv4(v4, into, 12)
}

/** A numeric address (optionally with a numeric zone) as bytes; null if it is none. Cached. */
function parseAddress(text: string): Destination | null {
  let found = parsed.get(text)
  if (found !== undefined) return found
  const percent = text.indexOf('%')
  const bare = percent >= 0 ? text.slice(0, percent) : text
  const zoneText = percent >= 0 ? text.slice(percent + 1) : ''
  const family = net.isIP(bare)
  if (family === 0 || (percent >= 0 && (family !== 6 || !/^\d+$/.test(zoneText) || Number(zoneText) > 0xffffffff))) {
    found = null
  } else {
    const bytes = new Uint8Array(16)
    if (family === 4) parseIPv4(bare, bytes, 0)
    else parseIPv6(bare, bytes)
    found = { bytes, ipv6: family === 6, zone: percent >= 0 ? Number(zoneText) : 0 }
  }
  if (parsed.size >= CACHE_LIMIT) parsed.clear()
  parsed.set(text, found)
  return found
}

// An IPv4 address as an IPv6 socket sends to it: v4-mapped.
function mapped(v4: Destination): Destination {
  const bytes = new Uint8Array(16)
  bytes[10] = 0xff
  bytes[11] = 0xff
  bytes.set(v4.bytes.subarray(0, 4), 12)
  return { bytes, ipv6: true, zone: 0 }
}

const mappedCache = new WeakMap<Destination, Destination>()

/** Multicast, or IPv4's limited broadcast: never a source address. */
export function isGroupAddress(address: string): boolean {
  const d = parseAddress(address)
  if (d === null) return false
  const b = d.bytes
  if (!d.ipv6) return b[0] >= 224 || (b[0] === 255 && b[1] === 255 && b[2] === 255 && b[3] === 255)
  if (b[0] === 0xff) return true
  const v4mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff
  return v4mapped && b[12] >= 224
}

// ---- Validation ---------------------------------------------------------------

const settled = (): void => {}

/** One datagram, validated, waiting to be sent. One shape for all (a class: no spread a send). */
class Item {
  resolve: () => void = settled
  reject: (error: Error) => void = settled
  constructor(
    readonly data: Uint8Array,
    readonly port: number,
    readonly destination: Destination,
    readonly from: Destination | undefined,
    readonly interfaceIndex: number,
    readonly address: string,
  ) {}
}

/** @internal what the queue needs of its socket */
export interface SendTarget {
  readonly ipv6: boolean
  readonly raw: boolean
  handle(): NativeRingSocket | undefined
}

function payload(data: unknown): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (ArrayBuffer.isView(data)) return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray or DataView', data, 'argument')
}

function destination(address: unknown, ipv6Socket: boolean): Destination {
  if (typeof address !== 'string') throw invalidArgType('address', 'of type string', address, 'argument')
  const text = address === 'localhost' ? (ipv6Socket ? '::1' : '127.0.0.1') : address
  const d = parseAddress(text)
  if (d === null) throw invalidArgValue('address', "must be a numeric IPv4 or IPv6 address (a zone as an interface index) or 'localhost'", address, 'argument')
  if (d.ipv6 && !ipv6Socket) throw invalidArgValue('address', "is an IPv6 address, and this is a 'udp4' socket", address, 'argument')
  if (!d.ipv6 && ipv6Socket) {
    let m = mappedCache.get(d)
    if (m === undefined) mappedCache.set(d, (m = mapped(d)))
    return m
  }
  return d
}

function source(from: unknown, ipv6Socket: boolean): Destination | undefined {
  if (from === undefined) return undefined
  if (typeof from !== 'string') throw invalidArgType('from', 'of type string', from)
  const d = parseAddress(from)
  if (d === null || d.zone !== 0) throw invalidArgValue('from', 'must be a numeric IPv4 or IPv6 address', from)
  if (d.ipv6 !== ipv6Socket) throw invalidArgValue('from', `is not an address of the socket's family (${ipv6Socket ? 'IPv6' : 'IPv4'})`, from)
  return d
}

/** @internal Validates one send; throws a TypeError/RangeError with a `code`. */
export function validate(
  target: SendTarget,
  data: unknown,
  port: unknown,
  address: unknown,
  options: unknown,
): Item {
  if (target.raw) throw unsupported('send() on a raw socket', 'dgram-ring sends UDP datagrams only')
  const bytes = payload(data)
  if (typeof port !== 'number') throw invalidArgType('port', 'of type number', port, 'argument')
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw badPort(port)
  const to = destination(address, target.ipv6)
  let from: Destination | undefined
  let interfaceIndex = to.zone
  checkOptionsArgument(options)
  if (options !== undefined) {
    const o = options as SendOptions
    from = source(o.from, target.ipv6)
    const index = o.interfaceIndex
    if (index !== undefined) {
      if (typeof index !== 'number') throw invalidArgType('interfaceIndex', 'of type number', index)
      if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw outOfRange('interfaceIndex', 'an integer >= 0 and <= 4294967295', index)
      interfaceIndex = index
    }
  }
  return new Item(bytes, port, to, from, interfaceIndex, address as string)
}

// ---- The queue ------------------------------------------------------------------

/** Rows handed to native, and the items they settle. */
interface Batch {
  items: Item[]
  table: Uint32Array
  results: Int32Array
  payloads: Uint8Array
  next: number
}

/**
 * @internal A socket's sends: queued in a turn, sent at its end in one native
 * call, waiting for room when the socket has none. Order is kept.
 */
export class SendQueue {
  readonly #target: SendTarget
  #queued: Item[] = []
  #scheduled = false
  /** A batch the socket had no room for: it goes on first when there is. */
  #blocked: Batch | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false
  // The payloads of a batch, copied together. Used again for every batch (one
  // is in flight at a time, #blocked included): a fresh buffer a batch was
  // fresh pages to fault in, which cost sender()'s 1024-datagram batches of
  // 1400 bytes more than the send itself (measured: 57 % of its CPU).
  #scratch: Buffer = Buffer.allocUnsafeSlow(0)

  constructor(target: SendTarget) {
    this.#target = target
  }

  /** Datagrams queued or waiting for room. */
  get pending(): number {
    return this.#queued.length + (this.#blocked ? this.#blocked.items.length - this.#blocked.next : 0)
  }

  send(data: unknown, port: unknown, address: unknown, options: unknown): Promise<void> {
    let item: Item
    try {
      if (this.#closed) throw closedError('send()')
      item = validate(this.#target, data, port, address, options)
    } catch (error) {
      return Promise.reject(error)
    }
    const promise = new Promise<void>((resolve, reject) => {
      item.resolve = resolve
      item.reject = reject
    })
    this.#queued.push(item)
    if (!this.#scheduled) {
      this.#scheduled = true
      process.nextTick(this.#flushLater)
    }
    return promise
  }

  /** Called once the socket closes: what is queued is tried once, the rest rejects. */
  close(): void {
    if (this.#closed) return
    this.#flush()
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const error = closedError('send()')
    const blocked = this.#blocked
    this.#blocked = undefined
    if (blocked) for (let i = blocked.next; i < blocked.items.length; i++) blocked.items[i].reject(error)
    for (const item of this.#queued.splice(0)) item.reject(error)
  }

  readonly #flushLater = (): void => this.#flush()

  #flush(): void {
    this.#scheduled = false
    if (this.#blocked !== undefined || this.#queued.length === 0 || this.#closed) return
    const items = this.#queued
    this.#queued = []
    this.#run(this.#build(items))
  }

  #build(items: Item[]): Batch {
    const count = items.length
    const table = new Uint32Array(count * STRIDE)
    const bytes = new Uint8Array(table.buffer)
    let payloads: Uint8Array
    if (count === 1) {
      payloads = items[0].data
    } else {
      let total = 0
      for (const item of items) total += item.data.byteLength
      if (total > this.#scratch.length) this.#scratch = Buffer.allocUnsafeSlow(Math.max(total, 2 * this.#scratch.length))
      payloads = this.#scratch.subarray(0, total)
    }
    let offset = 0
    for (let i = 0; i < count; i++) {
      const item = items[i]
      const row = i * STRIDE
      const length = item.data.byteLength
      if (count > 1) payloads.set(item.data, offset)
      table[row + W_OFFSET] = offset
      table[row + W_LENGTH] = length
      table[row + W_PORT] = item.port
      table[row + W_INTERFACE] = item.interfaceIndex
      let flags = item.destination.ipv6 ? F_IPV6 : 0
      bytes.set(item.destination.bytes, (row + W_ADDRESS) * 4)
      if (item.from !== undefined) {
        flags |= F_HAS_FROM | (item.from.ipv6 ? F_FROM_IPV6 : 0)
        bytes.set(item.from.bytes, (row + W_FROM) * 4)
      }
      table[row + W_FLAGS] = flags
      if (count > 1) offset += length
    }
    return { items, table, results: new Int32Array(table.buffer), payloads, next: 0 }
  }

  #run(batch: Batch): void {
    const handle = this.#target.handle()
    const count = batch.items.length
    let done: number
    try {
      if (handle === undefined) throw closedError('send()')
      done = handle.send(batch.table, batch.payloads, batch.next, count - batch.next)
    } catch (error) {
      const failure = (error as { code?: unknown }).code === 'ERR_DGRAM_RING_CLOSED' ? closedError('send()') : (error as Error)
      for (let i = batch.next; i < count; i++) batch.items[i].reject(failure)
      this.#blocked = undefined
      return
    }
    const end = batch.next + done
    for (let i = batch.next; i < end; i++) {
      const item = batch.items[i]
      const result = batch.results[i * STRIDE + W_RESULT]
      if (result === 0) item.resolve()
      else item.reject(systemError(result, SYSCALL, { address: item.address, port: item.port }))
    }
    batch.next = end
    if (end < count) {
      this.#blocked = batch
      this.#wait(handle as NativeRingSocket, batch.results[end * STRIDE + W_RESULT])
    } else {
      this.#blocked = undefined
      if (this.#queued.length > 0) this.#flush() // queued while this one waited
    }
  }

  // The socket had no room (`code`: EAGAIN or ENOBUFS): try again once it may.
  #wait(handle: NativeRingSocket, code: number): void {
    const retry = (): void => {
      this.#timer = undefined
      const batch = this.#blocked
      if (batch === undefined || this.#closed) return
      this.#run(batch)
    }
    // ENOBUFS is the device queue, which writability does not track.
    const name = util.getSystemErrorName(code)
    if (name !== 'ENOBUFS') {
      let rc: number
      try {
        rc = handle.waitWritable(retry)
      } catch {
        rc = -1 // closed meanwhile: the timer's retry rejects
      }
      if (rc === 0) return
    }
    this.#timer = setTimeout(retry, 1)
  }
}

/** @internal stream.send() */
export type SendFunction = (data: string | ArrayBufferView, port: number, address: string, options?: SendOptions) => Promise<void>

/**
 * A Writable (object mode) of {@link OutgoingDatagram}s, from {@link DatagramStream.sender}: each chunk
 * is sent as `send()` sends it. Its callback waits until the datagrams were handed to the kernel, so a
 * socket with no room (`EAGAIN`, `ENOBUFS`) holds writes back (`write()` returns false, `pipeline()`
 * pauses) and nothing is dropped. A datagram that fails (a validation error, `EACCES`, `EMSGSIZE`, …)
 * fails the stream with that error, after the others of its batch were sent.
 */
export class DatagramSender extends Writable {
  readonly #send: SendFunction

  /** @internal made by DatagramStream.sender() */
  constructor(send: SendFunction, highWaterMark: number) {
    super({ objectMode: true, highWaterMark })
    this.#send = send
  }

  override _writev(chunks: { chunk: unknown }[], callback: (error?: Error | null) => void): void {
    const sends: Promise<void>[] = []
    for (const { chunk } of chunks) {
      if (chunk === null || typeof chunk !== 'object') {
        sends.push(Promise.reject(invalidArgType('chunk', 'an object { data, port, address, from?, interfaceIndex? }', chunk, 'argument')))
        continue
      }
      const c = chunk as OutgoingDatagram
      const options = c.from === undefined && c.interfaceIndex === undefined ? undefined : { from: c.from, interfaceIndex: c.interfaceIndex }
      sends.push(this.#send(c.data, c.port, c.address, options))
    }
    Promise.allSettled(sends).then((results) => {
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      callback(failed ? (failed.reason as Error) : null)
    })
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback)
  }
}
