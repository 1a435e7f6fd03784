// The command's `--parse syslog` scans a datagram's bytes and writes its
// record's JSON directly (lib/cli/syslog-line.ts), and leaves what it does
// not cover to parseSyslog(). Held here to exactly the bytes that
// JSON.stringify({ ...fields, ...parseSyslog(data) }) gives: on edge cases
// of each field, on generated messages, and on arbitrary bytes; and the
// direct path is shown to take the messages senders send.
import t from 'tap'
import fc from 'fast-check'
import path from 'node:path'
import { root } from './lib/helpers.mjs'
import { lineFields, makeBatch } from './lib/batch.mjs'

const { batchFormatter } = await import(path.join(root, 'dist', 'cli', 'format.js'))
const { LineBuffer } = await import(path.join(root, 'dist', 'cli', 'output.js'))
const { SyslogLineWriter } = await import(path.join(root, 'dist', 'cli', 'syslog-line.js'))
const { zoneConverter } = await import(path.join(root, 'dist', 'parsers', 'timezone.js'))
const { parseSyslog } = await import(path.join(root, 'dist', 'parsers', 'index.js'))

const RECEIVED = Date.UTC(2026, 0, 1, 0, 30, 0, 7)

function datagram(data, i = 0, truncated = false) {
  return {
    data: Buffer.from(data),
    remoteAddress: i % 2 ? '::ffff:10.1.2.3' : '192.0.2.1',
    remotePort: 514 + i,
    localAddress: i % 3 ? '127.0.0.1' : undefined,
    interfaceIndex: i % 3 ? 2 : undefined,
    truncated,
  }
}

/** What the command wrote before it scanned bytes: the fields and the parsed record, spread. */
function expected(d, receivedAt, timeZone) {
  const fields = lineFields(d, receivedAt)
  return `${JSON.stringify({ ...fields, ...parseSyslog(d.data, { truncated: d.truncated, now: () => receivedAt, timeZone }) })}\n`
}

function check(t, payloads, { receivedAt = RECEIVED, timeZone = 'UTC' } = {}) {
  const datagrams = payloads.map((p, i) => (typeof p === 'object' && 'data' in p ? p : datagram(p, i)))
  const lines = new LineBuffer()
  batchFormatter({ parse: 'syslog', timeZone })(makeBatch(datagrams, receivedAt), 0, datagrams.length, lines)
  const actual = lines.take().bytes.toString()
  const wanted = datagrams.map((d) => expected(d, receivedAt, timeZone)).join('')
  if (t) t.equal(actual, wanted)
  return actual === wanted
}

/** Whether the direct path took the message (rather than leaving it to parseSyslog). */
function direct(payload) {
  const bytes = Buffer.from(payload)
  return new SyslogLineWriter(zoneConverter('UTC')).write(new LineBuffer(), bytes, 0, bytes.length, RECEIVED)
}

const HEAD = '<165>1 2026-11-27T12:00:00.000Z host app 1234 ID47'

t.test('datagrams from the sender of the one before, and from senders that differ in one field, get their own prefixes', (t) => {
  const line = '<34>1 2026-11-27T18:00:00Z host app 1 ID - message'
  const from = (remoteAddress, remotePort, localAddress, interfaceIndex, truncated = false) =>
    ({ data: Buffer.from(line), remoteAddress, remotePort, localAddress, interfaceIndex, truncated })
  check(t, [
    from('192.0.2.1', 514, '127.0.0.1', 1),
    from('192.0.2.1', 514, '127.0.0.1', 1),
    from('192.0.2.1', 514, '127.0.0.1', 1, true),
    from('192.0.2.1', 515, '127.0.0.1', 1),
    from('192.0.2.2', 515, '127.0.0.1', 1),
    from('192.0.2.2', 515, '127.0.0.2', 1),
    from('192.0.2.2', 515, '127.0.0.2', 2),
    from('192.0.2.2', 515, undefined, undefined),
    from('192.0.2.2', 515, undefined, undefined),
    from('::ffff:192.0.2.2', 515, undefined, undefined),
    from('::ffff:192.0.2.2', 515, undefined, undefined),
    from('192.0.2.2', 515, '127.0.0.2', 2),
  ])
  t.end()
})

