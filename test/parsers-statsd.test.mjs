// StatsD / DogStatsD parser: real client output (hot-shots, DogStatsD docs), malformed
// and hostile datagrams, the Transform, and fast-check properties.
import t from 'tap'
import dgram from 'node:dgram'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import fc from 'fast-check'
import StatsD from 'hot-shots'
import { parseStatsd, createStatsdParser } from '../dist/parsers/index.js'

t.test('plain StatsD (Etsy) lines', async (t) => {
  t.strictSame(parseStatsd('gorets:1|c'), [{ name: 'gorets', type: 'c', value: 1 }])
  t.strictSame(parseStatsd('gorets:1|c|@0.1'), [{ name: 'gorets', type: 'c', value: 1, sampleRate: 0.1 }])
  t.strictSame(parseStatsd('glork:320|ms|@0.1'), [{ name: 'glork', type: 'ms', value: 320, sampleRate: 0.1 }])
  t.strictSame(parseStatsd('gaugor:333|g'), [{ name: 'gaugor', type: 'g', value: 333 }])
  t.strictSame(parseStatsd('gaugor:-10|g'), [{ name: 'gaugor', type: 'g', value: -10, delta: true }])
  t.strictSame(parseStatsd('gaugor:+4|g'), [{ name: 'gaugor', type: 'g', value: 4, delta: true }])
  t.strictSame(parseStatsd('uniques:765|s'), [{ name: 'uniques', type: 's', value: '765' }])
  t.strictSame(parseStatsd('counter:-3|c'), [{ name: 'counter', type: 'c', value: -3 }], 'signed counters are not deltas')
  t.strictSame(parseStatsd('h:.5|h\nd:1e3|d\nx:2.|ms'), [
    { name: 'h', type: 'h', value: 0.5 },
    { name: 'd', type: 'd', value: 1000 },
    { name: 'x', type: 'ms', value: 2 },
  ])
})

t.test('hot-shots datagram', async (t) => {
  // Captured from hot-shots 11.4.0 with prefix 'myapp.', globalTags { env: 'prod' } and
  // maxBufferSize 1000, which packs metrics into one datagram separated by "\n".
  const datagram = Buffer.from(
    'myapp.requests:1|c|#env:prod\nmyapp.requests:2|c|@0.5|#env:prod,route:/home,cached\n' +
      'myapp.latency:250|ms|#env:prod\nmyapp.queue:7|g|#env:prod\nmyapp.queue:-2|g|#env:prod\n' +
      'myapp.queue:+4|g|#env:prod\nmyapp.users:user-42|s|#env:prod\nmyapp.size:1.5|h|#env:prod\n' +
      'myapp.dist:3|d|#env:prod\nmyapp.requests:-1|c|#env:prod',
  )
  const tags = { env: 'prod' }
  t.strictSame(parseStatsd(datagram), [
    { name: 'myapp.requests', type: 'c', value: 1, tags },
    { name: 'myapp.requests', type: 'c', value: 2, sampleRate: 0.5, tags: { env: 'prod', route: '/home', cached: true } },
    { name: 'myapp.latency', type: 'ms', value: 250, tags },
    { name: 'myapp.queue', type: 'g', value: 7, tags },
    { name: 'myapp.queue', type: 'g', value: -2, tags, delta: true },
    { name: 'myapp.queue', type: 'g', value: 4, tags, delta: true },
    { name: 'myapp.users', type: 's', value: 'user-42', tags },
    { name: 'myapp.size', type: 'h', value: 1.5, tags },
    { name: 'myapp.dist', type: 'd', value: 3, tags },
    { name: 'myapp.requests', type: 'c', value: -1, tags },
  ])
})

t.test('live hot-shots client over UDP into createStatsdParser', async (t) => {
  const server = dgram.createSocket('udp4')
  t.teardown(() => server.close())
  await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve))
  const parser = createStatsdParser()
  // What a receiver without dgram-ring's native ring would feed in: node:dgram payload plus rinfo.
  server.on('message', (data, rinfo) => parser.write({ data, remoteAddress: rinfo.address, remotePort: rinfo.port }))

  const client = new StatsD({ host: '127.0.0.1', port: server.address().port, globalTags: ['team:core'], includeDataDogTags: false })
  client.increment('jobs.done', 3, ['queue:email'])
  client.gaugeDelta('jobs.pending', -1)
  client.unique('jobs.owner', 'alice')
  const records = []
  for await (const record of parser) {
    records.push(record)
    if (records.length === 3) break
  }
  await new Promise((resolve) => client.close(resolve))

  const sender = { remoteAddress: '127.0.0.1', remotePort: records[0].remotePort }
  t.ok(sender.remotePort > 0)
  // Separate sends may arrive in any order.
  t.strictSame(
    records.sort((a, b) => a.name.localeCompare(b.name)),
    [
      { name: 'jobs.done', type: 'c', value: 3, tags: { team: 'core', queue: 'email' }, ...sender },
      { name: 'jobs.owner', type: 's', value: 'alice', tags: { team: 'core' }, ...sender },
      { name: 'jobs.pending', type: 'g', value: -1, delta: true, tags: { team: 'core' }, ...sender },
    ],
  )
})

