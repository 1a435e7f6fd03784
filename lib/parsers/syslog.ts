// Syslog over UDP: RFC 5424 and RFC 3164 (BSD) messages. Hand-written
// forward scanners rather than one big regex, so hostile input costs linear
// time and every failure has a specific error string.
import type { Transform } from 'node:stream'
import {
  createParserTransform,
  decodeText,
  parserError,
  setOwn,
  type DatagramMetadata,
  type ParseOptions,
  type ParserError,
  type ParserStreamOptions,
} from './common'
import { zoneConverter, type ZoneConverter } from './timezone'

/** Which header layout a syslog message used. */
export type SyslogFormat = 'rfc5424' | 'rfc3164'

/**
 * RFC 5424 structured data: SD-ID → (PARAM-NAME → unescaped PARAM-VALUE).
 * When a PARAM-NAME (or, against the RFC, an SD-ID) repeats, the last one wins.
 */
export type SyslogStructuredData = Record<string, Record<string, string>>

/**
 * A successfully parsed syslog message. Header fields that were sent as the
 * NILVALUE `-`, or that the format does not have, are `null`.
 */
export interface SyslogMessage {
  /** Header layout the message used. */
  format: SyslogFormat
  /** PRI value, `facility * 8 + severity` (0–191). */
  priority: number
  /** Facility code, 0–23. */
  facility: number
  /** Severity code, 0 (emergency) – 7 (debug). */
  severity: number
  /** RFC 5424 VERSION (normally 1); `null` for RFC 3164. */
  version: number | null
  /** Timestamp exactly as sent; `null` when absent or the NILVALUE. */
  timestamp: string | null
  /**
   * `timestamp` as a UTC ISO 8601 string with millisecond precision
   * (`Date.prototype.toISOString`), or `null` if absent or invalid.
   *
   * RFC 5424 and RFC 3339 timestamps carry their own offset and are converted
   * exactly (sub-millisecond digits are dropped).
   *
   * RFC 3164 timestamps (`Mmm dd hh:mm:ss`) carry neither year nor zone:
   * the time is taken in {@link SyslogParserOptions.timeZone} (default UTC),
   * and the year (of the reference year, the one before and the one after)
   * is the latest that does not put it more than a day after the reference
   * time (receive time unless {@link SyslogParserOptions.now}
   * says otherwise). A message is never dated in the future beyond a day of
   * clock skew, and a December message read in January is last year's.
   */
  isoTimestamp: string | null
  /** HOSTNAME; for RFC 3164, `null` when the sender omitted it (see {@link parseSyslog}). */
  hostname: string | null
  /** RFC 5424 APP-NAME, or the RFC 3164 TAG without its `[pid]`. */
  appName: string | null
  /** RFC 5424 PROCID, or the RFC 3164 `[pid]` contents. */
  procId: string | null
  /** RFC 5424 MSGID; `null` for RFC 3164. */
  msgId: string | null
  /** RFC 5424 structured data; empty when absent and for RFC 3164. */
  structuredData: SyslogStructuredData
  /** MSG (RFC 3164 CONTENT), without a leading UTF-8 BOM; `''` when absent. */
  message: string
  /** Never set on a parsed message; lets `record.error !== undefined` narrow the union. */
  error?: never
}

/** What {@link parseSyslog} returns: a parsed message or an error record. */
export type SyslogRecord = SyslogMessage | ParserError

/**
 * What {@link createSyslogParser} emits: a {@link SyslogRecord}, plus the
 * datagram's metadata when the input chunk was a datagram object.
 */
export type SyslogStreamRecord = SyslogRecord & DatagramMetadata

/** Options for {@link parseSyslog} and {@link createSyslogParser}. */
export interface SyslogParserOptions extends ParserStreamOptions {
  /**
   * Reference clock, in milliseconds since the epoch, used only to guess the
   * year of RFC 3164 timestamps. Defaults to `Date.now`.
   */
  now?: () => number
  /**
   * The senders' time zone, for RFC 3164 timestamps, which carry none: an
   * IANA name (`'Asia/Tokyo'`), a fixed offset (`'+09:00'`, `'-0530'`), or
   * `'UTC'`/`'Z'` (the default). Timestamps with an offset (RFC 5424,
   * RFC 3339) ignore it. An unknown zone throws a RangeError.
   */
  timeZone?: string
}

/** How far in the future an RFC 3164 timestamp may be placed: a day of clock skew. */
const MAX_FUTURE_MS = 86_400_000

export const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

// Anchored, no nested or overlapping quantifiers: linear on any input.
const BSD_TIMESTAMP = /^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?= |$)/
const RFC3339_TIMESTAMP = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:Z|([+-])(\d\d):(\d\d))$/
const TAG_FORBIDDEN = /[[\]:]/

