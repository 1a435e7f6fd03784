// StatsD and DogStatsD metrics: several per datagram, one record a line.
// Index-based scanning and one record a line (a multi-value line is one
// record with `values`), so time and output are linear in the datagram.
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

/**
 * Metric type codes: `c` counter, `g` gauge, `ms` timer, `h` histogram,
 * `d` distribution, `s` set.
 */
export type StatsdMetricType = 'c' | 'g' | 'ms' | 'h' | 'd' | 's'

/** DogStatsD tags: `key:value` → `{ key: 'value' }`, a bare `key` → `{ key: true }`. */
export type StatsdTags = Record<string, string | true>

/** Fields every parsed metric has. */
export interface StatsdMetricBase {
  /** Metric name, as sent. */
  name: string
  /** Sample rate from `|@rate`, in (0, 1]; absent when not sent. */
  sampleRate?: number
  /** Tags from `|#...` (several `|#` sections are merged); absent when not sent. */
  tags?: StatsdTags
  /** Never set on a parsed metric; lets `record.error !== undefined` narrow the union. */
  error?: never
}

/** A counter, gauge, timer, histogram or distribution sample. */
export interface StatsdNumericMetric extends StatsdMetricBase {
  /** Metric type. */
  type: Exclude<StatsdMetricType, 's'>
  /** The sample; always a finite number. */
  value: number
  /** Never set on a one-value record; lets `'values' in record` narrow the union. */
  values?: never
  /**
   * Present (and `true`) on gauges sent with an explicit `+` or `-` sign,
   * which by StatsD convention adjust the gauge rather than set it. `value`
   * then carries the sign.
   */
  delta?: true
}

/**
 * A DogStatsD multi-value line (`name:1:2:3|h`, protocol 1.1): several
 * samples of one metric, with one name, sample rate and set of tags, as one
 * record. Kept as one record so that output grows with the line, not with
 * samples × tags.
 */
export interface StatsdMultiValueMetric extends StatsdMetricBase {
  /** Metric type. */
  type: Exclude<StatsdMetricType, 's'>
  /** The samples in the order sent: two or more finite numbers. */
  values: number[]
  /** Never set on a multi-value record; lets `'value' in record` narrow the union. */
  value?: never
  /** As on {@link StatsdNumericMetric}: every value of a gauge line carried a sign. */
  delta?: true
}

/** A set member. */
export interface StatsdSetMetric extends StatsdMetricBase {
  /** Metric type. */
  type: 's'
  /** The member, as sent (not interpreted as a number). */
  value: string
  /** Never set on a set member. */
  values?: never
}

/** A parsed metric. */
export type StatsdMetric = StatsdNumericMetric | StatsdMultiValueMetric | StatsdSetMetric

/** One element of what {@link parseStatsd} returns: a metric or an error record for one line. */
export type StatsdRecord = StatsdMetric | ParserError

/**
 * What {@link createStatsdParser} emits: a {@link StatsdRecord}, plus the
 * datagram's metadata when the input chunk was a datagram object.
 */
export type StatsdStreamRecord = StatsdRecord & DatagramMetadata

/** Options for {@link createStatsdParser}. */
export type StatsdParserOptions = ParserStreamOptions

// Plain decimal only: Number() alone would also accept '', '0x1f', 'Infinity'
// and ' 1 '. No overlapping quantifiers, so matching is linear.
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

const METRIC_TYPES: ReadonlySet<string> = new Set<StatsdMetricType>(['c', 'g', 'ms', 'h', 'd', 's'])

/**
 * Parses one StatsD datagram: metrics separated by `\n` (a trailing `\r` on
 * a line is ignored, blank lines are skipped), each
 * `name:value|type[|@rate][|#tag1:v,tag2]`, one record a line. Never throws;
 * time and output are linear in the input (a record is at most a constant
 * times its line). Each malformed line becomes a {@link ParserError}
 * (`missing name`, `missing value`, `missing type`, `unknown metric type`,
 * `invalid value`, `value out of range`, `mixed gauge deltas`,
 * `invalid sample rate`, `truncated line`, or
 * `DogStatsD events and service checks are not supported`) without
 * affecting the other lines; a datagram without any metric (zero bytes, or
 * blank lines only) is one `empty datagram` error, as for syslog.
 *
 * Values are plain decimals (`1`, `-2.5`, `.5`, `1e3`). A value too large
 * for a finite double (`1e999`, a 400-digit integer) is reported as
 * `value out of range` rather than becoming `Infinity`; one too small
 * underflows to `0` as `Number()` does. A DogStatsD multi-value line
 * (`name:1:2:3|h`) is one {@link StatsdMultiValueMetric} with
 * `values: [1, 2, 3]`; for sets everything after the first `:` is the
 * member. InfluxDB/Telegraf tags in the name (`name,host=a,env=prod:1|c`)
 * are tags as `|#` ones are (a bare `name,flag` gives `flag: true`). Other
 * DogStatsD fields (`|c:` container ID, `|T` timestamp) are ignored. Bytes
 * are decoded as UTF-8 with U+FFFD replacement.
 *
 * With `truncated` (the datagram was cut short, as `Datagram.truncated`
 * says), the last line is cut off, or the cut fell where the next line
 * began: it becomes a `truncated line` error, never a metric.
 *
 * @param message - Datagram payload (a Buffer or any Uint8Array) or text.
 * @param options - `truncated`: the payload is the start of a longer datagram.
 */