t.test('RFC 5424 edge cases', async (t) => {
  check(t, [
    `${HEAD} - hello`,
    `${HEAD} -`,
    `${HEAD} - `,
    `${HEAD} -x`,
    '<0>1 - - - - - -',
    '<191>999 - - - - - - m',
    '<034>1 - h a p m - leading zero PRI',
    '<1>0 - h a p m - version 0 is not one',
    '<1>1234 - h a p m - a 4-digit version',
    '<1>1',
    '<1>1 ',
    '<1>1 - h a p',
    '<1>1 - h a p m',
    '<1>1  h a p m - empty field',
    `${HEAD} - \uFEFFBOM then text`,
    `${HEAD} - \uFEFF`,
    `${HEAD} - \uFEFF\uFEFFtwo BOMs`,
    `${HEAD} - text\n`,
    `${HEAD} - text\r\n\0\0`,
    `${HEAD} - "quotes" \\ back\\slash \t tab \x01 \x1f \x7f del`,
    `${HEAD} - unicode ∑ é 😀 \u2028`,
    '<1>1 - h\u00e9st \u2603 p\\ "m" - fields that need escaping',
  ])
})

t.test('RFC 5424 timestamps: fractions of 1–9 digits, offsets, invalid dates', async (t) => {
  const stamps = [
    '2026-11-27T12:00:00Z', '2026-11-27T12:00:00.1Z', '2026-11-27T12:00:00.12Z', '2026-11-27T12:00:00.123Z',
    '2026-11-27T12:00:00.1234Z', '2026-11-27T12:00:00.123456Z', '2026-11-27T12:00:00.123456789Z', '2026-11-27T12:00:00.1234567890Z',
    '2026-11-27T12:00:00.Z', '2026-11-27T21:00:00+09:00', '2026-11-27T21:00:00.5-05:30', '2026-01-01T00:00:00+23:59',
    '2026-01-01T00:00:00+24:00', '2026-01-01T00:00:00+01:60', '2026-01-01T00:00:00+0100', '0000-01-01T00:00:00+00:01',
    '0099-03-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '2024-02-29T00:00:00Z', '2026-02-29T00:00:00Z', '2100-02-29T00:00:00Z',
    '2000-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-00-01T00:00:00Z', '2026-04-31T00:00:00Z', '2026-11-27T24:00:00Z',
    '2026-11-27T23:60:00Z', '2026-11-27T23:59:60Z', '2026-11-27t12:00:00Z', '2026-11-27T12:00:00z', '2026-11-27 12:00:00Z',
    '2026-11-27T12:00:00', '2026-11-27', 'x026-11-27T12:00:00Z', '2026-11-27T12:00:00ZZ', '2026-11-27T12:00:00.123+09:00junk',
  ]
  check(t, stamps.map((stamp) => `<13>1 ${stamp} host app - - - m`))
  // The cache of the last offset timestamp must not answer for another.
  check(t, ['2026-11-27T21:00:00+09:00', '2026-11-27T21:00:00+09:30', '2026-11-27T21:00:00+09:00', '2026-11-27T21:00:01+09:00'].map((s) => `<13>1 ${s} h a - - -`))
})