/**
 * Parses one syslog datagram. Never throws on input: malformed input yields a
 * {@link ParserError} (`empty datagram`, `missing PRI`, `truncated PRI`,
 * `invalid PRI`, `PRI out of range`, `truncated header`, `malformed header`,
 * `malformed structured data`), and so does a datagram that was cut short
 * (`truncated` set): `truncated message`, never a message with a cut text.
 *
 * Bytes are decoded as UTF-8 with U+FFFD replacement. Trailing LF, CR and NUL
 * are dropped because many senders terminate datagrams as if they were lines.
 *
 * A message whose PRI is followed by a 1–3 digit version and a space is
 * RFC 5424 and parsed strictly (every header field present, structured data
 * well formed). Anything else is RFC 3164, parsed leniently as real senders
 * require: the timestamp may be `Mmm dd hh:mm:ss`, an RFC 3339 timestamp (as
 * rsyslog's forward format sends), or missing; the first word after the
 * timestamp is the HOSTNAME unless it looks like a tag (`name:`,
 * `name[pid]:`, `name[pid]`, `[pid]:`), since glibc `syslog(3)` omits the
 * hostname; a missing tag leaves `appName` `null` and everything in
 * `message`. Without a timestamp there is no hostname (RFC 3164 §4.3.2).
 *
 * @param message - Datagram payload (a Buffer or any Uint8Array) or text.
 * @param options - `now` and `timeZone` ({@link SyslogParserOptions}), and
 *   `truncated`: the payload is the start of a longer datagram.
 * @throws RangeError for an unknown `timeZone`.
 */
export function parseSyslog(message: Uint8Array | string, options: SyslogParserOptions & ParseOptions = {}): SyslogRecord {
  return parse(message, options.truncated === true, options.now ?? Date.now, zoneConverter(options.timeZone ?? 'UTC'))
}

function parse(message: Uint8Array | string, truncated: boolean, now: () => number, zone: ZoneConverter): SyslogRecord {
  const text = stripTerminators(decodeText(message))
  if (truncated) return parserError('truncated message', text)
  if (text.length === 0) return parserError('empty datagram', text)
  if (text.charCodeAt(0) !== 0x3c /* < */) return parserError('missing PRI', text)

  // At most 4 digits are scanned so a long digit run cannot cost more.
  let pos = 1
  while (pos < text.length && pos <= 4 && isDigit(text.charCodeAt(pos))) pos++
  const digits = pos - 1
  if (digits > 3) return parserError('invalid PRI', text)
  if (pos === text.length) return parserError('truncated PRI', text)
  if (digits === 0 || text[pos] !== '>') return parserError('invalid PRI', text)
  const priority = Number(text.slice(1, pos))
  if (priority > 191) return parserError('PRI out of range', text)
  pos++

  const versionEnd = versionEndAt(text, pos)
  if (versionEnd !== -1) return parse5424(text, pos, versionEnd, priority)
  return parse3164(text, pos, priority, now, zone)
}

/**
 * Creates an object-mode Transform that parses each chunk with
 * {@link parseSyslog} and emits one {@link SyslogStreamRecord} per chunk.
 *
 * Chunks may be a Buffer/Uint8Array, a string, or a datagram object with a
 * `data` byte field ({@link DatagramLike}); for datagram objects the record
 * also carries `remoteAddress`, `remotePort`, `localAddress`,
 * `interfaceIndex` and `truncated`. Malformed input, including unsupported
 * chunk types, is emitted as an error record; the stream never errors on
 * content. Backpressure is the standard Transform behaviour.
 *
 * @param options - See {@link SyslogParserOptions}.
 * @throws RangeError for an unknown `timeZone`.
 */
export function createSyslogParser(options: SyslogParserOptions = {}): Transform {
  const now = options.now ?? Date.now
  const zone = zoneConverter(options.timeZone ?? 'UTC')
  return createParserTransform((input, truncated) => [parse(input, truncated, now, zone)], options)
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39
}

function stripTerminators(text: string): string {
  let end = text.length
  while (end > 0) {
    const code = text.charCodeAt(end - 1)
    if (code !== 0x0a && code !== 0x0d && code !== 0x00) break
    end--
  }
  return end === text.length ? text : text.slice(0, end)
}

/**
 * Returns the end of an RFC 5424 VERSION (`[1-9][0-9]{0,2}` followed by a
 * space or the end) starting at `pos`, or -1 if there is none. An RFC 3339
 * timestamp also starts with digits but continues with `-`, so it is not
 * mistaken for a version.
 */
