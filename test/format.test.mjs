// `--parse raw` and `--parse statsd` written straight into a batch's bytes
// (lib/cli/format.ts), held to what JSON.stringify({ ...fields, ...record })
// gives, for every encoding, on arbitrary bytes (not UTF-8, control
// characters, quotes) and several datagrams a batch, over a LineBuffer
// that grows past its first size.
import t from 'tap'
import fc from 'fast-check'
import path from 'node:path'
import { root } from './lib/helpers.mjs'
import { makeBatch } from './lib/batch.mjs'

const { batchFormatter } = await import(path.join(root, 'dist', 'cli', 'format.js'))
const { LineBuffer } = await import(path.join(root, 'dist', 'cli', 'output.js'))
const { parseStatsd } = await import(path.join(root, 'dist', 'parsers', 'index.js'))
const { isUtf8 } = await import('node:buffer')

const RECEIVED = Date.UTC(2026, 10, 27, 12, 0, 0, 123)

function fieldsOf(d) {
  const fields = { remoteAddress: d.remoteAddress, remotePort: d.remotePort }
  if (d.localAddress !== undefined) Object.assign(fields, { localAddress: d.localAddress, interfaceIndex: d.interfaceIndex })
  return Object.assign(fields, { receivedAt: new Date(RECEIVED).toISOString(), size: d.data.length, truncated: d.truncated })
}

/** The lines as the command wrote them before it wrote bytes directly. */
function expected(command, d) {
  if (command.parse === 'statsd') {
    return parseStatsd(d.data, { truncated: d.truncated }).map((metric) => `${JSON.stringify({ ...fieldsOf(d), ...metric })}\n`).join('')
  }
  const encoding = command.encoding ?? (isUtf8(d.data) ? 'utf8' : 'base64')
  return `${JSON.stringify({ ...fieldsOf(d), data: d.data.toString(encoding), encoding })}\n`
}

function datagram(data, i, truncated = false) {
  return {
    data: Buffer.from(data),
    remoteAddress: i % 2 ? '::ffff:10.0.0.1' : '10.0.0.2',
    remotePort: 1 + i * 997,
    localAddress: i % 3 ? '127.0.0.1' : undefined,
    interfaceIndex: i % 3 ? i : undefined,
    truncated,
  }
}

function check(command, payloads, lines = new LineBuffer()) {
  const datagrams = payloads.map((p, i) => datagram(p, i, i === 2))
  batchFormatter(command)(makeBatch(datagrams, RECEIVED), 0, datagrams.length, lines)
  const { bytes, ends } = lines.take()
  const wanted = datagrams.map((d) => expected(command, d))
  let at = 0
  for (let i = 0; i < datagrams.length; i++) {
    if (bytes.subarray(at, ends[i]).toString() !== wanted[i]) return false
    at = ends[i]
  }
  return at === bytes.length
}

const commands = [{ parse: 'raw' }, { parse: 'raw', encoding: 'utf8' }, { parse: 'raw', encoding: 'base64' }, { parse: 'raw', encoding: 'hex' }, { parse: 'statsd' }]

t.test('edge cases', async (t) => {
  const payloads = [
    '', 'plain', '"quoted" \\back\\slash', 'control \x00\x01\x08\t\n\x0b\x0c\r\x1b\x1f\x7f', 'ünïcödé ∑ 😀 \u2028\u2029',
    Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.from([0xe2, 0x82]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]),
    Buffer.from([0xc0, 0xaf]), Buffer.from([0xef, 0xbb, 0xbf, 0x61]), 'x'.repeat(100) + '"' + 'y'.repeat(100),
    'page.views:1|c\nbad\ngauge:+3|g\r\nset:é|s|#a:b,c', 'multi:1:2:3|h|@0.5|#__proto__:x',
  ]
  for (const command of commands) t.ok(check(command, payloads), JSON.stringify(command))
})

t.test('a line buffer that grows while a batch is written', async (t) => {
  const big = 'z'.repeat(60_000)
  for (const command of commands) t.ok(check(command, [big, big, big, big, big, big, 'end:1|c']), JSON.stringify(command))
})

t.test('arbitrary bytes, several datagrams a batch', async (t) => {
  const bytes = fc.uint8Array({ maxLength: 300 })
  const text = fc.string({ unit: fc.constantFrom(...'ab:|#@,.=+-1\n\r"\\\t\u0000é∑😀 '), maxLength: 80 })
  const payload = fc.oneof(bytes, text.map((s) => Buffer.from(s)))
  for (const command of commands) {
    fc.assert(fc.property(fc.array(payload, { minLength: 1, maxLength: 5 }), (payloads) => check(command, payloads)), { numRuns: 500 })
  }
  t.pass('no difference')
})

t.test('a byte that needs care at every position of a word', async (t) => {
  // Plain text is tested four bytes at a time: each kind of byte at each offset, before and after the last whole word.
  for (const byte of [0x00, 0x0a, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xc3, 0xff]) {
    const payloads = []
    for (let at = 0; at < 23; at++) {
      const bytes = Buffer.from('abcdefghijklmnopqrstuvw')
      bytes[at] = byte
      payloads.push(bytes)
    }
    t.ok(check({ parse: 'raw' }, payloads), `byte 0x${byte.toString(16)}`)
    t.ok(check({ parse: 'raw', encoding: 'utf8' }, payloads.map((p) => Buffer.concat([p, Buffer.from('é')]))), `byte 0x${byte.toString(16)}, then UTF-8`)
  }
})

t.test('many senders: addresses encoded past what is kept', async (t) => {
  const datagrams = Array.from({ length: 2500 }, (_, i) => ({
    ...datagram(`m${i}`, 1),
    remoteAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    localAddress: `127.0.${(i >> 8) & 255}.${i & 255}`,
    interfaceIndex: 1,
    truncated: false,
  }))
  for (const command of [{ parse: 'raw' }, { parse: 'statsd' }]) {
    const write = batchFormatter(command)
    const lines = new LineBuffer()
    // Twice: the second pass finds some addresses kept, others cleared.
    for (let pass = 0; pass < 2; pass++) {
      write(makeBatch(datagrams, RECEIVED), 0, datagrams.length, lines)
      t.equal(lines.take().bytes.toString(), datagrams.map((d) => expected(command, d)).join(''), `${command.parse}, pass ${pass + 1}`)
    }
  }
})
