// `--parse syslog` without a record: one left-to-right scan over the
// datagram's bytes (PRI, version, header fields, structured data, message)
// that writes the record's JSON as it goes, strings copied byte for byte
// unless they need escaping.
//
// It covers the messages senders send, and gives up (returns false) on
// anything else: a datagram parseSyslog() reports as an error, structured
// data whose JSON key order or values need the object (a repeated or
// numeric name, a backslash escape), bytes that are not UTF-8. The caller
// then formats the datagram through parseSyslog(), which stays the one
// definition of the output: test/syslog-line.test.mjs holds the two to the
// same bytes, on the golden corpus and on generated messages.
import { bsdToIso, daysInMonth, MONTHS, utcMillis, validTime } from '../parsers/syslog'
import type { ZoneConverter } from '../parsers/timezone'
import { encodeAscii, type LineBuffer } from './output'

const SPACE = 0x20
const QUOTE = 0x22
const DASH = 0x2d
const COLON = 0x3a
const OPEN = 0x5b // [
const BACKSLASH = 0x5c
const CLOSE = 0x5d // ]

const NO_TIMESTAMP = encodeAscii(',"timestamp":null,"isoTimestamp":null')

// The JSON keys of the RFC 5424 header fields after TIMESTAMP, in order.
const HEADER_KEYS = [',"hostname":', ',"appName":', ',"procId":', ',"msgId":'].map(encodeAscii)
const NULL = encodeAscii('null')
const STRUCTURED_DATA = encodeAscii(',"structuredData":')
const MESSAGE = encodeAscii(',"message":')
const NO_STRUCTURED_DATA = encodeAscii(',"structuredData":{},"message":')
const END = encodeAscii('}\n')

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39
}

/** True for the bytes that end an SD-NAME (SD-ID or PARAM-NAME), as parseSyslog has them. */
function endsSdName(byte: number): boolean {
  return byte === SPACE || byte === CLOSE || byte === 0x3d /* = */ || byte === QUOTE
}

/** True for the bytes an RFC 3164 TAG's name and pid may not hold. */
function isTagForbidden(byte: number): boolean {
  return byte === OPEN || byte === CLOSE || byte === COLON
}

/** Month number (1–12) of the three-letter English name at `at`, or 0. */
function monthAt(bytes: Uint8Array, at: number, end: number): number {
  if (at + 3 > end) return 0
  for (let month = 0; month < 12; month++) {
    const name = MONTHS[month] as string
    if (bytes[at] === name.charCodeAt(0) && bytes[at + 1] === name.charCodeAt(1) && bytes[at + 2] === name.charCodeAt(2)) return month + 1
  }
  return 0
}

/** The value of the two decimal digits at `at`, or -1. */
function twoDigits(bytes: Uint8Array, at: number): number {
  const high = (bytes[at] as number) - 0x30
  const low = (bytes[at + 1] as number) - 0x30
  return high >= 0 && high <= 9 && low >= 0 && low <= 9 ? high * 10 + low : -1
}

/** Writes the JSON members of syslog records after a datagram's prefix. One a command: it keeps the last timestamps converted. */
export class SyslogLineWriter {
  readonly #zone: ZoneConverter
  // The RFC 3339 timestamp being converted, from parseRfc3339().
  #year = 0
  #month = 0
  #day = 0
  #hour = 0
  #minute = 0
  #second = 0
  #millis = 0
  #offsetMinutes = 0
  #zulu = false
  // The last RFC 5424 timestamp, and the JSON written for it.
  #lastStamp = new Uint8Array(64)
  #lastStampLength = -1
  #lastStampJson: Uint8Array = new Uint8Array(0)
  // The JSON of PRI and VERSION 1 (RFC 5424) or none (RFC 3164), by version * 192 + priority.
  #heads: (Uint8Array | undefined)[] = []
  // The SD-IDs (or PARAM-NAMEs of one element) written so far, as start/end pairs, to see repeats.
  #names: number[] = []

  constructor(zone: ZoneConverter) {
    this.#zone = zone
  }

