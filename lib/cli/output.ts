// A batch's lines as bytes, for one write: written straight into a buffer
// that is used again as long as the output holds none of it, rather than
// built as strings and joined (which the engine must allocate, flatten and
// then encode, for every line).
import { Buffer } from 'node:buffer'

const INITIAL_BYTES = 256 * 1024

/** What take() hands over: the bytes, and where each datagram's lines end in them. */
export interface Lines {
  bytes: Buffer
  ends: number[]
}

const HEX = '0123456789abcdef'

// JSON.stringify's escapes for the bytes below 0x20, '"' and '\': the short
// forms where JSON has one, else \u00XX; '' for the other ASCII bytes.
const ESCAPES: string[] = []
// 1 for the bytes a JSON string holds as they are: ASCII but those escaped.
const PLAIN = new Uint8Array(256)
for (let byte = 0; byte < 0x80; byte++) {
  const short = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' }[byte]
  const escape = short ?? (byte < 0x20 ? `\\u00${HEX[byte >> 4]}${HEX[byte & 15]}` : '')
  ESCAPES.push(escape)
  PLAIN[byte] = escape === '' ? 1 : 0
}
// Runs up to this long are copied a byte at a time: a subarray costs more.
const SHORT_RUN = 16

/** ASCII text as bytes, for text appended often: a string a character at a time costs more, a cons string most. */
export function encodeAscii(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0))
}

export class LineBuffer {
  #buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES)
  // A DataView of #buffer, for #copyPlain() to write four bytes at once.
  #bufferView = viewOf(this.#buffer)
  #length = 0
  #ends: number[] = []
  // A DataView of the last source that #copyPlain() read (a batch's bytes, mostly: kept until the next batch's).
  #view: DataView = new DataView(new ArrayBuffer(0))
  #viewed: Uint8Array | undefined = undefined

  /** Bytes written since the last take. */
  get length(): number {
    return this.#length
  }

  /** Forgets what was written after `length` (a line given up half way). */
  truncate(length: number): void {
    this.#length = length
  }