export function parseStatsd(message: Uint8Array | string, options: ParseOptions = {}): StatsdRecord[] {
  const text = decodeText(message)
  const records: StatsdRecord[] = []
  const truncated = options.truncated === true
  // A truncated datagram's last line (after the last \n) was cut, even when empty.
  const whole = truncated ? text.lastIndexOf('\n') + 1 : text.length
  let start = 0
  while (start < whole) {
    let newline = text.indexOf('\n', start)
    if (newline === -1) newline = text.length
    const end = newline > start && text.charCodeAt(newline - 1) === 0x0d ? newline - 1 : newline
    const line = text.slice(start, end)
    if (line.trim() !== '') records.push(parseLine(line))
    start = newline + 1
  }
  if (truncated) records.push(parserError('truncated line', text.slice(whole)))
  else if (records.length === 0) records.push(parserError('empty datagram', text))
  return records
}

/**
 * Creates an object-mode Transform that parses each chunk with
 * {@link parseStatsd} and emits one {@link StatsdStreamRecord} per metric
 * line (or per malformed line; a multi-value line is one record).
 *
 * Chunks may be a Buffer/Uint8Array, a string, or a datagram object with a
 * `data` byte field ({@link DatagramLike}); for datagram objects every record
 * also carries `remoteAddress`, `remotePort`, `localAddress`,
 * `interfaceIndex` and `truncated`. Malformed input, including unsupported
 * chunk types, is emitted as an error record; the stream never errors on
 * content. Backpressure is the standard Transform behaviour.
 *
 * @param options - See {@link StatsdParserOptions}.
 */
export function createStatsdParser(options: StatsdParserOptions = {}): Transform {
  return createParserTransform((input, truncated) => parseStatsd(input, { truncated }), options)
}

/** Parses a {@link DECIMAL}; `null` if the text is not one. May return ±Infinity. */
function parseDecimal(text: string): number | null {
  return DECIMAL.test(text) ? Number(text) : null
}

/** Adds `key<separator>value` and bare `key` tags from a comma-separated list. */
function parseTags(text: string, separator: ':' | '=', tags: StatsdTags): void {
  for (const tag of text.split(',')) {
    if (tag === '') continue
    // Split at the first separator only: values such as URLs contain colons.
    const at = tag.indexOf(separator)
    if (at === -1) setOwn(tags, tag, true)
    else setOwn(tags, tag.slice(0, at), tag.slice(at + 1))
  }
}

function parseLine(line: string): StatsdRecord {
  if (line.startsWith('_e{') || line.startsWith('_sc|')) {
    return parserError('DogStatsD events and service checks are not supported', line)
  }
  const pipe = line.indexOf('|')
  const colon = line.indexOf(':')
  if (colon === 0) return parserError('missing name', line)
  if (colon === -1 || (pipe !== -1 && colon > pipe)) return parserError('missing value', line)
  if (pipe === -1) return parserError('missing type', line)

  const sections = line.slice(pipe + 1).split('|')
  const type = sections[0] as string
  if (!METRIC_TYPES.has(type)) return parserError('unknown metric type', line)

  // InfluxDB/Telegraf style: name,tag=value,...:value|type
  let name = line.slice(0, colon)
  let tags: StatsdTags | undefined
  const comma = name.indexOf(',')
  if (comma !== -1) {
    tags = {}
    parseTags(name.slice(comma + 1), '=', tags)
    name = name.slice(0, comma)
    if (name === '') return parserError('missing name', line)
  }

  let sampleRate: number | undefined
  for (let i = 1; i < sections.length; i++) {
    const section = sections[i] as string
    if (section.startsWith('@')) {
      const rate = parseDecimal(section.slice(1))
      if (rate === null || !(rate > 0 && rate <= 1)) return parserError('invalid sample rate', line)
      sampleRate = rate
    } else if (section.startsWith('#')) {
      tags ??= {}
      parseTags(section.slice(1), ':', tags)
    }
  }

  const valueText = line.slice(colon + 1, pipe)
  if (valueText === '') return parserError('missing value', line)
  const withOptions = <M extends StatsdMetric>(metric: M): M => {
    if (sampleRate !== undefined) metric.sampleRate = sampleRate
    if (tags !== undefined) metric.tags = tags
    return metric
  }

  if (type === 's') return withOptions({ name, type: 's', value: valueText })

  const numericType = type as StatsdNumericMetric['type']
  const values: number[] = []
  let signed = 0
  for (const part of valueText.split(':')) {
    const value = parseDecimal(part)
    if (value === null) return parserError('invalid value', line)
    if (!Number.isFinite(value)) return parserError('value out of range', line)
    if (part[0] === '+' || part[0] === '-') signed++
    values.push(value)
  }
  const delta = numericType === 'g' && signed > 0
  // A gauge line either sets (no signs) or adjusts (every value signed).
  if (delta && signed < values.length) return parserError('mixed gauge deltas', line)
  const metric: StatsdNumericMetric | StatsdMultiValueMetric =
    values.length === 1 ? { name, type: numericType, value: values[0] as number } : { name, type: numericType, values }
  if (delta) metric.delta = true
  return withOptions(metric)
}
