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
  // Not UTF-8 (raw writes it as base64).
  all.push(datagram('', 200))
  all[all.length - 1].data = Buffer.from([0xff, 0xfe, 0x00, 0x41])
  return all
}
