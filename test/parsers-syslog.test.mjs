// Syslog parser: RFC 5424 and RFC 3164 lines from real senders (util-linux logger,
// rsyslog, glibc) and the RFCs, malformed and hostile datagrams, the Transform,
// and fast-check properties.
import t from 'tap'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import fc from 'fast-check'
import { parseSyslog, createSyslogParser } from '../dist/parsers/index.js'

const NOW = { now: () => Date.UTC(2026, 10, 25, 12, 0, 0) }
const BOM = '\uFEFF'

/** Base record for expectations; only fields that differ are spelled out in tests. */
function rfc3164(fields) {
  return {
    format: 'rfc3164',
    version: null,
    timestamp: null,
    isoTimestamp: null,
    hostname: null,
    appName: null,
    procId: null,
    msgId: null,
    structuredData: {},
    ...fields,
  }
}

function rfc5424(fields) {
  return {
    format: 'rfc5424',
    version: 1,
    timestamp: null,
    isoTimestamp: null,
    hostname: null,
    appName: null,
    procId: null,
    msgId: null,
    structuredData: {},
    message: '',
    ...fields,
  }
}

function priority(facility, severity) {
  return { priority: facility * 8 + severity, facility, severity }
}

t.test('RFC 5424 from util-linux logger --rfc5424', async (t) => {
  // Captured from `logger --rfc5424 -n 127.0.0.1 -d -t myapp 'hello 5424'` (util-linux 2.38.1).
  t.strictSame(
    parseSyslog(
      Buffer.from('<13>1 2026-11-25T01:18:58.442437+00:00 vm myapp - - [timeQuality tzKnown="1" isSynced="0"] hello 5424'),
    ),
    rfc5424({
      ...priority(1, 5),
      timestamp: '2026-11-25T01:18:58.442437+00:00',
      isoTimestamp: '2026-11-25T01:18:58.442Z',
      hostname: 'vm',
      appName: 'myapp',
      structuredData: { timeQuality: { tzKnown: '1', isSynced: '0' } },
      message: 'hello 5424',
    }),
  )

  // `logger --rfc5424 -i --msgid ID47 --sd-id exampleSDID@32473 --sd-param ...` with escapes.
  const withSd = parseSyslog(
    '<13>1 2026-11-25T01:18:58.444197+00:00 vm myapp 2622 ID47 [timeQuality tzKnown="1" isSynced="0"]' +
      '[exampleSDID@32473 iut="3" eventSource="App \\"lication\\" \\]x\\\\y"] with sd',
  )
  t.equal(withSd.procId, '2622')
  t.equal(withSd.msgId, 'ID47')
  t.strictSame(withSd.structuredData, {
    timeQuality: { tzKnown: '1', isSynced: '0' },
    'exampleSDID@32473': { iut: '3', eventSource: 'App "lication" ]x\\y' },
  })
  t.equal(withSd.message, 'with sd')

  // `logger --rfc5424=notq -p local4.warning`: NILVALUE structured data.
  t.strictSame(
    parseSyslog('<164>1 2026-11-25T01:18:58.445799+00:00 vm myapp - - - notq'),
    rfc5424({
      ...priority(20, 4),
      timestamp: '2026-11-25T01:18:58.445799+00:00',
      isoTimestamp: '2026-11-25T01:18:58.445Z',
      hostname: 'vm',
      appName: 'myapp',
      message: 'notq',
    }),
  )
})

t.test('RFC 5424 section 6.5 examples', async (t) => {
  const example1 = Buffer.concat([
    Buffer.from('<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - '),
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from("'su root' failed for lonvick on /dev/pts/8"),
  ])
  t.strictSame(
    parseSyslog(example1),
    rfc5424({
      ...priority(4, 2),
      timestamp: '2003-10-11T22:14:15.003Z',
      isoTimestamp: '2003-10-11T22:14:15.003Z',
      hostname: 'mymachine.example.com',
      appName: 'su',
      msgId: 'ID47',
      message: "'su root' failed for lonvick on /dev/pts/8",
    }),
    'UTF-8 BOM is stripped from MSG',
  )

  t.strictSame(
    parseSyslog("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."),
    rfc5424({
      ...priority(20, 5),
      timestamp: '2003-08-24T05:14:15.000003-07:00',
      isoTimestamp: '2003-08-24T12:14:15.000Z',
      hostname: '192.0.2.1',
      appName: 'myproc',
      procId: '8710',
      message: "%% It's time to make the do-nuts.",
    }),
  )

  const example4 = parseSyslog(
    '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 ' +
      '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
  )
  t.strictSame(example4.structuredData, {
    'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' },
    'examplePriority@32473': { class: 'high' },
  })
  t.equal(example4.message, '', 'MSG is optional')
})

