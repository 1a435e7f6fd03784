// What a datagram becomes on stdout: JSON lines that start with where and
// when it came from, then its payload or the records parsed from it.
//
// A batch at a time, written straight into the batch's output bytes: the
// datagram's fields as a JSON prefix, then the payload or each record's
// members after it, with no merged object and no string a line. The output
// is exactly what JSON.stringify({ ...fields, ...record }) gives
// (test/golden.test.mjs holds it to that).
import { Buffer } from 'node:buffer'
import { binding } from '../binding'
import { formatAddress, type DatagramBatch } from '../datagram'
import { parseStatsd, parseSyslog } from '../parsers'
import { zoneConverter } from '../parsers/timezone'
import type { ListenCommand } from './flags'
import { encodeAscii, type LineBuffer } from './output'
import { StatsdLineWriter } from './statsd-line'
import { SyslogLineWriter } from './syslog-line'

const T = binding.table
const F = binding.flags

/**
 * Writes the lines of the datagrams `from` to `to` (exclusive) of a batch,
 * one a record, each ending in a newline, marking where each datagram's end.
 */
export type BatchFormatter = (batch: DatagramBatch, from: number, to: number, out: LineBuffer) => void

// The keys of the prefix. A record never has one of them (the parsers'
// record types say so, and the compiler holds them to it): writing a
// record's members after the prefix then gives what an object spread would.
type PrefixKey = 'remoteAddress' | 'remotePort' | 'localAddress' | 'interfaceIndex' | 'receivedAt' | 'size' | 'truncated'
type ParsedRecord = object & { [K in PrefixKey]?: never }

const DATA = encodeAscii(',"data":')
const UTF8_END = encodeAscii(',"encoding":"utf8"}\n')
const TRUE = encodeAscii(',"truncated":true')
const FALSE = encodeAscii(',"truncated":false')

/** A value's text between a fixed head and tail, encoded once a value. */
class EncodedText {
  readonly #head: string
  readonly #tail: string
  readonly #limit: number
  readonly #encoded = new Map<string | number, Uint8Array>()
  // The last value asked for: most lines repeat it (one sender, one batch).
  #last: string | number | undefined = undefined
  #lastBytes: Uint8Array = new Uint8Array(0)

  /** Up to `limit` values are kept encoded besides the last: a flood from many sources clears them rather than growing them. */
  constructor(head: string, tail: string, limit: number) {
    this.#head = head
    this.#tail = tail
    this.#limit = limit
  }

