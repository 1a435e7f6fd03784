// Pieces shared by the syslog and StatsD parsers: decoding, error records,
// prototype-safe record building and the object-mode Transform wrapper.
import { Transform } from 'node:stream'

/** Longest `raw` excerpt kept in a {@link ParserError}, in UTF-16 code units. */
const MAX_RAW_LENGTH = 256

/**
 * Record produced instead of a parsed value when the input is malformed.
 * Parsers return these rather than throwing, so one bad datagram never
 * stops a stream.
 */
export interface ParserError {
  /** Short description of what is wrong, e.g. `"invalid PRI"`. */
  error: string
  /**
   * The offending text (the whole datagram for syslog, the line for StatsD),
   * decoded as UTF-8 and cut to at most 256 UTF-16 code units so a hostile
   * 64 KiB datagram does not get copied into every log line about it.
   */
  raw: string
}

/**
 * Per-packet metadata that the parser streams copy from a datagram object
 * onto every record parsed from it. Fields that are `undefined` on the
 * datagram (e.g. `localAddress` when the OS did not report it) are left out.
 */
export interface DatagramMetadata {
  /** Sender address. */
  remoteAddress?: string
  /** Sender port. */
  remotePort?: number
  /** Local address the datagram was received on, when known. */
  localAddress?: string
  /** Index of the interface the datagram arrived on, when known. */
  interfaceIndex?: number
  /**
   * True when the kernel cut the datagram short. Every record parsed from
   * it carries this, and what the cut left (the syslog message, the last
   * StatsD line) is an error record, never data.
   */
  truncated?: boolean
}

/**
 * Structural shape of a `Datagram` from this library, as accepted by the
 * parser streams. Anything with a byte `data` field qualifies.
 */
export interface DatagramLike extends DatagramMetadata {
  /** Payload bytes. */
  data: Uint8Array
}

/** Builds a {@link ParserError}, bounding the size of `raw`. */
export function parserError(error: string, text: string): ParserError {
  if (text.length <= MAX_RAW_LENGTH) return { error, raw: text }
  let end = MAX_RAW_LENGTH
  // Do not leave half of a surrogate pair at the cut.
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return { error, raw: text.slice(0, end) }
}

/**
 * Decodes bytes as UTF-8. Invalid sequences become U+FFFD instead of
 * throwing, which is what hostile or non-UTF-8 senders need.
 */
export function decodeText(input: Uint8Array | string): string {
  if (typeof input === 'string') return input
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  return buf.toString('utf8')
}

/**
 * Sets an own enumerable property. Plain assignment would let a sender
 * naming a key `__proto__` replace the record's prototype.
 */
export function setOwn<V>(target: Record<string, V>, key: string, value: NoInfer<V>): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

/** Options of the parse functions about the datagram a payload came from. */
export interface ParseOptions {
  /**
   * The payload is the start of a longer datagram (`Datagram.truncated`):
   * its last line or message was cut and becomes an error record.
   */
  truncated?: boolean
}

/** Options common to the parser streams. */
export interface ParserStreamOptions {
  /**
   * Objects buffered on each side of the Transform before backpressure is
   * signalled. Defaults to Node's object-mode default (16).
   */
  highWaterMark?: number
}

// Each field is read once: on a library Datagram they are getters decoding the batch table.
function metadataOf(datagram: DatagramLike): DatagramMetadata {
  const { remoteAddress, remotePort, localAddress, interfaceIndex, truncated } = datagram
  const metadata: DatagramMetadata = {}
  if (remoteAddress !== undefined) metadata.remoteAddress = remoteAddress
  if (remotePort !== undefined) metadata.remotePort = remotePort
  if (localAddress !== undefined) metadata.localAddress = localAddress
  if (interfaceIndex !== undefined) metadata.interfaceIndex = interfaceIndex
  if (truncated !== undefined) metadata.truncated = truncated
  return metadata
}

function isDatagramLike(chunk: unknown): chunk is DatagramLike {
  return typeof chunk === 'object' && chunk !== null && (chunk as { data?: unknown }).data instanceof Uint8Array
}

/**
 * Wraps a parser in an object-mode Transform accepting a Buffer, a
 * Uint8Array, a string, or a {@link DatagramLike}. Records parsed from a
 * datagram object get its {@link DatagramMetadata} attached, and a truncated
 * one's cut-off end is an error record. Unsupported
 * chunks become a {@link ParserError} rather than an `'error'` event, so the
 * stream keeps flowing.
 */
export function createParserTransform<R extends object>(
  parse: (input: Uint8Array | string, truncated: boolean) => readonly R[],
  options: ParserStreamOptions,
): Transform {
  return new Transform({
    objectMode: true,
    highWaterMark: options.highWaterMark,
    transform(chunk: unknown, _encoding, callback) {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) {
        for (const record of parse(chunk, false)) this.push(record)
      } else if (isDatagramLike(chunk)) {
        const metadata = metadataOf(chunk)
        for (const record of parse(chunk.data, metadata.truncated === true)) this.push({ ...record, ...metadata })
      } else {
        this.push(parserError('unsupported chunk: expected Buffer, string or { data: Buffer }', ''))
      }
      callback()
    },
  })
}
