// StatsD and DogStatsD metrics: several per datagram, one record each.
// Index-based scanning, so a 10 000-metric datagram costs linear time.
import type { Transform } from 'node:stream'
import {
  createParserTransform,
  decodeText,
  parserError,
  setOwn,
  type DatagramMetadata,
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
  /**
   * Present (and `true`) on gauges sent with an explicit `+` or `-` sign,
   * which by StatsD convention adjust the gauge rather than set it. `value`
   * then carries the sign.
   */
  delta?: true
}

/** A set member. */
export interface StatsdSetMetric extends StatsdMetricBase {
  /** Metric type. */
  type: 's'
  /** The member, as sent (not interpreted as a number). */
  value: string
}

/** A parsed metric. */
export type StatsdMetric = StatsdNumericMetric | StatsdSetMetric

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
 * `name:value|type[|@rate][|#tag1:v,tag2]`. Never throws and runs in time
 * linear in the input; each malformed line becomes a {@link ParserError}
 * (`missing name`, `missing value`, `missing type`, `unknown metric type`,
 * `invalid value`, `value out of range`, `invalid sample rate`, or
 * `DogStatsD events and service checks are not supported`) without
 * affecting the other lines.
 *
 * Values are plain decimals (`1`, `-2.5`, `.5`, `1e3`). A value too large
 * for a finite double (`1e999`, a 400-digit integer) is reported as
 * `value out of range` rather than becoming `Infinity`; one too small
 * underflows to `0` as `Number()` does. DogStatsD multi-value lines
 * (`name:1:2:3|h`) yield one record per value; for sets everything after the
 * first `:` is the member. Other DogStatsD fields (`|c:` container ID,
 * `|T` timestamp) are ignored. Bytes are decoded as UTF-8 with U+FFFD
 * replacement. An empty datagram yields `[]`.
 *
 * @param message - Datagram payload (a Buffer or any Uint8Array) or text.
 */
export function parseStatsd(message: Uint8Array | string): StatsdRecord[] {
  const text = decodeText(message)
  const records: StatsdRecord[] = []
  let start = 0
  while (start < text.length) {
    let newline = text.indexOf('\n', start)
    if (newline === -1) newline = text.length
    const end = newline > start && text.charCodeAt(newline - 1) === 0x0d ? newline - 1 : newline
    const line = text.slice(start, end)
    if (line.trim() !== '') {
      const parsed = parseLine(line)
      // A loop, not push(...parsed): a line can hold enough values to overflow the argument stack.
      if (Array.isArray(parsed)) for (const metric of parsed) records.push(metric)
      else records.push(parsed)
    }
    start = newline + 1
  }
  return records
}

/**
 * Creates an object-mode Transform that parses each chunk with
 * {@link parseStatsd} and emits one {@link StatsdStreamRecord} per metric
 * (or per malformed line).
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
  return createParserTransform(parseStatsd, options)
}

/** Parses a {@link DECIMAL}; `null` if the text is not one. May return ±Infinity. */
function parseDecimal(text: string): number | null {
  return DECIMAL.test(text) ? Number(text) : null
}

function parseTags(text: string, tags: StatsdTags): void {
  for (const tag of text.split(',')) {
    if (tag === '') continue
    // Split at the first colon only: values such as URLs contain colons.
    const colon = tag.indexOf(':')
    if (colon === -1) setOwn(tags, tag, true)
    else setOwn(tags, tag.slice(0, colon), tag.slice(colon + 1))
  }
}

function parseLine(line: string): StatsdMetric[] | ParserError {
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

  let sampleRate: number | undefined
  let tags: StatsdTags | undefined
  for (let i = 1; i < sections.length; i++) {
    const section = sections[i] as string
    if (section.startsWith('@')) {
      const rate = parseDecimal(section.slice(1))
      if (rate === null || !(rate > 0 && rate <= 1)) return parserError('invalid sample rate', line)
      sampleRate = rate
    } else if (section.startsWith('#')) {
      tags ??= {}
      parseTags(section.slice(1), tags)
    }
  }

  const name = line.slice(0, colon)
  const valueText = line.slice(colon + 1, pipe)
  if (valueText === '') return parserError('missing value', line)
  const withOptions = <M extends StatsdMetric>(metric: M): M => {
    if (sampleRate !== undefined) metric.sampleRate = sampleRate
    // Each record gets its own copy so consumers can mutate one safely.
    if (tags !== undefined) metric.tags = { ...tags }
    return metric
  }

  if (type === 's') return [withOptions({ name, type: 's', value: valueText })]

  const numericType = type as StatsdNumericMetric['type']
  const parts = valueText.split(':')
  const metrics: StatsdMetric[] = []
  for (const part of parts) {
    const value = parseDecimal(part)
    if (value === null) return parserError('invalid value', line)
    if (!Number.isFinite(value)) return parserError('value out of range', line)
    const metric: StatsdNumericMetric = withOptions({ name, type: numericType, value })
    if (numericType === 'g' && (part[0] === '+' || part[0] === '-')) metric.delta = true
    metrics.push(metric)
  }
  return metrics
}
