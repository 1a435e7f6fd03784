// The corpus behind the golden files: datagrams as the command sees them
// (payload, addresses, receive time, truncation), well-formed, truncated and
// malformed. test/golden.test.mjs formats each with --parse raw, syslog and
// statsd and compares the lines with test/golden/*.ndjson.
const at = Date.UTC(2026, 10, 27, 12, 0, 0, 123)

const syslog = [
  '<34>1 2026-11-27T11:59:58.003Z host app 1234 ID47 - hello world',
  '<165>1 2026-11-27T21:00:00+09:00 host.example evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][x@1 a="b\\"c"] BOMAn application event',
  '<13>Nov 27 11:59:59 myhost sshd[421]: Accepted publickey for admin',
  '<13>Nov 27 23:59:59 myhost kernel: a date in the future of the receive time',
  '<0>1 - - - - - -',
  '<191>1 2026-11-27T12:00:00Z h a p m - ',
  '<999>1 2026-11-27T12:00:00Z h a p m - PRI out of range',
  'no PRI at all',
  '<34',
  '<34>1 2026-11-27T12:00:00Z',
  '',
  '<34>1 2026-11-27T12:00:00Z host app - - - a message cut by the buffer',
  '<34>1 2026-11-27T12:00:00Z host app - - - "quotes", \\ backslashes \\\\, tabs\tand unicode: ∑ 😀',
  // Edge cases of the byte scanner (lib/cli/syslog-line.ts): SD escapes, a
  // repeated or numeric name, BOM, NILVALUEs, fractions of 1–6 digits,
  // offsets, RFC 3164 without a year, missing fields, trailing terminators.
  '<14>1 2026-11-27T12:00:00.1Z h a - - [a@1 q="say \\"hi\\"" b="back\\\\slash" c="close\\]" d="other\\n"] escapes',
  '<14>1 2026-11-27T12:00:00.12Z h a - - [a@1 x="1" x="2"][a@1 y="3"] repeated names',
  '<14>1 2026-11-27T12:00:00.1234Z h a - - [a@1 2="two" 1="one" z="zed"] numeric names',
  '<14>1 2026-11-27T12:00:00.123456Z - - - - - \uFEFFBOM then the message',
  '<14>1 2026-11-27T12:00:00.5-05:30 host app proc msg - offset west',
  '<14>1 2026-11-27T23:59:59.999+14:00 host app proc msg [x@1] offset east, SD without params',
  '<14>1 2026-02-30T12:00:00Z host app - - - no such day: isoTimestamp null',
  '<14>1 2026-11-27T12:00:00Z host app - -',
  '<14>1 2026-11-27T12:00:00Z host  app - - - an empty field',
  '<14>1 2026-11-27T12:00:00Z host app - - [a@1 x="unterminated] m',
  '<13>Nov  7 01:02:03 host kernel: a padded day, no year',
  '<13>Jan  1 00:00:01 host cron[77]: the turn of the year',
  '<13>sshd[421]: no timestamp, no host',
  '<13>Nov 27 11:59:59 [99]: a tag of a pid only',
  '<13>2026-11-27T11:59:59.5+01:00 host app[7]: RFC 3339 in RFC 3164',
  '<13>Nov 27 11:59:59 host notag message',
  '<13>1x not a version\r\n\u0000',
]
const statsd = [
  'page.views:1|c',
  'response.time:320|ms|@0.5|#route:/home,region:eu-west',
  'gauge:-5|g\ngauge:+3|g\nset.users:alice|s',
  'multi:1:2:3:4|ms|#a:b',
  'cpu,host=web1,region=eu:42|g',
  'bad line without type',
  'x:1|zz',
  '',
  'page.views:1|c\nregion.latency:12|ms|#region:eu-wes',
  '_e{5,4}:title|text',
  'unicode.∑:1|c|#tag:😀',
]

function datagram(text, i, truncated = false) {
  const data = Buffer.from(text)
  return {
    data,
    remoteAddress: i % 2 ? '::ffff:127.0.0.1' : '127.0.0.1',
    remotePort: 40000 + i,
    localAddress: i % 3 === 0 ? undefined : '127.0.0.1',
    interfaceIndex: i % 3 === 0 ? undefined : 1,
    receivedAt: at + (i >> 2),
    truncated,
  }
}

/** The datagrams of one corpus, the last few marked truncated as a short buffer would leave them. */
export function corpus(kind) {
  const texts = kind === 'syslog' ? syslog : statsd
  const all = texts.map((text, i) => datagram(text, i))
  // Truncated: cut copies of the longer ones.
  texts.forEach((text, i) => {
    if (text.length > 20) all.push(datagram(text.slice(0, Math.floor(text.length * 0.6)), 100 + i, true))
  })
  // Not UTF-8 (raw writes it as base64; parsers decode it with U+FFFD).
  all.push(datagram('', 200))
  all[all.length - 1].data = Buffer.from([0xff, 0xfe, 0x00, 0x41])
  if (kind === 'syslog') {
    all.push(datagram('', 201))
    all[all.length - 1].data = Buffer.concat([Buffer.from('<14>1 - h\xe9 a - - - '), Buffer.from([0xc3, 0x28, 0xe2, 0x82])])
    all.push(datagram('', 202))
    all[all.length - 1].data = Buffer.concat([Buffer.from('<13>Nov 27 11:59:59 host app: '), Buffer.from([0xed, 0xa0, 0x80, 0x41])])
  }
  return all
}
