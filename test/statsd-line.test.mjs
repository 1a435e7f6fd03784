// The command's `--parse statsd` scans a datagram's bytes and writes its
// metrics' JSON directly (lib/cli/statsd-line.ts), and leaves what it does
// not cover to parseStatsd(). Held here to exactly the bytes that
// JSON.stringify({ ...fields, ...metric }) gives for every metric: on edge
// cases of values, sample rates and lines, on generated datagrams, on
// arbitrary bytes; and the direct path is shown to take what clients send.
import t from 'tap'
import fc from 'fast-check'
import path from 'node:path'
import { root } from './lib/helpers.mjs'
import { lineFields, makeBatch } from './lib/batch.mjs'

const { batchFormatter } = await import(path.join(root, 'dist', 'cli', 'format.js'))
const { LineBuffer } = await import(path.join(root, 'dist', 'cli', 'output.js'))
const { StatsdLineWriter } = await import(path.join(root, 'dist', 'cli', 'statsd-line.js'))
const { parseStatsd } = await import(path.join(root, 'dist', 'parsers', 'index.js'))

const RECEIVED = Date.UTC(2026, 10, 27, 18, 0, 0, 5)

function datagram(data, i = 0) {
  return {
    data: Buffer.from(data),
    remoteAddress: i % 2 ? '::ffff:10.1.2.3' : '192.0.2.1',
    remotePort: 8125 + i,
    localAddress: i % 3 ? '127.0.0.1' : undefined,
    interfaceIndex: i % 3 ? 1 : undefined,
    truncated: false,
  }
}

function expected(d) {
  const fields = lineFields(d, RECEIVED)
  return parseStatsd(d.data, { truncated: d.truncated }).map((metric) => `${JSON.stringify({ ...fields, ...metric })}\n`).join('')
}

function check(t, payloads) {
  const datagrams = payloads.map((p, i) => datagram(p, i))
  const lines = new LineBuffer()
  batchFormatter({ parse: 'statsd' })(makeBatch(datagrams, RECEIVED), 0, datagrams.length, lines)
  const actual = lines.take().bytes.toString()
  const wanted = datagrams.map(expected).join('')
  if (t) t.equal(actual, wanted)
  return actual === wanted
}

/** Whether the direct path took the datagram (rather than leaving it to parseStatsd). */
function direct(payload) {
  const bytes = Buffer.from(payload)
  const out = new LineBuffer()
  out.ascii('{"p":1')
  return new StatsdLineWriter().write(out, bytes, 0, bytes.length, 0, out.length)
}

t.test('values: what JSON writes as sent, and what it writes otherwise', async (t) => {
  const values = ['0', '1', '-1', '+1', '-0', '+0', '00', '01', '1.5', '1.50', '1.', '.5', '0.5', '-0.5', '0.000001', '0.0000001',
    '0.0000015', '123456789012345', '1234567890123456', '12345678901234.5', '1234567890123.45', '0.123456789012345',
    '0.1234567890123456', '1e3', '1E3', '1e-7', '1e999', '-', '+', '', 'x', '1x', '0x1f', 'Infinity', 'NaN', '9'.repeat(400)]
  for (const type of ['c', 'g', 'ms', 'h', 'd', 's']) check(t, values.map((v) => `m:${v}|${type}`))
})

t.test('sample rates, DogStatsD fields, tags and lines', async (t) => {
  check(t, [
    'a:1|c|@1', 'a:1|c|@0.5', 'a:1|c|@0.25|@0.5', 'a:1|c|@0', 'a:1|c|@1.0', 'a:1|c|@.5', 'a:1|c|@0.0000001', 'a:1|c|@2', 'a:1|c|@',
    'a:1|c|@0.1|c:abc|T1700000000', 'a:1|c||', 'a:1|c|#tag', 'a:1|c|#a:b,c', 'a,host=x:1|c', 'a:1:2:3|h', 'a:1|x', 'a:1|', 'a:1',
    ':1|c', 'a:|c', 'a|c:1', '_e{1,1}:a|b', '_sc|a|0', '_x:1|c', '_e:1|c', 'a:1|c\nb:2|g\n', 'a:1|c\r\nb:-2|g\r\n', '\n\na:1|c\n\n',
    '', '\n', '\r\n', ' ', 'a:1|c\n \nb:1|c', ' a:1|c', 'a:1|c ', 'a.b-c_d/e@f#g!h~:1|ms', 'a"b:1|c', 'a\\b:1|c', 'é:1|c',
    'set:member:with:colons|s', 'set:"q"|s', 'set:a b|s', 'set:é|s', 'g:+5|g', 'g:-5|g', 'g:+5:-5|g', 'c:-5|c',
  ])
})

t.test('the direct path takes what clients send', async (t) => {
  for (const payload of ['page.views:1|c', 'response_time:320|ms|@0.1', 'active.users:42|g', 'gauge:-3|g', 'load:0.75|g',
    'unique:user42|s', 'a:1|c\nb:2.5|ms\nc:3|h|@0.5\n', 'a:1|d|c:container|T1700000000']) {
    t.ok(direct(payload), payload)
  }
  for (const payload of ['a:1|c|#tag:x', 'a:1:2|h', 'a:1.50|g', 'a:1|c\n \n', '', 'a:1|x']) t.notOk(direct(payload), `${JSON.stringify(payload)} is left to parseStatsd()`)
})

t.test('generated datagrams write what parseStatsd() gives', async (t) => {
  const pick = (...values) => fc.constantFrom(...values)
  const name = fc.oneof(fc.string({ unit: pick(...'ab._-@#,:|"\\é '), minLength: 0, maxLength: 6 }), pick('_e{', '_sc', 'x'))
  const value = fc.oneof(
    fc.double({ noNaN: true }).map(String),
    fc.integer().map(String),
    fc.tuple(pick('', '+', '-'), fc.stringMatching(/^\d{0,17}(\.\d{0,17})?$/)).map(([s, d]) => s + d),
    fc.string({ unit: pick(...'0123456789.:eE+-x '), maxLength: 8 }))
  const section = fc.oneof(fc.tuple(pick('@'), value).map(([a, v]) => a + v), pick('#a:b', '#x', 'c:abc', 'T1', '', '@0.5', '@1'))
  const line = fc.tuple(name, value, pick('c', 'g', 'ms', 'h', 'd', 's', 'x', ''), fc.array(section, { maxLength: 2 }))
    .map(([n, v, type, sections]) => [`${n}:${v}|${type}`, ...sections].join('|'))
  const datagramText = fc.array(fc.oneof(line, pick('', ' ', '\r')), { minLength: 1, maxLength: 4 }).chain((lines) =>
    pick('\n', '\r\n').map((end) => lines.join(end)))
  fc.assert(fc.property(fc.array(datagramText, { minLength: 1, maxLength: 4 }), (payloads) => check(null, payloads)), { numRuns: 3000 })
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 3 }), (payloads) => check(null, payloads)), { numRuns: 500 })
  t.pass('no difference')
})
