// What a datagram becomes on stdout: JSON lines that start with where and
// when it came from, then its payload or the records parsed from it.
//
// The text is built directly: the datagram's fields as a JSON prefix written
// once, then each record's own JSON spliced in after it, with no merged
// object a line. The output is exactly what JSON.stringify({ ...fields,
// ...record }) gives (test/golden.test.mjs holds it to that).
import { isUtf8 } from 'node:buffer'
import type { Datagram } from '../datagram'
import { parseStatsd, parseSyslog } from '../parsers'
import type { Encoding, ListenCommand } from './flags'

/** What a datagram needs to be formatted: a Datagram, or anything with its fields. */
export type FormatInput = Pick<Datagram, 'data' | 'remoteAddress' | 'remotePort' | 'localAddress' | 'interfaceIndex' | 'receivedAt' | 'truncated'>

/** A datagram's lines: one a record, each ending in a newline. */
export type Formatter = (datagram: FormatInput) => string

// The keys of the prefix. A record never has one of them (the parsers'
// record types say so, and the compiler holds them to it): splicing a
// record's JSON after the prefix then gives what an object spread would.
type PrefixKey = 'remoteAddress' | 'remotePort' | 'localAddress' | 'interfaceIndex' | 'receivedAt' | 'size' | 'truncated'
type ParsedRecord = object & { [K in PrefixKey]?: never }

export function formatter(command: Pick<ListenCommand, 'parse' | 'encoding' | 'timeZone'>): Formatter {
  // A batch's datagrams share their receive time: format it once a batch.
  let lastMillis = Number.NaN
  let lastIso = ''
  const iso = (millis: number): string => {
    if (millis !== lastMillis) {
      lastMillis = millis
      lastIso = new Date(millis).toISOString()
    }
    return lastIso
  }
  // `{"remoteAddress":…,"truncated":…` without the closing brace. Fields the
  // OS did not report are left out, as JSON.stringify leaves out undefined.
  const prefix = (d: FormatInput): string => {
    let text = `{"remoteAddress":${JSON.stringify(d.remoteAddress)},"remotePort":${d.remotePort}`
    const local = d.localAddress
    if (local !== undefined) text += `,"localAddress":${JSON.stringify(local)}`
    const index = d.interfaceIndex
    if (index !== undefined) text += `,"interfaceIndex":${index}`
    return `${text},"receivedAt":"${iso(d.receivedAt)}","size":${d.data.length},"truncated":${d.truncated}`
  }
  // One record's line after the datagram's prefix.
  const line = (head: string, record: ParsedRecord): string => {
    const json = JSON.stringify(record)
    return json.length === 2 ? `${head}}\n` : `${head},${json.slice(1)}\n`
  }
  switch (command.parse) {
    case 'syslog': {
      const timeZone = command.timeZone
      return (d) => {
        // The year of an RFC 3164 date is guessed against the time it arrived.
        const record = parseSyslog(d.data, { truncated: d.truncated, now: () => d.receivedAt, timeZone })
        return line(prefix(d), record)
      }
    }
    case 'statsd':
      return (d) => {
        const head = prefix(d)
        let text = ''
        for (const metric of parseStatsd(d.data, { truncated: d.truncated })) text += line(head, metric)
        return text
      }
    case 'raw':
      return (d) => {
        const data = d.data
        // Text stays readable by default; bytes that are not UTF-8 would be mangled by it, so they go as base64.
        const as: Encoding = command.encoding ?? (isUtf8(data) ? 'utf8' : 'base64')
        return `${prefix(d)},"data":${JSON.stringify(data.toString(as))},"encoding":"${as}"}\n`
      }
  }
}