t.test('RFC 5424 from rsyslog RSYSLOG_SyslogProtocol23Format', async (t) => {
  const record = parseSyslog('<30>1 2026-11-25T10:15:03.123456+01:00 web1 systemd 1 - - Started Session 42 of user alice.\n')
  t.match(record, {
    ...priority(3, 6),
    isoTimestamp: '2026-11-25T09:15:03.123Z',
    hostname: 'web1',
    appName: 'systemd',
    procId: '1',
    message: 'Started Session 42 of user alice.',
  })
})

t.test('RFC 5424 details', async (t) => {
  t.equal(parseSyslog('<13>1 - - - - - [a k="\\x\\\\"]').structuredData.a.k, '\\x\\', 'unknown escapes keep the backslash')
  t.equal(parseSyslog('<13>1 - - - - - [a k="]"]').structuredData.a.k, ']', 'unescaped ] inside quotes is tolerated')
  t.strictSame(parseSyslog('<13>1 - - - - - [a]').structuredData, { a: {} }, 'SD-ELEMENT without params')
  t.equal(parseSyslog('<13>1 - - - - - [a k="1" k="2"]').structuredData.a.k, '2', 'repeated PARAM-NAME: last wins')
  t.equal(parseSyslog('<13>2 - - - - - - x').version, 2)
  t.equal(parseSyslog('<13>1 - - - - - -  two spaces').message, ' two spaces')
  t.equal(parseSyslog('<13>1 2026-02-30T00:00:00Z h - - - - x').isoTimestamp, null, 'impossible date')
  t.equal(parseSyslog('<13>1 2026-02-30T00:00:00Z h - - - - x').timestamp, '2026-02-30T00:00:00Z', 'kept as sent')
  t.equal(parseSyslog('<13>1 2016-12-31T23:59:60Z h - - - - x').isoTimestamp, null, 'leap second')
  t.equal(parseSyslog('<13>1 yesterday h - - - - x').isoTimestamp, null)
  t.equal(parseSyslog('<13>1 0001-01-01T00:00:00Z h - - - - x').isoTimestamp, '0001-01-01T00:00:00.000Z', 'years below 100')

  const proto = parseSyslog('<13>1 - - - - - [__proto__ __proto__="x"]')
  t.equal(Object.getPrototypeOf(proto.structuredData), Object.prototype, 'SD-ID cannot replace the prototype')
  t.strictSame(Object.keys(proto.structuredData), ['__proto__'])
  t.equal(Object.getOwnPropertyDescriptor(proto.structuredData, '__proto__').value.__proto__, 'x')
})

t.test('RFC 3164 from util-linux logger --rfc3164', async (t) => {
  // Captured from `logger --rfc3164 -n 127.0.0.1 -d -t myapp 'hello 3164'`.
  t.strictSame(
    parseSyslog(Buffer.from('<13>Nov 25 01:18:58 vm myapp: hello 3164'), NOW),
    rfc3164({
      ...priority(1, 5),
      timestamp: 'Nov 25 01:18:58',
      isoTimestamp: '2026-11-25T01:18:58.000Z',
      hostname: 'vm',
      appName: 'myapp',
      message: 'hello 3164',
    }),
  )
  // `logger --rfc3164 -i -p auth.err 'with pid'`
  t.match(parseSyslog('<35>Nov 25 01:18:58 vm root[2625]: with pid', NOW), {
    ...priority(4, 3),
    hostname: 'vm',
    appName: 'root',
    procId: '2625',
    message: 'with pid',
  })
  // `logger --rfc3164 -i -t ''`: empty tag, pid only.
  t.match(parseSyslog('<13>Nov 25 01:18:58 vm [2626]: no tag', NOW), {
    hostname: 'vm',
    appName: null,
    procId: '2626',
    message: 'no tag',
  })
})