  /**
   * Writes `,"format":…,"message":…}` and a newline for the syslog message
   * in `bytes[start, end)`, received at `receivedAt`. Returns false, having
   * written part of it, where the datagram needs parseSyslog().
   */
  write(out: LineBuffer, bytes: Uint8Array, start: number, end: number, receivedAt: number): boolean {
    // Senders that end datagrams like lines: trailing LF, CR and NUL are not the message.
    while (end > start) {
      const last = bytes[end - 1]
      if (last !== 0x0a && last !== 0x0d && last !== 0x00) break
      end--
    }
    if (end - start < 3 || bytes[start] !== 0x3c /* < */) return false
    let pos = start + 1
    let priority = 0
    while (pos < end && pos - start <= 3 && isDigit(bytes[pos] as number)) priority = priority * 10 + (bytes[pos++] as number) - 0x30
    if (pos === start + 1 || pos >= end || bytes[pos] !== 0x3e /* > */ || priority > 191) return false
    pos++
    // A 1–3 digit VERSION and a space make it RFC 5424; digits at the end of the datagram are a truncated header.
    let version = 0
    let versionEnd = pos
    while (versionEnd < end && versionEnd - pos < 3 && isDigit(bytes[versionEnd] as number)) version = version * 10 + (bytes[versionEnd++] as number) - 0x30
    const first = bytes[pos] as number
    if (versionEnd > pos && first !== 0x30) {
      if (versionEnd === end) return false
      if (bytes[versionEnd] === SPACE) return this.#rfc5424(out, bytes, versionEnd + 1, end, priority, version)
    }
    return this.#rfc3164(out, bytes, pos, end, priority, receivedAt)
  }