  /** The bytes for `value`: an address, or a receive time (milliseconds) written as ISO 8601. */
  of(value: string | number): Uint8Array {
    if (value === this.#last) return this.#lastBytes
    let bytes = this.#encoded.get(value)
    if (bytes === undefined) {
      const text = typeof value === 'number' ? new Date(value).toISOString() : value
      bytes = encodeAscii(`${this.#head}${text}${this.#tail}`)
      if (this.#encoded.size >= this.#limit) this.#encoded.clear()
      if (this.#limit > 0) this.#encoded.set(value, bytes)
    }
    this.#last = value
    this.#lastBytes = bytes
    return bytes
  }
}

/** The row's kernel receive time (ns in two words) in whole milliseconds since the epoch. */
function kernelMilliseconds(table: Uint32Array, row: number): number {
  return Number(((BigInt(table[row + T.timestampHigh]) << 32n) | BigInt(table[row + T.timestampLow])) / 1_000_000n)
}

const WHOLE = Object.freeze({ truncated: false })
const TRUNCATED = Object.freeze({ truncated: true })

export function batchFormatter(command: Pick<ListenCommand, 'parse' | 'encoding' | 'timeZone'>): BatchFormatter {
  // The prefix in pieces encoded once: the sender's address (most traffic
  // comes from few peers), the local address, and the batch's receive time.
  const remote = new EncodedText('{"remoteAddress":"', '","remotePort":', 1024)
  const local = new EncodedText(',"localAddress":"', '","interfaceIndex":', 64)
  // A receive time is never seen again once its batch is written.
  const received = new EncodedText(',"receivedAt":"', '","size":', 0)
  // `{"remoteAddress":…,"truncated":…` without the closing brace. Fields the
  // OS did not report are left out, as JSON.stringify leaves out undefined.
  // Most datagrams of a batch come from the sender of the one before: their
  // prefix up to "size" is then that one's again, copied from the output
  // (`reused` says where it lies; reset for every call of the formatter).
  const reused = { row: -1, start: 0, end: 0 }
  // Only IPv4 prefixes without a per-datagram time are reused: the rest are rare.
  const NOT_REUSED = F.remoteIPv6 | F.localIPv6 | F.hasTimestamp
  const sameSender = (table: Uint32Array, row: number, flags: number, previous: number): boolean =>
    previous >= 0 &&
    (flags & NOT_REUSED) === 0 &&
    (flags & (NOT_REUSED | F.hasLocal)) === ((table[previous + T.flags] as number) & (NOT_REUSED | F.hasLocal)) &&
    table[row + T.remoteAddress] === table[previous + T.remoteAddress] &&
    table[row + T.remotePort] === table[previous + T.remotePort] &&
    table[row + T.localAddress] === table[previous + T.localAddress] &&
    table[row + T.interfaceIndex] === table[previous + T.interfaceIndex]
  const prefix = (batch: DatagramBatch, index: number, out: LineBuffer): void => {
    const table = batch.table
    const row = index * T.stride
    const flags = table[row + T.flags] as number
    if (sameSender(table, row, flags, reused.row)) {
      out.repeat(reused.start, reused.end)
    } else {
      const start = out.length
      // Addresses come formatted (and cached) as a Datagram's do, without making one.
      out.bytes(remote.of(formatAddress(batch, row + T.remoteAddress, (flags & F.remoteIPv6) !== 0)))
      out.integer(table[row + T.remotePort] as number)
      if (flags & F.hasLocal) {
        out.bytes(local.of(formatAddress(batch, row + T.localAddress, (flags & F.localIPv6) !== 0)))
        out.integer(table[row + T.interfaceIndex] as number)
      }
      // The kernel's receive time where the socket asked for it (`timestamp`), else the batch's.
      out.bytes(received.of(flags & F.hasTimestamp ? kernelMilliseconds(table, row) : batch.receivedAt))
      reused.start = start
      reused.end = out.length
    }
    reused.row = row
    out.integer(table[row + T.length] as number)
    out.bytes(flags & F.truncated ? TRUE : FALSE)
  }
  // The payload as a Buffer, for the parsers and the encoders that need one.
  const payload = (batch: DatagramBatch, index: number): Buffer => {
    const row = index * T.stride
    return Buffer.from(batch.buffer, batch.table[row + T.offset], batch.table[row + T.length])
  }
  const isTruncated = (batch: DatagramBatch, index: number): boolean => ((batch.table[index * T.stride + T.flags] as number) & F.truncated) !== 0
  // One record's members after the datagram's prefix.
  const record = (out: LineBuffer, parsed: ParsedRecord): void => {
    out.members(JSON.stringify(parsed))
    out.ascii('\n')
  }

  switch (command.parse) {
    case 'syslog': {
      const timeZone = command.timeZone
      const lines = new SyslogLineWriter(zoneConverter(timeZone ?? 'UTC'))
      return (batch, from, to, out) => {
        reused.row = -1
        const bytes = batch.bytes
        const table = batch.table
        const receivedAt = batch.receivedAt
        for (let i = from; i < to; i++) {
          prefix(batch, i, out)
          const row = i * T.stride
          const start = table[row + T.offset] as number
          const written = out.length
          // A truncated datagram is an error record: parseSyslog() writes those.
          if (isTruncated(batch, i) || !lines.write(out, bytes, start, start + (table[row + T.length] as number), receivedAt)) {
            out.truncate(written)
            // The year of an RFC 3164 date is guessed against the time it arrived.
            record(out, parseSyslog(payload(batch, i), { truncated: isTruncated(batch, i), now: () => receivedAt, timeZone }))
          }
          out.endDatagram()
        }
      }
    }
    case 'statsd': {
      const lines = new StatsdLineWriter()
      return (batch, from, to, out) => {
        reused.row = -1
        const bytes = batch.bytes
        const table = batch.table
        for (let i = from; i < to; i++) {
          const start = out.length
          prefix(batch, i, out)
          const end = out.length
          const row = i * T.stride
          const offset = table[row + T.offset] as number
          if (!isTruncated(batch, i) && lines.write(out, bytes, offset, offset + (table[row + T.length] as number), start, end)) {
            out.endDatagram()
            continue
          }
          out.truncate(end)
          const metrics = parseStatsd(payload(batch, i), isTruncated(batch, i) ? TRUNCATED : WHOLE)
          for (let m = 0; m < metrics.length; m++) {
            if (m > 0) out.repeat(start, end)
            record(out, metrics[m] as ParsedRecord)
          }
          out.endDatagram()
        }
      }
    }
    case 'raw': {
      const encoding = command.encoding
      return (batch, from, to, out) => {
        reused.row = -1
        const bytes = batch.bytes
        const table = batch.table
        for (let i = from; i < to; i++) {
          prefix(batch, i, out)
          const row = i * T.stride
          const start = table[row + T.offset] as number
          const end = start + (table[row + T.length] as number)
          out.bytes(DATA)
          const at = out.length
          if (encoding === 'hex') {
            out.ascii('"')
            out.hex(bytes, start, end)
            out.ascii('","encoding":"hex"}\n')
          } else if ((encoding === undefined || encoding === 'utf8') && out.jsonUtf8(bytes, start, end)) {
            out.bytes(UTF8_END)
          } else if (encoding === 'utf8') {
            // Not UTF-8, and asked for as text: decoded with U+FFFD for what is not.
            out.truncate(at)
            out.add(JSON.stringify(payload(batch, i).toString('utf8')))
            out.ascii(',"encoding":"utf8"}\n')
          } else {
            // Base64 as asked, or because bytes that are not UTF-8 would be mangled as text.
            out.truncate(at)
            out.ascii(`"${payload(batch, i).toString('base64')}","encoding":"base64"}\n`)
          }
          out.endDatagram()
        }
      }
    }
  }
}