t.test('RFC 3164 variants seen in the wild', async (t) => {
  // glibc syslog(3) / plain `logger` to /dev/log: no HOSTNAME.
  t.strictSame(
    parseSyslog('<86>Nov  5 09:03:07 sshd[4242]: Accepted publickey for alice', NOW),
    rfc3164({
      ...priority(10, 6),
      timestamp: 'Nov  5 09:03:07',
      isoTimestamp: '2026-11-05T09:03:07.000Z',
      appName: 'sshd',
      procId: '4242',
      message: 'Accepted publickey for alice',
    }),
  )
  // rsyslog RSYSLOG_TraditionalForwardFormat.
  t.match(parseSyslog('<30>Nov 25 10:15:03 web1 systemd[1]: Started Session 42 of user alice.\n', NOW), {
    hostname: 'web1',
    appName: 'systemd',
    procId: '1',
    message: 'Started Session 42 of user alice.',
  })
  // rsyslog RSYSLOG_ForwardFormat: BSD layout with an RFC 3339 timestamp.
  t.match(parseSyslog('<30>2026-11-25T10:15:03.123456+01:00 web1 postfix/smtpd[977]: connect from x', NOW), {
    format: 'rfc3164',
    timestamp: '2026-11-25T10:15:03.123456+01:00',
    isoTimestamp: '2026-11-25T09:15:03.123Z',
    hostname: 'web1',
    appName: 'postfix/smtpd',
    procId: '977',
    message: 'connect from x',
  })
  // RFC 3164 section 5.4 examples.
  t.match(parseSyslog("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", NOW), {
    ...priority(4, 2),
    isoTimestamp: '2026-10-11T22:14:15.000Z',
    hostname: 'mymachine',
    appName: 'su',
    message: "'su root' failed for lonvick on /dev/pts/8",
  })
  t.match(parseSyslog('<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!', NOW), {
    hostname: '10.0.0.99',
    appName: null,
    message: 'Use the BFG!',
  })
  // No timestamp at all: no hostname either, but a tag is still recognised.
  t.strictSame(parseSyslog('<14>myapp: no header', NOW), rfc3164({ ...priority(1, 6), appName: 'myapp', message: 'no header' }))
  t.strictSame(parseSyslog('<14>just text', NOW), rfc3164({ ...priority(1, 6), message: 'just text' }))
  t.strictSame(parseSyslog('<14>', NOW), rfc3164({ ...priority(1, 6), message: '' }), 'PRI only')
  t.match(parseSyslog('<13>Nov 25 01:18:58 vm sshd[12] no colon', NOW), { appName: 'sshd', procId: '12', message: 'no colon' })
  t.match(parseSyslog('<13>Nov 25 01:18:58\0', NOW), { timestamp: 'Nov 25 01:18:58', hostname: null, message: '' })
})

t.test('RFC 3164 year and zone inference', async (t) => {
  const at = (iso) => ({ now: () => Date.parse(iso) })
  t.equal(parseSyslog('<13>Dec 31 23:59:59 h a: x', at('2027-01-01T00:00:05Z')).isoTimestamp, '2026-12-31T23:59:59.000Z', 'December read in January')
  t.equal(parseSyslog('<13>Jan  1 00:00:01 h a: x', at('2026-12-31T23:59:00Z')).isoTimestamp, '2027-01-01T00:00:01.000Z', 'sender clock slightly ahead')
  t.equal(parseSyslog('<13>Feb 29 12:00:00 h a: x', at('2028-03-01T00:00:00Z')).isoTimestamp, '2028-02-29T12:00:00.000Z', 'leap day')
  t.equal(parseSyslog('<13>Feb 29 12:00:00 h a: x', at('2026-03-01T00:00:00Z')).isoTimestamp, null, 'no leap year nearby')
  t.equal(parseSyslog('<13>Nov 25 25:00:00 h a: x', NOW).isoTimestamp, null, 'invalid hour')
  t.equal(parseSyslog('<13>Nov 25 01:18:58 h a: x', { now: () => NaN }).isoTimestamp, null, 'invalid clock')
  t.equal(parseSyslog('<13>Nov 25 01:18:58 h a: x', at('+275760-09-13T00:00:00Z')).isoTimestamp, '+275759-11-25T01:18:58.000Z', 'clock at the end of time: years Date cannot hold are skipped')
  const defaultNow = parseSyslog('<13>Nov 25 01:18:58 h a: x')
  t.match(defaultNow.isoTimestamp, /^\d{4}-11-25T01:18:58\.000Z$/, 'defaults to the current clock')
})