t.test('RFC 5424 structured data: escapes, repeats, numeric and odd names, malformed', async (t) => {
  check(t, [
    `${HEAD} [a@1 x="1"] m`,
    `${HEAD} [a@1 x="1" y="2"][b@2] m`,
    `${HEAD} [a@1]`,
    `${HEAD} [a@1 x="q\\"q" y="b\\\\s" z="c\\]" w="other \\n escape"] m`,
    `${HEAD} [a@1 x="1" x="2"] repeated name`,
    `${HEAD} [a@1 x="1"][a@1 y="2"] repeated id`,
    `${HEAD} [a@1 2="x" 1="y" b="z"] numeric names`,
    `${HEAD} [1 x="y"][b x="y"] numeric id`,
    `${HEAD} [__proto__ constructor="x" __proto__="y"] m`,
    `${HEAD} [a@1 x="ünïcödé ∑" é="1"] m`,
    `${HEAD} [a@1 x=""] m`,
    `${HEAD} [a@1 x="tab\there"] m`,
    `${HEAD} [] m`,
    `${HEAD} [a@1 x="1" m`,
    `${HEAD} [a@1 x="1"`,
    `${HEAD} [a@1 x="unterminated] m`,
    `${HEAD} [a@1 x=1] m`,
    `${HEAD} [a@1 ="1"] m`,
    `${HEAD} [a@1  x="1"] m`,
    `${HEAD} [a@1 x="1"]m`,
    `${HEAD} [a@1 x="1"] [b@1] m`,
    `${HEAD} [a@1 x="1"]`,
    `${HEAD} [a@1 x=`,
    `${HEAD} [a@1 x="`,
    `${HEAD} x m`,
  ])
})

t.test('RFC 3164: timestamps without year, hosts and tags', async (t) => {
  const texts = [
    '<13>Nov 27 11:59:59 myhost sshd[421]: Accepted',
    '<13>Nov  7 01:02:03 myhost kernel: padded day',
    '<13>Nov 7 01:02:03 myhost kernel: unpadded day',
    '<13>Nov   7 01:02:03 myhost kernel: three spaces',
    '<13>Nov 127 01:02:03 h t: three digits',
    '<13>Dec 31 23:59:59 h t: last year',
    '<13>Jan  1 00:10:00 h t: within a day',
    '<13>Jan  2 00:10:00 h t: beyond a day',
    '<13>Feb 29 12:00:00 h t: a leap day',
    '<13>Feb 30 12:00:00 h t: no such day',
    '<13>Nov 27 24:00:00 h t: no such hour',
    '<13>Nov 00 12:00:00 h t: day 0',
    '<13>nov 27 11:59:59 h t: lower case',
    '<13>Nov 27 11:59:59',
    '<13>Nov 27 11:59:59 ',
    '<13>Nov 27 11:59:59x h t:',
    '<13>Nov 27 11:59:5 h t:',
    '<13>2026-11-27T11:59:59.5+01:00 host app[7]: rsyslog forward format',
    '<13>2026-11-27T11:59:59Z host',
    '<13>sshd[421]: no timestamp or host',
    '<13>myhost sshd: no timestamp: no host',
    '<13>Nov 27 11:59:59 sshd[421]: no host',
    '<13>Nov 27 11:59:59 host [99]: empty name',
    '<13>Nov 27 11:59:59 host []: empty pid',
    '<13>Nov 27 11:59:59 host name[]: empty pid',
    '<13>Nov 27 11:59:59 host name[1]',
    '<13>Nov 27 11:59:59 host name[1]x: not a tag',
    '<13>Nov 27 11:59:59 host na[me[1]: nested',
    '<13>Nov 27 11:59:59 host name[a:b]: colon in pid',
    '<13>Nov 27 11:59:59 host x]: no open',
    '<13>Nov 27 11:59:59 host a:b: colon in name',
    '<13>Nov 27 11:59:59 host :',
    '<13>Nov 27 11:59:59 host ::',
    '<13>Nov 27 11:59:59 host notag message',
    '<13>Nov 27 11:59:59 hést tâg[π]: ünicode',
    '<13>Nov 27 11:59:59  double space',
    '<13>Nov 27 11:59:59 host tag:',
    '<13>Nov 27 11:59:59 host tag:  two spaces',
    '<13>',
    '<13> ',
    '<13>1x not a version',
    '<13>\uFEFFBOM kept in 3164',
  ]
  check(t, texts)
  check(t, texts, { timeZone: 'Asia/Tokyo' })
  check(t, texts, { timeZone: '-05:30', receivedAt: Date.UTC(2024, 1, 29, 12) })
})