function versionEndAt(text: string, pos: number): number {
  const first = text.charCodeAt(pos)
  if (!(first >= 0x31 && first <= 0x39)) return -1
  let end = pos + 1
  while (end < text.length && end - pos < 3 && isDigit(text.charCodeAt(end))) end++
  return end === text.length || text[end] === ' ' ? end : -1
}

function nil(field: string): string | null {
  return field === '-' ? null : field
}

function parse5424(text: string, start: number, versionEnd: number, priority: number): SyslogRecord {
  const version = Number(text.slice(start, versionEnd))
  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by one space.
  const fields: string[] = []
  let pos = versionEnd + 1
  for (let i = 0; i < 5; i++) {
    if (pos >= text.length) return parserError('truncated header', text)
    const space = text.indexOf(' ', pos)
    if (space === -1) return parserError('truncated header', text)
    if (space === pos) return parserError('malformed header', text)
    fields.push(text.slice(pos, space))
    pos = space + 1
  }
  if (pos >= text.length) return parserError('truncated header', text)

  let structuredData: SyslogStructuredData = {}
  if (text[pos] === '-') {
    pos++
  } else {
    const parsed = parseStructuredData(text, pos)
    if (parsed === null) return parserError('malformed structured data', text)
    structuredData = parsed.data
    pos = parsed.end
  }

  let message = ''
  if (pos < text.length) {
    if (text[pos] !== ' ') return parserError('malformed structured data', text)
    message = text.slice(pos + 1)
    if (message.charCodeAt(0) === 0xfeff) message = message.slice(1)
  }

  const [timestamp, hostname, appName, procId, msgId] = fields as [string, string, string, string, string]
  return {
    format: 'rfc5424',
    priority,
    facility: priority >> 3,
    severity: priority & 7,
    version,
    timestamp: nil(timestamp),
    isoTimestamp: timestamp === '-' ? null : rfc3339ToIso(timestamp),
    hostname: nil(hostname),
    appName: nil(appName),
    procId: nil(procId),
    msgId: nil(msgId),
    structuredData,
    message,
  }
}

/** True for characters that end an SD-NAME (SD-ID or PARAM-NAME). */
function endsSdName(char: string): boolean {
  return char === ' ' || char === ']' || char === '=' || char === '"'
}

/**
 * Parses one or more adjacent SD-ELEMENTs starting at `pos`. Returns `null`
 * unless there is at least one and all are well formed. Single forward scan.
 */
function parseStructuredData(text: string, pos: number): { data: SyslogStructuredData; end: number } | null {
  const data: SyslogStructuredData = {}
  const length = text.length
  if (text[pos] !== '[') return null
  while (text[pos] === '[') {
    pos++
    const idStart = pos
    while (pos < length && !endsSdName(text[pos] as string)) pos++
    if (pos === idStart) return null
    const id = text.slice(idStart, pos)
    const params: Record<string, string> = {}
    while (text[pos] === ' ') {
      pos++
      const nameStart = pos
      while (pos < length && !endsSdName(text[pos] as string)) pos++
      if (pos === nameStart || text[pos] !== '=' || text[pos + 1] !== '"') return null
      const name = text.slice(nameStart, pos)
      pos += 2
      // Only \" \\ \] are escapes (RFC 5424 §6.3.3); any other backslash is literal.
      let value = ''
      let chunkStart = pos
      while (pos < length && text[pos] !== '"') {
        if (text[pos] === '\\') {
          const next = text[pos + 1]
          if (next === '"' || next === '\\' || next === ']') {
            value += text.slice(chunkStart, pos) + next
            pos += 2
            chunkStart = pos
            continue
          }
        }
        pos++
      }
      if (pos >= length) return null
      value += text.slice(chunkStart, pos)
      pos++
      setOwn(params, name, value)
    }
    if (text[pos] !== ']') return null
    pos++
    setOwn(data, id, params)
  }
  return { data, end: pos }
}

/** Milliseconds since the epoch for a UTC wall-clock time; works for years 0–99 too. */
export function utcMillis(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, ms)
  return date.getTime()
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