t.test('RFC 3164 dates are never placed in the future beyond a day of clock skew', async (t) => {
  const at = (iso) => ({ now: () => Date.parse(iso) })
  // Closest-year guessing put these ~6 months ahead, in the future.
  t.equal(parseSyslog('<13>Jun 30 10:00:00 h a: x', at('2026-12-31T00:00:00Z')).isoTimestamp, '2026-06-30T10:00:00.000Z', 'half a year back, same year')
  t.equal(parseSyslog('<13>Jul  2 10:00:00 h a: x', at('2026-01-01T00:00:00Z')).isoTimestamp, '2025-07-02T10:00:00.000Z', 'half a year back, last year')
  t.equal(parseSyslog('<13>Nov 26 00:59:00 h a: x', at('2026-11-25T01:00:00Z')).isoTimestamp, '2026-11-26T00:59:00.000Z', 'less than a day ahead: skew')
  t.equal(parseSyslog('<13>Nov 26 01:01:00 h a: x', at('2026-11-25T01:00:00Z')).isoTimestamp, '2025-11-26T01:01:00.000Z', 'more than a day ahead: last year')
})

t.test('RFC 3164 timestamps in the senders\' time zone (timeZone)', async (t) => {
  const now = () => Date.parse('2026-11-25T12:00:00Z')
  const bsd = '<13>Nov 25 18:30:00 h a: x'
  // A UTC+9 sender: 18:30 in Tokyo is 09:30 UTC, not 18:30 UTC (6.5 h in the future).
  t.equal(parseSyslog(bsd, { now }).isoTimestamp, '2026-11-25T18:30:00.000Z', 'taken as UTC: 6.5 hours in the future')
  for (const timeZone of ['Asia/Tokyo', '+09:00', '+0900']) {
    t.equal(parseSyslog(bsd, { now, timeZone }).isoTimestamp, '2026-11-25T09:30:00.000Z', timeZone)
  }
  t.equal(parseSyslog(bsd, { now, timeZone: '-05:30' }).isoTimestamp, '2026-11-26T00:00:00.000Z', 'negative offset')
  for (const timeZone of ['UTC', 'Z', 'utc']) t.equal(parseSyslog('<13>Nov 25 08:00:00 h a: x', { now, timeZone }).isoTimestamp, '2026-11-25T08:00:00.000Z', timeZone)
  // Daylight saving time: New York is UTC-4 in July and UTC-5 in January.
  const summer = () => Date.parse('2026-07-15T00:00:00Z')
  t.equal(parseSyslog('<13>Jul 14 12:00:00 h a: x', { now: summer, timeZone: 'America/New_York' }).isoTimestamp, '2026-07-14T16:00:00.000Z', 'EDT')
  const winter = () => Date.parse('2026-01-15T00:00:00Z')
  t.equal(parseSyslog('<13>Jan 14 12:00:00 h a: x', { now: winter, timeZone: 'America/New_York' }).isoTimestamp, '2026-01-14T17:00:00.000Z', 'EST')
  t.equal(parseSyslog('<13>1 2026-11-25T18:30:00+09:00 h a - - - x', { now, timeZone: 'America/New_York' }).isoTimestamp, '2026-11-25T09:30:00.000Z', 'an explicit offset wins')
  const stream = createSyslogParser({ now, timeZone: 'Asia/Tokyo' })
  stream.end(bsd)
  t.match(await stream.toArray(), [{ isoTimestamp: '2026-11-25T09:30:00.000Z' }], 'the stream too')
  for (const timeZone of ['Mars/Olympus', '+24:00', '09:00', '']) {
    t.throws(() => parseSyslog(bsd, { timeZone }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, `'${timeZone}' throws`)
    t.throws(() => createSyslogParser({ timeZone }), RangeError)
  }
})

t.test('malformed and truncated headers', async (t) => {
  const cases = [
    ['', 'empty datagram'],
    ['\n', 'empty datagram'],
    ['hello', 'missing PRI'],
    ['<', 'truncated PRI'],
    ['<13', 'truncated PRI'],
    ['<>', 'invalid PRI'],
    ['<1x>', 'invalid PRI'],
    ['<1234>', 'invalid PRI'],
    ['<1234', 'invalid PRI'],
    ['<99999999999999999999>', 'invalid PRI'],
    ['<999>', 'PRI out of range'],
    ['<192>x', 'PRI out of range'],
    ['<13>1', 'truncated header'],
    ['<13>1 ', 'truncated header'],
    ['<13>1 - - - -', 'truncated header'],
    ['<13>1 - - - - -', 'truncated header'],
    ['<13>1 -  - - - - x', 'malformed header'],
    ['<13>1 - - - - - [', 'malformed structured data'],
    ['<13>1 - - - - - []', 'malformed structured data'],
    ['<13>1 - - - - - [a', 'malformed structured data'],
    ['<13>1 - - - - - [a b]', 'malformed structured data'],
    ['<13>1 - - - - - [a b=c]', 'malformed structured data'],
    ['<13>1 - - - - - [a b="c]', 'malformed structured data'],
    ['<13>1 - - - - - [a b="c\\"]', 'malformed structured data'],
    ['<13>1 - - - - - [a ="c"]', 'malformed structured data'],
    ['<13>1 - - - - - [a b="c"]x', 'malformed structured data'],
    ['<13>1 - - - - - -x', 'malformed structured data'],
    ['<13>1 - - - - - x', 'malformed structured data'],
  ]
  for (const [input, error] of cases) {
    t.strictSame(parseSyslog(input), { error, raw: input.replace(/\n$/, '') }, JSON.stringify(input))
  }
  t.equal(parseSyslog('<0>x').priority, 0, 'lowest PRI')
  t.equal(parseSyslog('<191>x').severity, 7, 'highest PRI')
})

t.test('hostile input', async (t) => {
  const invalidUtf8 = Buffer.concat([Buffer.from('<13>Nov 25 01:18:58 h a: '), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82])])
  const record = parseSyslog(invalidUtf8, NOW)
  t.equal(record.appName, 'a')
  t.match(record.message, /^\uFFFD+\(\uFFFD$/, 'invalid UTF-8 becomes U+FFFD')

  const huge = '<13>1 - - - - - [x' + ' a="b"'.repeat(20_000)
  const error = parseSyslog(huge)
  t.equal(error.error, 'malformed structured data')
  t.ok(error.raw.length <= 256, 'raw is truncated')
  t.ok(huge.startsWith(error.raw), 'raw is a prefix of the input')

  const surrogates = 'x'.repeat(255) + '\u{1F600}'
  t.equal(parseSyslog(surrogates).raw, 'x'.repeat(255), 'raw is not cut inside a surrogate pair')

  // Linear time is what lets these finish at all (tap's timeout fails a
  // backtracking parser); speed itself is not asserted here.
  parseSyslog('<13>1 - - - - - [x' + ' a="b"'.repeat(200_000) + ']')
  parseSyslog('<13>1 - - - - - [x a="' + '\\'.repeat(1_000_000) + '"]')
  parseSyslog('<13>Nov 25 01:18:58 ' + '['.repeat(1_000_000) + ':')
  parseSyslog('<13>' + '9'.repeat(1_000_000))
  parseSyslog('<13>' + '2026-11-25T01:18:58'.repeat(50_000))
  t.pass('megabyte-sized adversarial inputs parse')
})