t.test('errors, truncated datagrams and bytes that are not UTF-8', async (t) => {
  check(t, [
    '', 'no PRI', '<', '<34', '<34>', '<1234>1 - - - - - -', '<192>1 - - - - - -', '<a>1', '<>1', '\n\r\0',
    Buffer.from([0x3c, 0x31, 0x33, 0x3e, 0xff, 0xfe, 0x41]),
    Buffer.concat([Buffer.from(`${HEAD} - `), Buffer.from([0xe2, 0x82])]),
    Buffer.concat([Buffer.from(`${HEAD} - `), Buffer.from([0xe2, 0x82, 0x0a])]),
    Buffer.concat([Buffer.from('<13>1 - h'), Buffer.from([0xc3]), Buffer.from(' a p m - x')]),
    Buffer.concat([Buffer.from(`${HEAD} [a@1 x="`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"] surrogate')]),
    Buffer.concat([Buffer.from(`${HEAD} - overlong `), Buffer.from([0xc0, 0xaf, 0xe0, 0x80, 0xaf, 0xf0, 0x80, 0x80, 0xaf])]),
    Buffer.concat([Buffer.from(`${HEAD} - beyond U+10FFFF `), Buffer.from([0xf4, 0x90, 0x80, 0x80])]),
    Buffer.concat([Buffer.from('<13>Nov 27 11:59:59 h '), Buffer.from([0xff]), Buffer.from('[1]: x')]),
    datagram(`${HEAD} - cut by the buffer`, 1, true),
    datagram('<13>Nov 27 11:59:59 h t: cut', 2, true),
  ])
})

t.test('the direct path takes what senders send', async (t) => {
  for (const text of [
    `${HEAD} - seq=00000001 message body abcdefghij`,
    `${HEAD} [exampleSDID@32473 iut="3" eventSource="Application"][x@1] \uFEFFAn application event`,
    '<165>1 2026-11-27T21:00:00.123456+09:00 host.example evntslog - ID47 - ∑ unicode and "quotes"',
    '<13>Nov 27 11:59:59 myhost sshd[421]: Accepted publickey for admin',
    '<13>Nov  7 01:02:03 myhost kernel: [ 0.000000] Linux version',
    '<13>sshd[421]: from glibc syslog(3), no host',
    '<13>2026-11-27T11:59:59+01:00 host app[7]: rsyslog forward format',
  ]) {
    t.ok(direct(text), text)
  }
  const notUtf8 = Buffer.concat([Buffer.from('<13>1 - h a p m - '), Buffer.from([0xff])])
  for (const payload of ['', notUtf8, `${HEAD} [a@1 x="1" x="2"]`, `${HEAD} [a@1 x="q\\"q"]`, `${HEAD} [a@1 1="x"]`]) {
    t.notOk(direct(payload), `left to parseSyslog: ${JSON.stringify(payload.toString())}`)
  }
})

t.test('generated messages write what parseSyslog() gives', async (t) => {
  const pick = (...values) => fc.constantFrom(...values)
  const word = fc.string({ unit: pick(...'ab-_.:[]="\\\u00e9∑😀\t\u0001 '), minLength: 0, maxLength: 8 })
  const stamp = fc.oneof(
    pick('-', '2026-11-27T12:00:00Z', '2026-02-29T00:00:00Z', '2024-02-29T23:59:59.999999+14:00', '2026-11-27T12:00:00.5-00:30'),
    fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 25 }),
      fc.stringMatching(/^(\.\d{0,10})?$/), pick('Z', '+09:00', '-23:59', '+24:00', '')).map(([y, mo, d, h, frac, zone]) =>
      `${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:30:59${frac}${zone}`),
  )
  const param = fc.tuple(pick('x', 'y', '1', '__proto__', 'é', ''), fc.string({ unit: pick(...'ab\\"]∑ '), maxLength: 6 }))
    .map(([name, value]) => ` ${name}="${value}"`)
  const element = fc.tuple(pick('a@1', 'b', '1', 'a@1'), fc.array(param, { maxLength: 3 })).map(([id, params]) => `[${id}${params.join('')}]`)
  const sd = fc.oneof(pick('-', '-x', '[', '[]'), fc.array(element, { minLength: 1, maxLength: 3 }).map((e) => e.join('')))
  const message = fc.oneof(pick('', ' ', ' \uFEFFbom', ' m\n', ' m\r\n\0'), word.map((w) => ` ${w}`))
  const rfc5424 = fc.tuple(pick('<0>', '<13>', '<191>', '<192>', '<013>'), pick('1', '12', '0', '1234', '1x'), stamp,
    fc.array(fc.oneof(word, pick('-')), { minLength: 4, maxLength: 4 }), sd, message)
    .map(([pri, version, stamp, fields, sd, msg]) => `${pri}${version} ${stamp} ${fields.join(' ')} ${sd}${msg}`)
  const bsd = fc.tuple(pick('Jan', 'Feb', 'Nov', 'Dec', 'nov'), pick(' ', '  ', '   '), fc.integer({ min: 0, max: 33 }), pick('12:00:00', '23:59:59', '24:00:00', '1:00:00'))
    .map(([month, space, day, time]) => `${month}${space}${day} ${time}`)
  const tag = fc.oneof(word, pick('sshd[421]:', 'kernel:', '[1]:', 'a[]:', 'a[b', 'x]:', 'a:b:', ':', 'n[1]', 'n[a:b]:'))
  const rfc3164 = fc.tuple(pick('<13>', '<0>'), fc.oneof(bsd, stamp, pick('')), fc.array(fc.oneof(word, tag), { maxLength: 3 }))
    .map(([pri, stamp, words]) => `${pri}${[stamp, ...words].join(' ')}`)
  const received = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) })
  const zone = pick('UTC', 'Asia/Tokyo', '+05:30', 'America/New_York')
  fc.assert(fc.property(fc.array(fc.oneof(rfc5424, rfc3164), { minLength: 1, maxLength: 4 }), received, zone,
    (texts, receivedAt, timeZone) => check(undefined, texts, { receivedAt, timeZone })), { numRuns: 3000 })
  // Arbitrary bytes after a valid PRI and header, and on their own.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), pick('', '<13>', '<13>1 ', `${HEAD} `, `${HEAD} [a@1 x="`), (bytes, head) =>
    check(undefined, [Buffer.concat([Buffer.from(head), bytes])])), { numRuns: 3000 })
  t.pass('no difference')
})

t.test('a repeated timestamp is written again right after its buffer was used again', async (t) => {
  const write = batchFormatter({ parse: 'syslog', timeZone: 'UTC' })
  const lines = new LineBuffer()
  const run = (text) => {
    const d = datagram(text)
    write(makeBatch([d], RECEIVED), 0, 1, lines)
    return [lines.take().bytes.toString(), expected(d, RECEIVED, 'UTC')]
  }
  for (const text of [
    '<13>1 2026-11-27T21:00:00+09:00 first a - - - one',
    `<13>1 - ${'x'.repeat(200)} a - - - overwrites what the first line's bytes were`,
    '<14>1 2026-11-27T21:00:00+09:00 second a - - - the same timestamp',
    '<14>1 2026-11-27T21:00:00+09:00 third a - - - and again',
  ]) {
    const [actual, wanted] = run(text)
    t.equal(actual, wanted)
  }
})
