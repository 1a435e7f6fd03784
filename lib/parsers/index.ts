/**
 * Ingestion parsers for common UDP protocols: syslog (RFC 5424 / RFC 3164)
 * and StatsD / DogStatsD. Pure TypeScript; usable on any Buffer or string,
 * or as object-mode Transforms fed with datagrams.
 *
 * @packageDocumentation
 */
export { parseSyslog, createSyslogParser } from './syslog'
export type {
  SyslogFormat,
  SyslogStructuredData,
  SyslogMessage,
  SyslogRecord,
  SyslogStreamRecord,
  SyslogParserOptions,
} from './syslog'
export { parseStatsd, createStatsdParser } from './statsd'
export type {
  StatsdMetricType,
  StatsdTags,
  StatsdMetricBase,
  StatsdNumericMetric,
  StatsdMultiValueMetric,
  StatsdSetMetric,
  StatsdMetric,
  StatsdRecord,
  StatsdStreamRecord,
  StatsdParserOptions,
} from './statsd'
export type { ParserError, DatagramMetadata, DatagramLike, ParseOptions, ParserStreamOptions } from './common'