t.test('createSyslogParser stream', async (t) => {
  const parser = createSyslogParser(NOW)
  const out = []
  parser.on('data', (record) => out.push(record))
  parser.write(Buffer.from('<13>Nov 25 01:18:58 vm myapp: from buffer'))
  parser.write('<13>1 - vm app - - - from string')
  parser.write({
    data: Buffer.from('<13>1 - vm app - - - from datagram'),
    remoteAddress: '192.0.2.7',
    remotePort: 51234,
    localAddress: '192.0.2.1',
    interfaceIndex: 2,
    truncated: false,
  })
  parser.write({ data: new Uint8Array(Buffer.from('<13')), remoteAddress: '::1', remotePort: 1 })
  parser.write(42)
  parser.write({ nope: true })
  parser.end()
  await once(parser, 'end')

  t.equal(out.length, 6)
  t.equal(out[0].message, 'from buffer')
  t.equal(out[1].message, 'from string')
  t.strictSame(out[2], {
    ...rfc5424({ ...priority(1, 5), hostname: 'vm', appName: 'app', message: 'from datagram' }),
    remoteAddress: '192.0.2.7',
    remotePort: 51234,
    localAddress: '192.0.2.1',
    interfaceIndex: 2,
    truncated: false,
  })
  t.match(out[3], { error: 'truncated PRI', raw: '<13', remoteAddress: '::1', remotePort: 1 })
  t.match(out[4], { error: /^unsupported chunk/ })
  t.match(out[5], { error: /^unsupported chunk/ })
})