  /** A copy of what was written from `start` on. */
  written(start: number): Uint8Array {
    // Uint8Array's slice copies (Buffer's would be a view of bytes about to be used again).
    return Uint8Array.prototype.slice.call(this.#buffer, start, this.#length)
  }

  /** Makes room for `bytes` more bytes. */
  reserve(bytes: number): void {
    const room = this.#length + bytes
    if (room <= this.#buffer.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(room, this.#buffer.length * 2))
    this.#buffer.copy(grown, 0, 0, this.#length)
    this.#buffer = grown
    this.#bufferView = viewOf(grown)
  }

  /** Appends text, encoded as UTF-8. */
  add(text: string): void {
    // UTF-8 takes at most 3 bytes a UTF-16 unit.
    this.reserve(text.length * 3)
    this.#length += this.#buffer.write(text, this.#length, 'utf8')
  }

  /**
   * Appends the members of an object's JSON text after members already
   * written, as an object spread would place them: `,"a":1}` (the object's
   * `{` becomes the comma), or `}` for `{}`.
   */
  members(json: string): void {
    if (json.length === 2) return this.ascii('}')
    const at = this.#length
    this.add(json)
    this.#buffer[at] = 0x2c
  }

  /** Appends again the bytes written at `[start, end)` (one datagram's prefix, for its next line or datagram). */
  repeat(start: number, end: number): void {
    this.reserve(end - start) // a grown buffer holds what was written at the same offsets
    // Within the buffer: a memmove with no view made of the source (measured
    // 17 % less for the whole raw formatter, runs taking turns).
    this.#buffer.copyWithin(this.#length, start, end)
    this.#length += end - start
  }

  /** Appends text known to be ASCII (keys, numbers, addresses): a byte a character. */
  ascii(text: string): void {
    this.reserve(text.length)
    const buffer = this.#buffer
    let at = this.#length
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i)
    this.#length = at
  }

  /** Appends a non-negative integer in decimal (below 2^53: ports, sizes, indices). */
  integer(value: number): void {
    // Below 2^31 (all but the rarest), in 32-bit integer arithmetic.
    const small = value < 0x80000000
    let digits = 1
    for (let power = 10; power <= value; power *= 10) digits++
    this.reserve(digits)
    const buffer = this.#buffer
    const end = this.#length + digits
    for (let at = end - 1; at >= this.#length; at--) {
      const next = small ? ((value / 10) | 0) : Math.floor(value / 10)
      buffer[at] = 0x30 + value - next * 10
      value = next
    }
    this.#length = end
  }

  /** Appends all of `bytes` (text encoded once, from {@link encodeAscii}). */
  bytes(bytes: Uint8Array): void {
    this.copy(bytes, 0, bytes.length)
  }

  /** Appends `source[start, end)` as it is. */
  copy(source: Uint8Array, start: number, end: number): void {
    this.reserve(end - start)
    const buffer = this.#buffer
    let at = this.#length
    if (end - start > SHORT_RUN) {
      buffer.set(start === 0 && end === source.length ? source : source.subarray(start, end), at)
      at += end - start
    } else {
      for (let i = start; i < end; i++) buffer[at++] = source[i] as number
    }
    this.#length = at
  }

  /** Appends `bytes[start, end)` as hexadecimal digits. */
  hex(source: Uint8Array, start: number, end: number): void {
    this.reserve(2 * (end - start))
    const buffer = this.#buffer
    let at = this.#length
    for (let i = start; i < end; i++) {
      const byte = source[i] as number
      buffer[at++] = HEX.charCodeAt(byte >> 4)
      buffer[at++] = HEX.charCodeAt(byte & 15)
    }
    this.#length = at
  }

  /**
   * Appends `source[start, end)`, UTF-8 text, as a JSON string: exactly what
   * JSON.stringify writes for the text decoded. Valid UTF-8 is copied as it
   * is, with only `"`, `\` and control characters escaped. Returns false
   * (having written part of it: truncate) if the bytes are not valid UTF-8,
   * whose decoding the caller leaves to Buffer's decoder.
   */
  jsonUtf8(source: Uint8Array, start: number, end: number): boolean {
    // \u00XX is the longest: 6 bytes for one.
    this.reserve(6 * (end - start) + 2)
    const buffer = this.#buffer
    let at = this.#length
    buffer[at++] = 0x22
    // Most text needs no escaping: the run before the first byte that does
    // is tested and copied four bytes at a time (measured 8–12 % less for the
    // whole raw formatter than a scan and then one copy, runs taking turns).
    let i = start
    if (end - start > SHORT_RUN) {
      i = this.#copyPlain(source, start, end, at)
      at += i - start
    }
    while (i < end) {
      // A run of bytes written as they are: found by a scan, then copied at once.
      const run = i
      while (i < end && PLAIN[source[i] as number] === 1) i++
      this.#length = at
      this.copy(source, run, i)
      at = this.#length
      if (i === end) break
      const byte = source[i] as number
      if (byte < 0x80) {
        const escape = ESCAPES[byte] as string
        for (let k = 0; k < escape.length; k++) buffer[at++] = escape.charCodeAt(k)
        i++
        continue
      }
      const length = utf8SequenceLength(source, i, end)
      if (length === 0) return false
      for (let k = 0; k < length; k++) buffer[at++] = source[i + k] as number
      i += length
    }
    buffer[at++] = 0x22
    this.#length = at
    return true
  }

  /**
   * Copies the run of PLAIN bytes from `start` on to `at`, four bytes at a
   * time, each word tested at once for a byte below 0x20, `"`, `\` or one
   * above 0x7f (the tests of "Bit Twiddling Hacks": never a miss; a false
   * alarm only leaves the rest to the byte loop); returns where it stopped.
   * The caller has reserved the room.
   */
  #copyPlain(source: Uint8Array, start: number, end: number, at: number): number {
    let view = this.#view
    if (this.#viewed !== source) {
      view = viewOf(source)
      this.#view = view
      this.#viewed = source
    }
    const out = this.#bufferView
    let i = start
    for (; i + 4 <= end; i += 4, at += 4) {
      const word = view.getInt32(i, true)
      const quote = word ^ 0x22222222
      const backslash = word ^ 0x5c5c5c5c
      const flagged = (((word - 0x20202020) | 0) & ~word) | (((quote - 0x01010101) | 0) & ~quote) | (((backslash - 0x01010101) | 0) & ~backslash) | word
      if ((flagged & 0x80808080) !== 0) break
      out.setInt32(at, word, true)
    }
    return i
  }

  /** The lines of one datagram end here. */
  endDatagram(): void {
    this.#ends.push(this.#length)
  }

  /** The bytes added since the last take, to be written; the buffer is used again for the next ones. */
  take(): Lines {
    const lines = { bytes: this.#buffer.subarray(0, this.#length), ends: this.#ends }
    this.#length = 0
    this.#ends = []
    return lines
  }

  /** The output still holds what take() gave it: leave that to the output, and go on in a new buffer. */
  detach(): void {
    this.#buffer = Buffer.allocUnsafeSlow(this.#buffer.length)
    this.#bufferView = viewOf(this.#buffer)
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * Length of the well-formed UTF-8 sequence (2–4 bytes, no overlong form, no
 * surrogate, at most U+10FFFF: the Unicode table 3-7) at `at`, or 0.
 */
function utf8SequenceLength(bytes: Uint8Array, at: number, end: number): number {
  const lead = bytes[at] as number
  const b1 = at + 1 < end ? (bytes[at + 1] as number) : 0
  if (lead >= 0xc2 && lead <= 0xdf) return (b1 & 0xc0) === 0x80 ? 2 : 0
  const b2 = at + 2 < end ? (bytes[at + 2] as number) : 0
  if (lead >= 0xe0 && lead <= 0xef) {
    const low = lead === 0xe0 ? 0xa0 : 0x80
    const high = lead === 0xed ? 0x9f : 0xbf
    return b1 >= low && b1 <= high && (b2 & 0xc0) === 0x80 ? 3 : 0
  }
  const b3 = at + 3 < end ? (bytes[at + 3] as number) : 0
  if (lead >= 0xf0 && lead <= 0xf4) {
    const low = lead === 0xf0 ? 0x90 : 0x80
    const high = lead === 0xf4 ? 0x8f : 0xbf
    return b1 >= low && b1 <= high && (b2 & 0xc0) === 0x80 && (b3 & 0xc0) === 0x80 ? 4 : 0
  }
  return 0
}