  /** `,"format":…,"version":…`: from PRI and VERSION alone, so encoded once for each (RFC 3164: version 0). */
  #head(out: LineBuffer, priority: number, version: number): void {
    const key = version * 192 + priority
    let head = key < this.#heads.length ? this.#heads[key] : undefined
    if (head === undefined) {
      const format = version === 0 ? 'rfc3164' : 'rfc5424'
      head = encodeAscii(
        `,"format":"${format}","priority":${priority},"facility":${priority >> 3},"severity":${priority & 7},"version":${version === 0 ? 'null' : version}`,
      )
      // Versions other than 1 are rare: encoded each time rather than kept.
      if (version <= 1) this.#heads[key] = head
    }
    out.bytes(head)
  }

  /** A header field: `null` for the NILVALUE `-`. */
  #field(out: LineBuffer, key: Uint8Array, bytes: Uint8Array, start: number, end: number): boolean {
    out.bytes(key)
    if (end - start === 1 && bytes[start] === DASH) {
      out.bytes(NULL)
      return true
    }
    return out.jsonUtf8(bytes, start, end)
  }

  #rfc5424(out: LineBuffer, bytes: Uint8Array, pos: number, end: number, priority: number, version: number): boolean {
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each non-empty and followed by one space.
    const stamp = pos
    const stampEnd = this.#wordEnd(bytes, pos, end)
    if (stampEnd === -1) return false
    this.#head(out, priority, version)
    if (stampEnd - stamp === 1 && bytes[stamp] === DASH) {
      out.bytes(NO_TIMESTAMP)
    } else if (!this.#timestamp(out, bytes, stamp, stampEnd)) {
      return false
    }
    pos = stampEnd + 1
    for (const key of HEADER_KEYS) {
      const fieldEnd = this.#wordEnd(bytes, pos, end)
      if (fieldEnd === -1 || !this.#field(out, key, bytes, pos, fieldEnd)) return false
      pos = fieldEnd + 1
    }
    if (pos >= end) return false
    if (bytes[pos] === DASH) {
      out.bytes(NO_STRUCTURED_DATA)
      pos++
    } else {
      out.bytes(STRUCTURED_DATA)
      pos = this.#structuredData(out, bytes, pos, end)
      if (pos === -1) return false
      out.bytes(MESSAGE)
    }
    if (pos < end) {
      if (bytes[pos] !== SPACE) return false
      pos++
      // A UTF-8 BOM says the MSG is UTF-8; it is not part of it.
      if (end - pos >= 3 && bytes[pos] === 0xef && bytes[pos + 1] === 0xbb && bytes[pos + 2] === 0xbf) pos += 3
    }
    if (!out.jsonUtf8(bytes, pos, end)) return false
    out.bytes(END)
    return true
  }

  /** End of a non-empty header field at `pos` that a space follows, or -1. */
  #wordEnd(bytes: Uint8Array, pos: number, end: number): number {
    let at = pos
    while (at < end && bytes[at] !== SPACE) at++
    return at === pos || at === end ? -1 : at
  }

  /**
   * Writes the SD-ELEMENTs at `pos` as a JSON object; returns where they end,
   * or -1 where parseSyslog() must decide (malformed, escapes, a name that is
   * repeated or numeric, which an object would reorder).
   */
  #structuredData(out: LineBuffer, bytes: Uint8Array, pos: number, end: number): number {
    if (bytes[pos] !== OPEN) return -1
    const ids = this.#names
    ids.length = 0
    out.ascii('{')
    while (pos < end && bytes[pos] === OPEN) {
      pos++
      const id = pos
      while (pos < end && !endsSdName(bytes[pos] as number)) pos++
      if (!this.#newName(bytes, id, pos, ids, 0)) return -1
      if (ids.length > 2) out.ascii(',')
      if (!out.jsonUtf8(bytes, id, pos)) return -1
      out.ascii(':{')
      const params = ids.length
      while (pos < end && bytes[pos] === SPACE) {
        pos++
        const name = pos
        while (pos < end && !endsSdName(bytes[pos] as number)) pos++
        if (pos + 1 >= end || bytes[pos] !== 0x3d /* = */ || bytes[pos + 1] !== QUOTE) return -1
        if (!this.#newName(bytes, name, pos, ids, params)) return -1
        if (ids.length > params + 2) out.ascii(',')
        if (!out.jsonUtf8(bytes, name, pos)) return -1
        out.ascii(':')
        pos += 2
        const value = pos
        while (pos < end && bytes[pos] !== QUOTE) {
          if (bytes[pos] === BACKSLASH) return -1
          pos++
        }
        if (pos >= end || !out.jsonUtf8(bytes, value, pos)) return -1
        pos++
      }
      if (pos >= end || bytes[pos] !== CLOSE) return -1
      pos++
      ids.length = params
      out.ascii('}')
    }
    out.ascii('}')
    return pos
  }

  /**
   * Adds the name `bytes[start, end)` to `names` (pairs from `from` on) if
   * it is one that keeps its place in a JSON object: not empty, not starting
   * with a digit (an array index goes first), not already there.
   */
  #newName(bytes: Uint8Array, start: number, end: number, names: number[], from: number): boolean {
    if (end === start || isDigit(bytes[start] as number)) return false
    const length = end - start
    for (let i = from; i < names.length; i += 2) {
      const other = names[i] as number
      if ((names[i + 1] as number) - other !== length) continue
      let k = 0
      while (k < length && bytes[start + k] === bytes[other + k]) k++
      if (k === length) return false
    }
    names.push(start, end)
    return true
  }

  /**
   * Reads an RFC 3339 timestamp (`YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)`,
   * a valid date and time) into the fields above; false if it is not one.
   */
  #parseRfc3339(bytes: Uint8Array, start: number, end: number): boolean {
    if (end - start < 20) return false
    const century = twoDigits(bytes, start)
    const years = twoDigits(bytes, start + 2)
    const month = twoDigits(bytes, start + 5)
    const day = twoDigits(bytes, start + 8)
    const hour = twoDigits(bytes, start + 11)
    const minute = twoDigits(bytes, start + 14)
    const second = twoDigits(bytes, start + 17)
    if (century < 0 || years < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return false
    if (bytes[start + 4] !== DASH || bytes[start + 7] !== DASH || bytes[start + 10] !== 0x54 /* T */) return false
    if (bytes[start + 13] !== COLON || bytes[start + 16] !== COLON) return false
    const year = century * 100 + years
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || !validTime(hour, minute, second)) return false
    let pos = start + 19
    let millis = 0
    if (bytes[pos] === 0x2e /* . */) {
      const digits = ++pos
      while (pos < end && isDigit(bytes[pos] as number)) {
        // Only milliseconds are kept: the first three digits, padded.
        if (pos - digits < 3) millis += ((bytes[pos] as number) - 0x30) * (pos === digits ? 100 : pos === digits + 1 ? 10 : 1)
        pos++
      }
      if (pos === digits || pos - digits > 9) return false
    }
    let offsetMinutes = 0
    const zulu = pos + 1 === end && bytes[pos] === 0x5a /* Z */
    if (!zulu) {
      const sign = bytes[pos]
      if (pos + 6 !== end || (sign !== 0x2b && sign !== DASH) || bytes[pos + 3] !== COLON) return false
      const offsetHours = twoDigits(bytes, pos + 1)
      const offsetMins = twoDigits(bytes, pos + 4)
      if (offsetHours < 0 || offsetMins < 0 || offsetHours > 23 || offsetMins > 59) return false
      offsetMinutes = (sign === DASH ? -1 : 1) * (offsetHours * 60 + offsetMins)
    }
    this.#year = year
    this.#month = month
    this.#day = day
    this.#hour = hour
    this.#minute = minute
    this.#second = second
    this.#millis = millis
    this.#offsetMinutes = offsetMinutes
    this.#zulu = zulu
    return true
  }

  /** Writes the ISO form of the RFC 3339 timestamp at `bytes[start, end)`, or `null`. */
  #writeIso(out: LineBuffer, bytes: Uint8Array, start: number, end: number): void {
    if (!this.#parseRfc3339(bytes, start, end)) {
      out.ascii('null')
      return
    }
    if (this.#zulu) {
      // Already UTC: the ISO form is its date and time with the fraction cut or padded to milliseconds.
      out.ascii('"')
      out.copy(bytes, start, start + 19)
      out.ascii('.')
      out.integer(Math.floor(this.#millis / 100))
      out.integer(Math.floor(this.#millis / 10) % 10)
      out.integer(this.#millis % 10)
      out.ascii('Z"')
      return
    }
    const utc = utcMillis(this.#year, this.#month, this.#day, this.#hour, this.#minute, this.#second, this.#millis)
    out.ascii('"')
    out.ascii(new Date(utc - this.#offsetMinutes * 60_000).toISOString())
    out.ascii('"')
  }

  /**
   * `,"timestamp":…,"isoTimestamp":…` for an RFC 5424 TIMESTAMP: a sender's
   * messages often share theirs, so the last one's bytes are kept and written
   * again while it repeats.
   */
  #timestamp(out: LineBuffer, bytes: Uint8Array, start: number, end: number): boolean {
    const length = end - start
    const last = this.#lastStamp
    if (length === this.#lastStampLength) {
      let k = 0
      while (k < length && bytes[start + k] === last[k]) k++
      if (k === length) {
        out.bytes(this.#lastStampJson)
        return true
      }
    }
    const from = out.length
    out.ascii(',"timestamp":')
    if (!out.jsonUtf8(bytes, start, end)) return false
    out.ascii(',"isoTimestamp":')
    this.#writeIso(out, bytes, start, end)
    if (length <= last.length) {
      last.set(bytes.subarray(start, end))
      this.#lastStampLength = length
      this.#lastStampJson = out.written(from)
    }
    return true
  }

  /**
   * RFC 3164, leniently as parseSyslog() has it: an optional timestamp
   * (`Mmm dd hh:mm:ss`, or RFC 3339), then a HOSTNAME unless the word looks
   * like a TAG, then the TAG, and the rest is the message.
   */
  #rfc3164(out: LineBuffer, bytes: Uint8Array, pos: number, end: number, priority: number, receivedAt: number): boolean {
    this.#head(out, priority, 0)
    out.ascii(',"timestamp":')
    let hasTimestamp = true
    const bsdEnd = this.#bsdTimestampEnd(bytes, pos, end)
    if (bsdEnd !== -1) {
      out.ascii('"')
      out.copy(bytes, pos, bsdEnd)
      out.ascii('","isoTimestamp":')
      const iso = this.#bsdIso(bytes, pos, bsdEnd, receivedAt)
      if (iso === null) {
        out.ascii('null')
      } else {
        out.ascii('"')
        out.ascii(iso)
        out.ascii('"')
      }
      pos = bsdEnd
    } else {
      let wordEnd = pos
      while (wordEnd < end && bytes[wordEnd] !== SPACE) wordEnd++
      if (this.#parseRfc3339(bytes, pos, wordEnd)) {
        out.ascii('"')
        out.copy(bytes, pos, wordEnd)
        out.ascii('","isoTimestamp":')
        this.#writeIso(out, bytes, pos, wordEnd)
        pos = wordEnd
      } else {
        out.ascii('null,"isoTimestamp":null')
        hasTimestamp = false
      }
    }
    // The timestamp and the one character after it.
    if (hasTimestamp) pos = Math.min(pos + 1, end)

    out.ascii(',"hostname":')
    let wordEnd = this.#firstWordEnd(bytes, pos, end)
    let tag = this.#tag(bytes, pos, wordEnd)
    if (!tag && hasTimestamp && wordEnd > pos) {
      if (!out.jsonUtf8(bytes, pos, wordEnd)) return false
      pos = Math.min(wordEnd + 1, end)
      wordEnd = this.#firstWordEnd(bytes, pos, end)
      tag = this.#tag(bytes, pos, wordEnd)
    } else {
      out.ascii('null')
    }
    out.ascii(',"appName":')
    if (tag) {
      if (this.#tagName === this.#tagNameEnd) out.ascii('null')
      else if (!out.jsonUtf8(bytes, this.#tagName, this.#tagNameEnd)) return false
      out.ascii(',"procId":')
      if (this.#tagPid === this.#tagPidEnd) out.ascii('null')
      else if (!out.jsonUtf8(bytes, this.#tagPid, this.#tagPidEnd)) return false
      pos = Math.min(wordEnd + 1, end)
    } else {
      out.ascii('null,"procId":null')
    }
    out.ascii(',"msgId":null,"structuredData":{},"message":')
    if (!out.jsonUtf8(bytes, pos, end)) return false
    out.ascii('}\n')
    return true
  }

  #firstWordEnd(bytes: Uint8Array, pos: number, end: number): number {
    while (pos < end && bytes[pos] !== SPACE) pos++
    return pos
  }

  /** End of an `Mmm dd hh:mm:ss` (day space-padded or not) at `pos` that a space or the end follows, or -1. */
  #bsdTimestampEnd(bytes: Uint8Array, pos: number, end: number): number {
    if (monthAt(bytes, pos, end) === 0) return -1
    let at = pos + 3
    if (at >= end || bytes[at] !== SPACE) return -1
    at++
    if (at < end && bytes[at] === SPACE) at++
    if (at >= end || !isDigit(bytes[at] as number)) return -1
    at++
    if (at < end && isDigit(bytes[at] as number)) at++
    if (at + 9 > end || bytes[at] !== SPACE || bytes[at + 3] !== COLON || bytes[at + 6] !== COLON) return -1
    if (twoDigits(bytes, at + 1) < 0 || twoDigits(bytes, at + 4) < 0 || twoDigits(bytes, at + 7) < 0) return -1
    at += 9
    return at === end || bytes[at] === SPACE ? at : -1
  }

  #bsdIso(bytes: Uint8Array, start: number, end: number, receivedAt: number): string | null {
    const month = monthAt(bytes, start, end)
    const timeAt = end - 8
    let day = 0
    for (let at = start + 3; at < timeAt - 1; at++) if (bytes[at] !== SPACE) day = day * 10 + (bytes[at] as number) - 0x30
    return bsdToIso(month, day, twoDigits(bytes, timeAt), twoDigits(bytes, timeAt + 3), twoDigits(bytes, timeAt + 6), receivedAt, this.#zone)
  }

  // The TAG found by #tag(): its name and pid, empty where absent.
  #tagName = 0
  #tagNameEnd = 0
  #tagPid = 0
  #tagPidEnd = 0

  /** Whether `bytes[start, end)` is an RFC 3164 TAG: `name:`, `name[pid]:`, `name[pid]` or `[pid]:`. */
  #tag(bytes: Uint8Array, start: number, end: number): boolean {
    let nameEnd = end
    const colon = end > start && bytes[end - 1] === COLON
    if (colon) nameEnd--
    let hasPid = false
    this.#tagPid = this.#tagPidEnd = 0
    if (nameEnd > start && bytes[nameEnd - 1] === CLOSE) {
      let open = start
      while (open < end && bytes[open] !== OPEN) open++
      if (open === end) return false
      for (let at = open + 1; at < nameEnd - 1; at++) if (isTagForbidden(bytes[at] as number)) return false
      this.#tagPid = open + 1
      this.#tagPidEnd = nameEnd - 1
      nameEnd = open
      hasPid = true
    }
    if (!colon && !hasPid) return false
    if (nameEnd === start) {
      if (!hasPid) return false
    } else {
      for (let at = start; at < nameEnd; at++) if (isTagForbidden(bytes[at] as number)) return false
    }
    this.#tagName = start
    this.#tagNameEnd = nameEnd
    return true
  }
}
