// `--parse statsd` without records: one left-to-right scan over a datagram's
// bytes that writes each metric line's JSON as it goes.
//
// It covers the lines StatsD clients send, `name:value|type` with an
// optional `|@rate` (and DogStatsD fields the parser ignores), and gives up
// (returns false) on anything else: tags (their object needs the parser's key
// order), multi-value lines, sets' members that need escaping, values whose
// JSON differs from their text (`1.50`, `1e3`, `.5`, `-0`), blank or
// malformed lines, bytes outside printable ASCII, truncated datagrams. The
// caller then formats the datagram through parseStatsd(), which stays the
// one definition of the output: test/statsd-line.test.mjs holds the two to
// the same bytes.
import { encodeAscii, type LineBuffer } from './output'

const NEWLINE = 0x0a
const RETURN = 0x0d
const QUOTE = 0x22
const HASH = 0x23
const PLUS = 0x2b
const COMMA = 0x2c
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const COLON = 0x3a
const AT = 0x40
const BACKSLASH = 0x5c
const UNDERSCORE = 0x5f
const PIPE = 0x7c

const NAME = encodeAscii(',"name":"')
const TYPE_VALUE = ['c', 'g', 'ms', 'h', 'd', 's'].map((type) => encodeAscii(`","type":"${type}","value":`))
const DELTA = encodeAscii(',"delta":true')
const SAMPLE_RATE = encodeAscii(',"sampleRate":')
const END = encodeAscii('}\n')

// JSON's longest exact decimal: numbers of at most 15 significant digits are
// written back by JSON.stringify with the digits they were read with.
const MAX_DIGITS = 15
// Below 1e-6 JSON.stringify writes an exponent: 0.000001 is the smallest
// fraction it writes as `0.` and five zeros.
const MAX_FRACTION_ZEROS = 5

/** Printable ASCII that a JSON string holds as it is. */
function isPlain(byte: number): boolean {
  return byte > 0x20 && byte < 0x7f && byte !== QUOTE && byte !== BACKSLASH
}

/** Index (0–5) in TYPE_VALUE of the metric type `bytes[start, end)`, or -1. */
function metricType(bytes: Uint8Array, start: number, end: number): number {
  const first = bytes[start] as number
  if (end - start === 1) {
    switch (first) {
      case 0x63: return 0 // c
      case 0x67: return 1 // g
      case 0x68: return 3 // h
      case 0x64: return 4 // d
      case 0x73: return 5 // s
    }
    return -1
  }
  return end - start === 2 && first === 0x6d && bytes[start + 1] === 0x73 ? 2 : -1 // ms
}

/**
 * Where the digits of `bytes[start, end)` begin (after a sign), if the text
 * is a decimal that JSON.stringify(Number(text)) writes with the same digits:
 * no leading zero but a lone one, a fraction without trailing zeros, no
 * exponent, at most 15 significant digits, not below 1e-6, not -0. Else -1.
 */
function canonicalDigits(bytes: Uint8Array, start: number, end: number): number {
  let at = start
  const sign = bytes[at]
  if (sign === PLUS || sign === MINUS) at++
  const digits = at
  let i = at
  while (i < end && isDigitByte(bytes[i] as number)) i++
  const integer = i - digits
  if (integer === 0 || (integer > 1 && bytes[digits] === ZERO) || integer > MAX_DIGITS) return -1
  const zeroInteger = integer === 1 && bytes[digits] === ZERO
  if (i === end) return zeroInteger && sign === MINUS ? -1 : digits
  if (bytes[i] !== DOT) return -1
  const fraction = ++i
  while (i < end && isDigitByte(bytes[i] as number)) i++
  if (i !== end || i === fraction || bytes[end - 1] === ZERO) return -1
  let significant = integer + (end - fraction)
  if (zeroInteger) {
    let zeros = 0
    while (bytes[fraction + zeros] === ZERO) zeros++
    if (zeros > MAX_FRACTION_ZEROS) return -1
    significant = end - fraction - zeros
  }
  return significant <= MAX_DIGITS ? digits : -1
}

function isDigitByte(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39
}

