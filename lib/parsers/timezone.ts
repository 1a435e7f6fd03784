// Time zones for timestamps that carry none (RFC 3164's `Mmm dd hh:mm:ss`):
// an IANA name through Intl, or a fixed offset.

/**
 * Converts a wall-clock time of one zone, given as the milliseconds that the
 * same wall-clock time would be in UTC, to milliseconds since the epoch.
 */
export type ZoneConverter = (wallClock: number) => number

const FIXED_OFFSET = /^([+-])(\d\d):?(\d\d)$/

// Zones are looked up once: an Intl.DateTimeFormat costs far more than a
// datagram. Only valid names are kept, so the map is as small as the zone list.
const converters = new Map<string, ZoneConverter>()

/**
 * The converter for `timeZone`: `'UTC'` or `'Z'`, a fixed offset (`'+09:00'`,
 * `'-0530'`), or an IANA name (`'Asia/Tokyo'`, daylight saving time
 * included). Throws a RangeError (code `ERR_INVALID_ARG_VALUE`) for anything
 * else.
 */
export function zoneConverter(timeZone: string): ZoneConverter {
  let converter = converters.get(timeZone)
  if (converter === undefined) {
    converter = makeConverter(timeZone)
    converters.set(timeZone, converter)
  }
  return converter
}

function makeConverter(timeZone: string): ZoneConverter {
  if (timeZone === 'Z' || timeZone.toUpperCase() === 'UTC') return (wallClock) => wallClock
  const fixed = FIXED_OFFSET.exec(timeZone)
  if (fixed !== null) {
    const [, sign, hours, minutes] = fixed as unknown as [string, string, string, string]
    if (Number(hours) > 23 || Number(minutes) > 59) throw invalidZone(timeZone)
    const offset = (sign === '-' ? -1 : 1) * (Number(hours) * 60 + Number(minutes)) * 60_000
    return (wallClock) => wallClock - offset
  }
  let format: Intl.DateTimeFormat
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    })
  } catch {
    throw invalidZone(timeZone)
  }
  // The zone's offset at an instant: its wall clock there, read as UTC, less the instant.
  const offsetAt = (instant: number): number => {
    const part: Record<string, number> = {}
    for (const { type, value } of format.formatToParts(instant)) part[type] = Number(value)
    const wallClock = Date.UTC(part.year as number, (part.month as number) - 1, part.day, part.hour, part.minute, part.second)
    return wallClock - Math.floor(instant / 1000) * 1000
  }
  return (wallClock) => {
    // Guess with the offset at the wall-clock time read as UTC, then correct
    // once across a DST change (a time skipped by the change lands after it).
    const guess = wallClock - offsetAt(wallClock)
    const offset = offsetAt(guess)
    return wallClock - offset
  }
}

function invalidZone(timeZone: string): RangeError {
  const error = new RangeError(`Unknown time zone '${timeZone}': expected an IANA name (Asia/Tokyo), an offset (+09:00) or UTC`)
  return Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' })
}
