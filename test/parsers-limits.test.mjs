// The parsers under hostile and damaged input: output linear in the datagram
// for crafted worst cases, truncated datagrams never parsed into wrong data,
// empty datagrams alike in both parsers, Telegraf-style StatsD tags.
// Cost is checked by sizes (records, output bytes), never by the clock.
import t from 'tap'
import { once } from 'node:events'
import { parseStatsd, parseSyslog, createStatsdParser, createSyslogParser } from '../dist/parsers/index.js'

/** The size of the datagram, near the largest UDP payload over IPv4 (65 507). */
const LARGE = 65_496

/** Repeats `unit(i)` until the text reaches `bytes`, then closes it with `tail`. */
function fill(bytes, head, unit, tail = '') {
  let text = head
  for (let i = 0; text.length + tail.length < bytes - 16; i++) text += unit(i)
  return text + tail
}

// Each builds a StatsD datagram of about `bytes` bytes meant to make output large.
const crafted = {
  'many values and many tags on one line (the issue 10 datagram)': (bytes) =>
    fill(bytes / 2, 'm:', () => '1:', '1|d|#') + fill(bytes / 2, '', (i) => `t${i}:v,`),
  'many one-metric lines': (bytes) => fill(bytes, '', () => 'a:1|c\n'),
  'many one-character error lines': (bytes) => fill(bytes, '', () => 'x\n'),
  'many bare DogStatsD tags': (bytes) => fill(bytes, 'm:1|c|#', (i) => `${i},`),
  'many Telegraf tags': (bytes) => fill(bytes, 'm', (i) => `,${i}=`, ':1|c'),
  'many lines with values and tags': (bytes) => fill(bytes, '', (i) => `m:1:2:3|h|#a:${i},b\n`),
}

function measure(text) {
  const records = parseStatsd(Buffer.from(text))
  return { records: records.length, bytes: Buffer.byteLength(JSON.stringify(records)) }
}

t.test('StatsD output is linear in the datagram for crafted worst cases', async (t) => {
  for (const [name, build] of Object.entries(crafted)) {
    const small = build(LARGE / 8)
    const large = build(LARGE)
    t.ok(large.length <= LARGE + 16, `${name}: a datagram's size (${large.length})`)
    const s = measure(small)
    const l = measure(large)
    t.ok(l.records <= large.length / 2, `${name}: ${l.records} records from ${large.length} bytes`)
    t.ok(l.bytes <= 20 * large.length, `${name}: ${l.bytes} bytes of JSON from ${large.length} (at most 20×)`)
    // 8× the input gives 8× the output (quadratic would give 64×).
    const growth = l.bytes / s.bytes / (large.length / small.length)
    t.ok(growth < 1.2, `${name}: output grows with the input (×${growth.toFixed(2)} of linear)`)
  }
})

t.test('truncated StatsD datagrams: the cut line is an error, never a metric', async (t) => {
  // hot-shots batching timings with tags, cut by a small receive buffer.
  const whole = 'a:1|c|#region:eu-west\nb:2|ms|#region:eu-west\n'
  const cut = whole.slice(0, whole.length - 5)
  t.strictSame(parseStatsd(cut, { truncated: true }), [
    { name: 'a', type: 'c', value: 1, tags: { region: 'eu-west' } },
    { error: 'truncated line', raw: 'b:2|ms|#region:eu-' },
  ])
  t.match(parseStatsd(cut), [{ name: 'a' }, { name: 'b', tags: { region: 'eu-' } }], 'without the flag it would be a wrong metric')
  t.strictSame(parseStatsd('a:1|c\n', { truncated: true }), [
    { name: 'a', type: 'c', value: 1 },
    { error: 'truncated line', raw: '' },
  ], 'cut where the next line began: still one error record for what was lost')
  t.strictSame(parseStatsd('a:12', { truncated: true }), [{ error: 'truncated line', raw: 'a:12' }])
  t.strictSame(parseStatsd('', { truncated: true }), [{ error: 'truncated line', raw: '' }])
  t.strictSame(parseStatsd('a:1|c', { truncated: false }), [{ name: 'a', type: 'c', value: 1 }])
})

t.test('truncated syslog datagrams: an error record, never a cut message', async (t) => {
  const cut = '<13>Nov 25 01:18:58 vm sshd[12]: Accepted publickey for ali'
  t.strictSame(parseSyslog(cut, { truncated: true }), { error: 'truncated message', raw: cut })
  t.match(parseSyslog(cut), { message: 'Accepted publickey for ali' }, 'without the flag it would be a wrong message')
  t.strictSame(parseSyslog('<13>', { truncated: true }), { error: 'truncated message', raw: '<13>' })
})

t.test('the parser streams mark and reject what a truncated datagram cut', async (t) => {
  const meta = { remoteAddress: '192.0.2.1', remotePort: 9, truncated: true }
  const statsd = createStatsdParser()
  statsd.end({ data: Buffer.from('a:1|c\nb:2'), ...meta })
  const statsdOut = await statsd.toArray()
  t.strictSame(statsdOut, [
    { name: 'a', type: 'c', value: 1, ...meta },
    { error: 'truncated line', raw: 'b:2', ...meta },
  ], 'every record carries truncated: true')
  const syslog = createSyslogParser()
  syslog.end({ data: Buffer.from('<13>hello'), ...meta })
  t.strictSame(await syslog.toArray(), [{ error: 'truncated message', raw: '<13>hello', ...meta }])
})

t.test('empty datagrams: the same error record from both parsers', async (t) => {
  const empty = Buffer.alloc(0)
  t.strictSame(parseStatsd(empty), [parseSyslog(empty)])
  t.strictSame(parseSyslog(empty), { error: 'empty datagram', raw: '' })
  for (const parser of [createStatsdParser(), createSyslogParser()]) {
    parser.end({ data: empty, remoteAddress: '192.0.2.1', remotePort: 9, truncated: false })
    await once(parser, 'readable')
    t.strictSame(parser.read(), { error: 'empty datagram', raw: '', remoteAddress: '192.0.2.1', remotePort: 9, truncated: false })
  }
})

t.test('InfluxDB/Telegraf-style StatsD tags', async (t) => {
  t.strictSame(parseStatsd('users.current,service=payroll,region=us-west:32|g'), [
    { name: 'users.current', type: 'g', value: 32, tags: { service: 'payroll', region: 'us-west' } },
  ])
  t.strictSame(parseStatsd('cpu,host=a,flag:1|c|#env:prod'), [
    { name: 'cpu', type: 'c', value: 1, tags: { host: 'a', flag: true, env: 'prod' } },
  ], 'with DogStatsD tags too')
  t.strictSame(parseStatsd('req,path=/a=b:1:2|ms'), [{ name: 'req', type: 'ms', values: [1, 2], tags: { path: '/a=b' } }])
  t.strictSame(parseStatsd(',host=a:1|c'), [{ error: 'missing name', raw: ',host=a:1|c' }])
  const [proto] = parseStatsd('m,__proto__=x:1|c')
  t.equal(Object.getPrototypeOf(proto.tags), Object.prototype, 'a tag cannot replace the prototype')
})