t.test('DogStatsD extensions', async (t) => {
  t.strictSame(parseStatsd('page.views:1|c|#env:prod,shell,url:http://x/y'), [
    { name: 'page.views', type: 'c', value: 1, tags: { env: 'prod', shell: true, url: 'http://x/y' } },
  ])
  t.strictSame(parseStatsd('song.length:240|h|@0.5|#genre:rock'), [
    { name: 'song.length', type: 'h', value: 240, sampleRate: 0.5, tags: { genre: 'rock' } },
  ])
  t.strictSame(parseStatsd('req.size:1.5:2:3|d|#a'), [{ name: 'req.size', type: 'd', values: [1.5, 2, 3], tags: { a: true } }], 'multi-value: one record')
  t.strictSame(parseStatsd('q:+1:-2|g'), [{ name: 'q', type: 'g', values: [1, -2], delta: true }], 'multi-value gauge deltas')
  t.strictSame(parseStatsd('q:1:-2|g'), [{ error: 'mixed gauge deltas', raw: 'q:1:-2|g' }])
  t.strictSame(parseStatsd('users:a:b|s'), [{ name: 'users', type: 's', value: 'a:b' }], 'set members keep colons')
  t.strictSame(
    parseStatsd('cpu:12|g|#host:a|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0727c5a1e5e8b3b0c1a1f2d3e|T1656581400'),
    [{ name: 'cpu', type: 'g', value: 12, tags: { host: 'a' } }],
    'container ID and timestamp fields are ignored',
  )
  t.strictSame(parseStatsd('m:1|c|#a:1|#b:2,a:3'), [{ name: 'm', type: 'c', value: 1, tags: { a: '3', b: '2' } }])
  t.strictSame(parseStatsd('m:1|c|#'), [{ name: 'm', type: 'c', value: 1, tags: {} }])

  const [first, second] = parseStatsd('m:1|c|#a:1\nm:2|c|#a:1')
  first.tags.a = 'changed'
  t.equal(second.tags.a, '1', 'records do not share a tags object')

  const [proto] = parseStatsd('m:1|c|#__proto__:x,constructor')
  t.equal(Object.getPrototypeOf(proto.tags), Object.prototype, 'a tag cannot replace the prototype')
  t.strictSame(Object.keys(proto.tags), ['__proto__', 'constructor'])

  t.strictSame(parseStatsd('_e{5,4}:title|text|#a'), [
    { error: 'DogStatsD events and service checks are not supported', raw: '_e{5,4}:title|text|#a' },
  ])
  t.match(parseStatsd('_sc|my.check|0'), [{ error: 'DogStatsD events and service checks are not supported' }])
})

t.test('line splitting', async (t) => {
  t.strictSame(parseStatsd(''), [{ error: 'empty datagram', raw: '' }])
  t.strictSame(parseStatsd('\n\n \r\n'), [{ error: 'empty datagram', raw: '\n\n \r\n' }], 'blank lines only: no metric in it')
  t.strictSame(parseStatsd('a:1|c\r\n\r\nb:2|c\n'), [
    { name: 'a', type: 'c', value: 1 },
    { name: 'b', type: 'c', value: 2 },
  ])
})