/** Writes the JSON members of StatsD metrics after a datagram's prefix. */
export class StatsdLineWriter {
  /**
   * Writes one line a metric of `bytes[start, end)`: the first after the
   * prefix already written at `[prefixStart, prefixEnd)` of `out`, each next
   * one after a copy of it. Returns false, having written part of it
   * (truncate to `prefixEnd`), when the datagram needs parseStatsd().
   */
  write(out: LineBuffer, bytes: Uint8Array, start: number, end: number, prefixStart: number, prefixEnd: number): boolean {
    let lines = 0
    let at = start
    while (at < end) {
      let newline = at
      while (newline < end && bytes[newline] !== NEWLINE) newline++
      const lineEnd = newline > at && bytes[newline - 1] === RETURN ? newline - 1 : newline
      // A blank line is skipped by the parser; whitespace-only lines are left to it.
      if (lineEnd > at) {
        if (lines > 0) out.repeat(prefixStart, prefixEnd)
        if (!this.#line(out, bytes, at, lineEnd)) return false
        lines++
      }
      at = newline + 1
    }
    // A datagram without a metric is the parser's `empty datagram` error.
    return lines > 0
  }

  /** One metric line `bytes[start, end)` (no newline), or false. */
  #line(out: LineBuffer, bytes: Uint8Array, start: number, end: number): boolean {
    // DogStatsD events (`_e{`) and service checks (`_sc|`) are errors.
    if (bytes[start] === UNDERSCORE && ((bytes[start + 1] === 0x65 && bytes[start + 2] === 0x7b) || (bytes[start + 1] === 0x73 && bytes[start + 2] === 0x63 && bytes[start + 3] === PIPE))) return false
    let colon = start
    while (colon < end && isPlain(bytes[colon] as number) && bytes[colon] !== COLON && bytes[colon] !== PIPE && bytes[colon] !== COMMA) colon++
    // An empty name, a byte that needs the parser, a `,` of InfluxDB tags.
    if (colon === start || bytes[colon] !== COLON) return false
    let pipe = colon + 1
    while (pipe < end && isPlain(bytes[pipe] as number) && bytes[pipe] !== PIPE) pipe++
    if (pipe === colon + 1 || pipe === end || bytes[pipe] !== PIPE) return false
    let typeEnd = pipe + 1
    while (typeEnd < end && bytes[typeEnd] !== PIPE) typeEnd++
    const type = metricType(bytes, pipe + 1, typeEnd)
    if (type === -1) return false
    // Sections after the type: one `@rate` is taken; `#tags`, a second rate, or bytes
    // the parser would decode are left to it; other DogStatsD fields are ignored by both.
    let rateStart = -1
    let rateEnd = -1
    for (let section = typeEnd; section < end; ) {
      let sectionEnd = section + 1
      while (sectionEnd < end && bytes[sectionEnd] !== PIPE) sectionEnd++
      for (let i = section + 1; i < sectionEnd; i++) if (!isPlain(bytes[i] as number)) return false
      const first = bytes[section + 1]
      if (first === HASH || (first === AT && rateStart !== -1)) return false
      if (first === AT) {
        rateStart = section + 2
        rateEnd = sectionEnd
        if (!isSampleRate(bytes, rateStart, rateEnd)) return false
      }
      section = sectionEnd
    }
    let valueDigits = -1
    if (type !== 5) {
      valueDigits = canonicalDigits(bytes, colon + 1, pipe)
      if (valueDigits === -1) return false
    }
    out.bytes(NAME)
    out.copy(bytes, start, colon)
    out.bytes(TYPE_VALUE[type] as Uint8Array)
    if (type === 5) {
      // A set member is a string, as sent.
      out.ascii('"')
      out.copy(bytes, colon + 1, pipe)
      out.ascii('"')
    } else {
      if (bytes[colon + 1] === MINUS) out.ascii('-')
      out.copy(bytes, valueDigits, pipe)
      // A signed gauge adjusts rather than sets.
      if (type === 1 && valueDigits > colon + 1) out.bytes(DELTA)
    }
    if (rateStart !== -1) {
      out.bytes(SAMPLE_RATE)
      out.copy(bytes, rateStart, rateEnd)
    }
    out.bytes(END)
    return true
  }
}

/** A sample rate in (0, 1] written as JSON writes it: `1`, or `0.` and digits. */
function isSampleRate(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start === 1) return bytes[start] === 0x31 // 1
  return bytes[start] === ZERO && canonicalDigits(bytes, start, end) === start && end - start > 2
}