t.test('createSyslogParser passes backpressure through', async (t) => {
  const parser = createSyslogParser({ highWaterMark: 2 })
  let accepted = 0
  while (parser.write('<13>1 - - - - - - x')) accepted++
  t.ok(accepted < 10, `write() returns false once buffers fill (after ${accepted})`)
  let read = 0
  parser.on('data', () => read++)
  parser.end()
  await once(parser, 'end')
  t.equal(read, accepted + 1, 'every written datagram is emitted once the consumer reads')
})

t.test('property: arbitrary input never throws', async (t) => {
  const check = (input) => {
    const record = parseSyslog(input)
    if (record.error !== undefined) {
      assert.equal(typeof record.error, 'string')
      assert.ok(record.raw.length <= 256)
    } else {
      assert.ok(record.format === 'rfc5424' || record.format === 'rfc3164')
      assert.equal(record.priority, record.facility * 8 + record.severity)
      assert.ok(record.priority >= 0 && record.priority <= 191)
    }
  }
  const loneSurrogates = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) })
  // Strings built from syslog syntax characters reach deep parser paths far more often than random text.
  const syntax = fc
    .tuple(fc.integer({ min: 0, max: 999 }), fc.string({ unit: fc.constantFrom(...'<>[]"\\= -:1ZT.+0Nov 25'), maxLength: 80, size: 'max' }))
    .map(([pri, rest]) => `<${pri}>${rest}`)

  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024, size: 'medium' }), (bytes) => check(Buffer.from(bytes))), { numRuns: 2000 })
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 512, size: 'medium' }), check), { numRuns: 2000 })
  fc.assert(fc.property(loneSurrogates, check), { numRuns: 1000 })
  fc.assert(fc.property(syntax, check), { numRuns: 5000 })
  t.pass('no input made parseSyslog throw')
})

t.test('property: well-formed RFC 5424 round-trips', async (t) => {
  const printUsAscii = fc.integer({ min: 33, max: 126 }).map((c) => String.fromCharCode(c))
  const headerField = fc.option(
    fc.string({ unit: printUsAscii, minLength: 1, maxLength: 40 }).filter((s) => s !== '-'),
    { nil: null },
  )
  const sdName = fc.string({
    unit: printUsAscii.filter((c) => !'= ]"'.includes(c)),
    minLength: 1,
    maxLength: 32,
  })
  const sdParams = fc.uniqueArray(fc.tuple(sdName, fc.string({ unit: 'binary', maxLength: 20 })), {
    selector: ([name]) => name,
    maxLength: 4,
  })
  const structuredData = fc.uniqueArray(fc.tuple(sdName, sdParams), { selector: ([id]) => id, maxLength: 4 })
  const timestamp = fc.option(
    fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }),
    { nil: null },
  )
  const message = fc
    .string({ unit: 'binary', maxLength: 60 })
    .filter((s) => !/[\n\r\0]$/.test(s) && !s.startsWith(BOM))
  const escape = (value) => value.replace(/["\\\]]/g, (c) => '\\' + c)

  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 191 }),
      timestamp,
      headerField,
      headerField,
      headerField,
      headerField,
      structuredData,
      message,
      (pri, date, hostname, appName, procId, msgId, sd, msg) => {
        const iso = date === null ? null : date.toISOString()
        const sdText =
          sd.length === 0
            ? '-'
            : sd.map(([id, params]) => `[${id}${params.map(([k, v]) => ` ${k}="${escape(v)}"`).join('')}]`).join('')
        const fields = [iso, hostname, appName, procId, msgId].map((f) => f ?? '-').join(' ')
        const line = `<${pri}>1 ${fields} ${sdText}${msg === '' ? '' : ' ' + msg}`
        assert.deepStrictEqual(parseSyslog(Buffer.from(line)), {
          format: 'rfc5424',
          priority: pri,
          facility: pri >> 3,
          severity: pri & 7,
          version: 1,
          timestamp: iso,
          isoTimestamp: iso,
          hostname,
          appName,
          procId,
          msgId,
          structuredData: Object.fromEntries(sd.map(([id, params]) => [id, Object.fromEntries(params)])),
          message: msg,
        })
      },
    ),
    { numRuns: 2000 },
  )
  t.pass('generated RFC 5424 messages parse back to their fields')
})
