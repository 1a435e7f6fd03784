// What a datagram becomes on stdout: JSON lines that start with where and
// when it came from, then its payload or the records parsed from it.
import { isUtf8 } from 'node:buffer'
import type { Datagram } from '../datagram'
import { parseStatsd, parseSyslog } from '../parsers'
import type { Encoding, ListenCommand } from './flags'

/** What every output line starts with. Undefined fields (not reported by the OS) are left out by JSON.stringify. */
interface DatagramFields {
  remoteAddress: string
  remotePort: number
  localAddress: string | undefined
  interfaceIndex: number | undefined
  receivedAt: string
  size: number
  truncated: boolean
}

/** A datagram's lines: one a record, each ending in a newline. */
export type Formatter = (datagram: Datagram) => string

export function formatter(command: Pick<ListenCommand, 'parse' | 'encoding' | 'timeZone'>): Formatter {
  // A batch's datagrams share their receive time: format it once a batch.
  let lastMillis = Number.NaN
  let lastIso = ''
  const fieldsOf = (datagram: Datagram): DatagramFields => {
    const millis = datagram.receivedAt
    if (millis !== lastMillis) {
      lastMillis = millis
      lastIso = new Date(millis).toISOString()
    }
    return {
      remoteAddress: datagram.remoteAddress,
      remotePort: datagram.remotePort,
      localAddress: datagram.localAddress,
      interfaceIndex: datagram.interfaceIndex,
      receivedAt: lastIso,
      size: datagram.data.length,
      truncated: datagram.truncated,
    }
  }
  switch (command.parse) {
    case 'syslog': {
      const timeZone = command.timeZone
      return (d) => {
        // The year of an RFC 3164 date is guessed against the time it arrived.
        const record = parseSyslog(d.data, { truncated: d.truncated, now: () => d.receivedAt, timeZone })
        return `${JSON.stringify({ ...fieldsOf(d), ...record })}\n`
      }
    }
    case 'statsd':
      return (d) => {
        const fields = fieldsOf(d)
        let text = ''
        for (const metric of parseStatsd(d.data, { truncated: d.truncated })) text += `${JSON.stringify({ ...fields, ...metric })}\n`
        return text
      }
    case 'raw':
      return (d) => {
        const data = d.data
        // Text stays readable by default; bytes that are not UTF-8 would be mangled by it, so they go as base64.
        const as: Encoding = command.encoding ?? (isUtf8(data) ? 'utf8' : 'base64')
        return `${JSON.stringify({ ...fieldsOf(d), data: data.toString(as), encoding: as })}\n`
      }
  }
}