t.test('malformed lines become error records and do not affect the others', async (t) => {
  const cases = [
    ['foo', 'missing value'],
    ['foo|c', 'missing value'],
    ['foo:|c', 'missing value'],
    ['foo:1', 'missing type'],
    [':1|c', 'missing name'],
    ['foo:1|', 'unknown metric type'],
    ['foo:1|x', 'unknown metric type'],
    ['foo:1|C', 'unknown metric type'],
    ['foo:1|c |#a', 'unknown metric type'],
    ['foo:abc|c', 'invalid value'],
    ['foo:0x10|c', 'invalid value'],
    ['foo:Infinity|c', 'invalid value'],
    ['foo:NaN|g', 'invalid value'],
    ['foo: 1|c', 'invalid value'],
    ['foo:1::2|h', 'invalid value'],
    ['foo:1e999|c', 'value out of range'],
    ['foo:-1e999|g', 'value out of range'],
    ['foo:' + '9'.repeat(400) + '|ms', 'value out of range'],
    ['foo:1|c|@', 'invalid sample rate'],
    ['foo:1|c|@0', 'invalid sample rate'],
    ['foo:1|c|@1.5', 'invalid sample rate'],
    ['foo:1|c|@-0.5', 'invalid sample rate'],
    ['foo:1|c|@abc', 'invalid sample rate'],
  ]
  for (const [line, error] of cases) {
    t.strictSame(parseStatsd(`ok:1|c\n${line}\nok:2|c`), [
      { name: 'ok', type: 'c', value: 1 },
      { error, raw: line.slice(0, 256) },
      { name: 'ok', type: 'c', value: 2 },
    ], line.length > 40 ? line.slice(0, 40) + '…' : line)
  }
  t.strictSame(parseStatsd('foo:' + '9'.repeat(300) + '|ms'), [{ name: 'foo', type: 'ms', value: 1e300 }], 'large but finite')
  t.strictSame(parseStatsd('foo:1e-999|ms'), [{ name: 'foo', type: 'ms', value: 0 }], 'underflow is 0')
  t.strictSame(parseStatsd('foo:1|c|@1'), [{ name: 'foo', type: 'c', value: 1, sampleRate: 1 }])
})

t.test('hostile input', async (t) => {
  const [bad] = parseStatsd(Buffer.from([0x66, 0xff, 0x3a, 0x31, 0x7c, 0x63, 0x0a, 0xc3]))
  t.strictSame(bad, { name: 'f\uFFFD', type: 'c', value: 1 }, 'invalid UTF-8 is replaced, not fatal')
  t.strictSame(parseStatsd(Buffer.from([0xc3])), [{ error: 'missing value', raw: '\uFFFD' }])

  const long = 'x'.repeat(100_000)
  const [error] = parseStatsd(long)
  t.equal(error.error, 'missing value')
  t.equal(error.raw, 'x'.repeat(256), 'raw is truncated')

  const many = Array.from({ length: 10_000 }, (_, i) => `metric.${i}:${i}|c|@0.5|#shard:${i % 7},blue`).join('\n')
  const records = parseStatsd(Buffer.from(many))
  t.equal(records.length, 10_000)
  t.strictSame(records[9_999], { name: 'metric.9999', type: 'c', value: 9999, sampleRate: 0.5, tags: { shard: '3', blue: true } })

  // Linear time is what lets these finish at all (tap's timeout fails a
  // backtracking parser); speed itself is not asserted here.
  parseStatsd('a:' + '1'.repeat(1_000_000) + 'x|c')
  parseStatsd('a:' + '1.'.repeat(500_000) + '|c')
  parseStatsd('a:' + '1e'.repeat(500_000) + '|c')
  parseStatsd('a:1|c|#' + 'k:v,'.repeat(200_000))
  parseStatsd('a:' + '1:'.repeat(200_000) + '1|h')
  parseStatsd(':'.repeat(1_000_000) + '|'.repeat(1_000_000))
  parseStatsd('\n'.repeat(1_000_000))
  t.pass('megabyte-sized adversarial inputs parse')
})

t.test('createStatsdParser stream', async (t) => {
  const parser = createStatsdParser()
  const out = []
  parser.on('data', (record) => out.push(record))
  parser.write('a:1|c')
  parser.write(Buffer.from('b:2|g'))
  parser.write({
    data: Buffer.from('c:1|c\nbad\nd:2:3|h'),
    remoteAddress: '198.51.100.9',
    remotePort: 40000,
    localAddress: '198.51.100.1',
    interfaceIndex: 3,
    truncated: true,
  })
  parser.write({ data: Buffer.alloc(0), remoteAddress: '198.51.100.9', remotePort: 40000 })
  parser.write(7)
  parser.end()
  await once(parser, 'end')

  const metadata = {
    remoteAddress: '198.51.100.9',
    remotePort: 40000,
    localAddress: '198.51.100.1',
    interfaceIndex: 3,
    truncated: true,
  }
  t.strictSame(out, [
    { name: 'a', type: 'c', value: 1 },
    { name: 'b', type: 'g', value: 2 },
    { name: 'c', type: 'c', value: 1, ...metadata },
    { error: 'missing value', raw: 'bad', ...metadata },
    { error: 'truncated line', raw: 'd:2:3|h', ...metadata },
    { error: 'empty datagram', raw: '', remoteAddress: '198.51.100.9', remotePort: 40000 },
    { error: 'unsupported chunk: expected Buffer, string or { data: Buffer }', raw: '' },
  ])
})