export function daysInMonth(year: number, month: number): number {
  if (month === 2 && ((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0)) return 29
  return DAYS_IN_MONTH[month - 1] as number
}

export function validTime(hour: number, minute: number, second: number): boolean {
  // Leap seconds (:60) are rejected: Date cannot represent them.
  return hour < 24 && minute < 60 && second < 60
}

/** RFC 3339 / RFC 5424 timestamp → UTC ISO string, or `null` if invalid. */
// The last timestamp converted: a sender's messages often share theirs.
let lastTimestamp = ''
let lastIso: string | null = null

function rfc3339ToIso(value: string): string | null {
  if (value === lastTimestamp) return lastIso
  lastIso = convertRfc3339(value)
  lastTimestamp = value
  return lastIso
}

function convertRfc3339(value: string): string | null {
  const m = RFC3339_TIMESTAMP.exec(value)
  if (m === null) return null
  const year = Number(m[1])
  const month = Number(m[2])
  const day = Number(m[3])
  const hour = Number(m[4])
  const minute = Number(m[5])
  const second = Number(m[6])
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || !validTime(hour, minute, second)) return null
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'))
  let offsetMinutes = 0
  if (m[8] !== undefined) {
    const offsetHours = Number(m[9])
    const offsetMins = Number(m[10])
    if (offsetHours > 23 || offsetMins > 59) return null
    offsetMinutes = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins)
  }
  return new Date(utcMillis(year, month, day, hour, minute, second, ms) - offsetMinutes * 60_000).toISOString()
}

/**
 * RFC 3164 timestamp parts (`month` 1–12) → UTC ISO string: the wall-clock
 * time in `zone`, in the latest year that puts it at most
 * {@link MAX_FUTURE_MS} after `now`; `null` if no year does.
 */
export function bsdToIso(month: number, day: number, hour: number, minute: number, second: number, now: number, zone: ZoneConverter): string | null {
  if (day < 1 || !validTime(hour, minute, second)) return null
  const referenceYear = new Date(now).getUTCFullYear()
  for (let year = referenceYear + 1; year >= referenceYear - 1; year--) {
    if (day > daysInMonth(year, month)) continue
    const candidate = zone(utcMillis(year, month, day, hour, minute, second, 0))
    // NaN when a caller-supplied `now` is not a valid time: no year is chosen.
    if (candidate <= now + MAX_FUTURE_MS) return new Date(candidate).toISOString()
  }
  return null
}

/** First space-delimited word of `text` (possibly empty). */
function firstWord(text: string): string {
  const space = text.indexOf(' ')
  return space === -1 ? text : text.slice(0, space)
}

/**
 * Recognises an RFC 3164 TAG word: `name:`, `name[pid]:`, `name[pid]` or
 * `[pid]:` (util-linux `logger -t ''`). Returns `null` for anything else.
 */
function parseTag(word: string): { appName: string | null; procId: string | null } | null {
  let end = word.length
  const colon = end > 0 && word[end - 1] === ':'
  if (colon) end--
  let name = word.slice(0, end)
  let procId: string | null = null
  let hasPid = false
  if (end > 0 && word[end - 1] === ']') {
    const open = word.indexOf('[')
    if (open === -1) return null
    const pid = word.slice(open + 1, end - 1)
    if (TAG_FORBIDDEN.test(pid)) return null
    name = word.slice(0, open)
    procId = pid === '' ? null : pid
    hasPid = true
  }
  if (!colon && !hasPid) return null
  if (name === '' ? !hasPid : TAG_FORBIDDEN.test(name)) return null
  return { appName: name === '' ? null : name, procId }
}

function parse3164(text: string, start: number, priority: number, now: () => number, zone: ZoneConverter): SyslogRecord {
  let rest = text.slice(start)
  let timestamp: string | null = null
  let isoTimestamp: string | null = null

  const bsd = BSD_TIMESTAMP.exec(rest)
  if (bsd !== null) {
    timestamp = bsd[0]
    const [day, hour, minute, second] = bsd.slice(2, 6).map(Number) as [number, number, number, number]
    isoTimestamp = bsdToIso(MONTHS.indexOf(bsd[1] as string) + 1, day, hour, minute, second, now(), zone)
  } else {
    const word = firstWord(rest)
    isoTimestamp = rfc3339ToIso(word)
    if (isoTimestamp !== null) timestamp = word
  }
  if (timestamp !== null) rest = rest.slice(timestamp.length + 1)

  let hostname: string | null = null
  let word = firstWord(rest)
  let tag = parseTag(word)
  if (tag === null && timestamp !== null && word !== '') {
    hostname = word
    rest = rest.slice(word.length + 1)
    word = firstWord(rest)
    tag = parseTag(word)
  }
  if (tag !== null) rest = rest.slice(word.length + 1)

  return {
    format: 'rfc3164',
    priority,
    facility: priority >> 3,
    severity: priority & 7,
    version: null,
    timestamp,
    isoTimestamp,
    hostname,
    appName: tag === null ? null : tag.appName,
    procId: tag === null ? null : tag.procId,
    msgId: null,
    structuredData: {},
    message: rest,
  }
}