t.test('createStatsdParser passes backpressure through', async (t) => {
  const parser = createStatsdParser({ highWaterMark: 4 })
  const datagram = 'a:1|c\nb:2|c\nc:3|c'
  let accepted = 0
  while (parser.write(datagram)) accepted++
  t.ok(accepted < 20, `write() returns false once buffers fill (after ${accepted})`)
  let read = 0
  parser.on('data', () => read++)
  parser.end()
  await once(parser, 'end')
  t.equal(read, (accepted + 1) * 3, 'every metric of every written datagram is emitted')
})

t.test('property: arbitrary input never throws', async (t) => {
  const check = (input) => {
    const records = parseStatsd(input)
    assert.ok(Array.isArray(records))
    for (const record of records) {
      if (record.error !== undefined) {
        assert.equal(typeof record.error, 'string')
        assert.ok(record.raw.length <= 256)
      } else {
        assert.ok(['c', 'g', 'ms', 'h', 'd', 's'].includes(record.type))
        assert.ok(record.name.length > 0)
        if (record.type === 's') assert.equal(typeof record.value, 'string')
        else if (record.values === undefined) assert.ok(Number.isFinite(record.value))
        else assert.ok(record.values.length > 1 && record.values.every(Number.isFinite) && !('value' in record))
      }
    }
  }
  const loneSurrogates = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) })
  // Strings built from StatsD syntax characters reach deep parser paths far more often than random text.
  const syntax = fc.string({ unit: fc.constantFrom(...':|@#,\n\r.+-eE019 abcdghmsx_{}'), maxLength: 120, size: 'max' })

  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024, size: 'medium' }), (bytes) => check(Buffer.from(bytes))), { numRuns: 2000 })
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 512, size: 'medium' }), check), { numRuns: 2000 })
  fc.assert(fc.property(loneSurrogates, check), { numRuns: 1000 })
  fc.assert(fc.property(syntax, check), { numRuns: 5000 })
  t.pass('no input made parseStatsd throw')
})

t.test('property: well-formed metrics round-trip', async (t) => {
  const text = (forbidden, minLength) =>
    fc.string({ unit: 'grapheme', minLength, maxLength: 20 }).filter((s) => ![...forbidden].some((c) => s.includes(c)))
  const name = text(':|,\n\r', 1).filter((s) => !s.startsWith('_e{'))
  const finite = fc.double({ noNaN: true, noDefaultInfinity: true })
  const tags = fc.option(
    fc.uniqueArray(fc.tuple(text(':,|\n\r', 1), fc.oneof(fc.constant(true), text(',|\n\r', 0))), {
      selector: ([key]) => key,
      maxLength: 5,
    }),
    { nil: undefined },
  )
  const sampleRate = fc.option(
    fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
    { nil: undefined },
  )
  // Each metric as [line to send, records expected back].
  const numeric = fc
    .tuple(name, fc.constantFrom('c', 'g', 'ms', 'h', 'd'), fc.array(finite, { minLength: 1, maxLength: 3 }), fc.boolean())
    .map(([n, type, values, delta]) => {
      const isDelta = type === 'g' && delta
      const sent = values.map((v) => (type === 'g' && !isDelta ? Math.abs(v) : v))
      const texts = sent.map((v) => (isDelta && !(v < 0) ? '+' + String(v) : String(v)))
      // -0 is sent as "0" or "+0" and parses back as 0.
      const parsed = sent.map((v) => (v === 0 ? 0 : v))
      const expected = { name: n, type, ...(parsed.length === 1 ? { value: parsed[0] } : { values: parsed }), ...(isDelta ? { delta: true } : {}) }
      return [`${n}:${texts.join(':')}|${type}`, expected]
    })
  const set = fc.tuple(name, text('|\n\r', 1)).map(([n, v]) => [`${n}:${v}|s`, { name: n, type: 's', value: v }])
  const metric = fc.tuple(fc.oneof(numeric, set), sampleRate, tags).map(([[line, expected], rate, tagList]) => {
    let suffix = ''
    if (rate !== undefined) suffix += `|@${rate}`
    if (tagList !== undefined) suffix += '|#' + tagList.map(([k, v]) => (v === true ? k : `${k}:${v}`)).join(',')
    const record = { ...expected }
    if (rate !== undefined) record.sampleRate = rate
    if (tagList !== undefined) record.tags = Object.fromEntries(tagList)
    return [line + suffix, record]
  })

  fc.assert(
    fc.property(fc.array(metric, { minLength: 1, maxLength: 20 }), fc.boolean(), (metrics, trailingNewline) => {
      const datagram = metrics.map(([line]) => line).join('\n') + (trailingNewline ? '\n' : '')
      assert.deepStrictEqual(parseStatsd(Buffer.from(datagram)), metrics.map(([, record]) => record))
    }),
    { numRuns: 2000 },
  )
  t.pass('generated metrics parse back to what was sent')
})
