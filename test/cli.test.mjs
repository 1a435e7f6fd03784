// The `dgram-ring` command, run as users run it (node bin/dgram-ring.js) and
// fed by senders this project did not write: util-linux `logger`, bash's
// /dev/udp and the hot-shots StatsD client. How it stops (signals, --count,
// --duration, pipes) is in cli-stop.test.mjs; bench in cli-bench.test.mjs.
import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import dgram from 'node:dgram'
import os from 'node:os'
import { createRequire } from 'node:module'
import { client, sendAll } from './lib/helpers.mjs'
import { LIMIT_MS, bashSend, cli, parse, requireTool, run, startListen, stderrLines, summaryOf, until, version } from './lib/cli.mjs'

const require = createRequire(import.meta.url)
const StatsD = require('hot-shots')

t.test('--help, listen --help and --version', async (t) => {
  const help = await run(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: dgram-ring <command>/)
  t.match(help.stdout, /listen/)
  t.match(help.stdout, /bench/)
  t.equal(help.stderr, '')
  const listenHelp = await run(['listen', '--help'])
  t.equal(listenHelp.code, 0)
  for (const flag of ['--address', '--port', '--type', '--reuse-port', '--count', '--duration', '--parse', '--encoding', '--timezone', '--backend', '--ring-size', '--buffer-size', '--recv-buffer-size', '--thread', '--linger', '--stats']) {
    t.match(listenHelp.stdout, flag)
  }
  t.equal(listenHelp.stderr, '')
  const v = await run(['--version'])
  t.equal(v.code, 0)
  t.equal(v.stdout, `${version}\n`)
})

t.test('bad command lines: one line on stderr, exit 2', async (t) => {
  const cases = [
    [],
    ['frobnicate'],
    ['--bogus'],
    ['listen', '--bogus'],
    ['listen', 'extra'],
    ['listen', '--port'],
    ['listen', '--port', '70000'],
    ['listen', '--port', 'http'],
    ['listen', '--type', 'udp5'],
    ['listen', '--address', 'example.com'],
    ['listen', '--address', '::1', '--type', 'udp4'],
    ['listen', '--count', '0'],
    ['listen', '--count', '1.5'],
    ['listen', '--duration', '-1'],
    ['listen', '--duration', 'soon'],
    ['listen', '--parse', 'xml'],
    ['listen', '--encoding', 'latin1'],
    ['listen', '--parse', 'syslog', '--encoding', 'hex'],
    ['listen', '--backend', 'carrier-pigeon'],
    ['listen', '--ring-size', '0'],
    ['listen', '--buffer-size', '65536'],
    ['listen', '--stats=yes'],
    ['listen', '--reuse-port=yes'],
    ['listen', '--recv-buffer-size', '0'],
    ['listen', '--recv-buffer-size', '1M'],
    ['listen', '--parse', 'syslog', '--timezone', 'Mars/Olympus'],
    ['listen', '--parse', 'syslog', '--timezone', '+25:00'],
    ['listen', '--timezone', 'UTC'],
    ['listen', '--address', '::1', '--type', 'udp4'],
    ['listen', '--address', '127.0.0.1', '--type', 'udp6'],
    ['listen', '--linger', 'soon'],
    ['listen', '--linger', '1001'],
    ['listen', '--linger', '-1'],
    ['listen', '--thread', 'off', '--linger', '5'],
  ]
  for (const args of cases) {
    const result = await run(args)
    const name = `dgram-ring ${args.join(' ')}`
    t.equal(result.code, 2, `${name}: exit 2`)
    t.match(result.stderr, /^dgram-ring: [^\n]+\n$/, `${name}: one line (${result.stderr.trim()})`)
    t.equal(result.stdout, '', `${name}: nothing on stdout`)
    t.notMatch(result.stderr, /The "\w+" option/, `${name}: in the command's terms, not the library's`)
  }
  const mismatch = await run(['listen', '--address', '::1', '--type', 'udp4'])
  t.match(mismatch.stderr, /^dgram-ring: --address is not an address of type 'udp4'\. Received '::1'\n$/)
})

t.test('a system error (address in use): one line, exit 1', async (t) => {
  const holder = dgram.createSocket('udp4')
  t.teardown(() => new Promise((resolve) => holder.close(resolve)))
  await new Promise((resolve) => holder.bind(0, '127.0.0.1', resolve))
  const result = await run(['listen', '--address', '127.0.0.1', '--port', String(holder.address().port)])
  t.equal(result.code, 1)
  t.match(result.stderr, /^dgram-ring: [^\n]*EADDRINUSE[^\n]*\n$/)
  t.equal(result.stdout, '')
})

t.test('raw from bash /dev/udp: metadata, UTF-8 text, invalid UTF-8 as base64, --count', async (t) => {
  const before = Date.now()
  const cli = await startListen(t, ['--count', '3'])
  t.equal(cli.address, '127.0.0.1')
  bashSend(cli.port, 'hi')
  bashSend(cli.port, '\\xff\\xfe\\x00hi')
  bashSend(cli.port, 'caf\\xc3\\xa9\\n')
  const result = await cli.exited
  t.equal(result.code, 0, 'exits 0 after 3 datagrams')
  const records = parse(result)
  t.equal(records.length, 3)
  const after = Date.now()
  for (const record of records) {
    t.match(record.receivedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'receivedAt in ISO 8601')
    t.ok(Date.parse(record.receivedAt) >= before && Date.parse(record.receivedAt) <= after, 'receivedAt: when it arrived')
    t.equal(record.remoteAddress, '127.0.0.1')
    t.ok(Number.isInteger(record.remotePort) && record.remotePort > 0, 'remotePort')
    t.equal(record.localAddress, '127.0.0.1')
    t.ok(Number.isInteger(record.interfaceIndex) && record.interfaceIndex > 0, 'interfaceIndex')
    t.equal(record.truncated, false)
  }
  t.match(records[0], { size: 2, data: 'hi', encoding: 'utf8' })
  t.match(records[1], { size: 5, data: Buffer.from([0xff, 0xfe, 0x00, 0x68, 0x69]).toString('base64'), encoding: 'base64' })
  t.match(records[2], { size: 6, data: 'café\n', encoding: 'utf8' })
  const err = stderrLines(result)
  t.equal(err.length, 2, 'stderr: the listening line and the summary')
  t.strictSame(summaryOf(err[1]), { written: 3, received: 3, notWritten: 0, discarded: 0, kernelDrops: 0, truncated: 0, bytes: 13 })
})

t.test('--encoding hex and base64 for every payload; --buffer-size truncates and marks it', async (t) => {
  const hex = await startListen(t, ['--encoding', 'hex', '--count', '1'])
  bashSend(hex.port, 'AB\\n')
  const hexResult = await hex.exited
  t.equal(hexResult.code, 0)
  t.match(parse(hexResult), [{ size: 3, data: '41420a', encoding: 'hex', truncated: false }])

  const b64 = await startListen(t, ['--encoding', 'base64', '--count', '1', '--buffer-size', '5'])
  bashSend(b64.port, 'hello world')
  const b64Result = await b64.exited
  t.equal(b64Result.code, 0)
  t.match(parse(b64Result), [{ size: 5, data: Buffer.from('hello').toString('base64'), encoding: 'base64', truncated: true }])
  t.match(summaryOf(stderrLines(b64Result).at(-1)), { written: 1, truncated: 1 })
})

t.test('udp6 on ::1, and dual stack from 127.0.0.1', async (t) => {
  const probe = dgram.createSocket('udp6')
  const ipv6 = await new Promise((resolve) => {
    probe.once('error', () => resolve(false))
    probe.bind(0, '::1', () => resolve(true))
  })
  probe.close()
  if (!ipv6) return t.skip('no IPv6 loopback here')
  const v6 = await startListen(t, ['--address', '::1', '--count', '1'])
  t.equal(v6.address, '[::1]')
  bashSend(v6.port, 'six', '::1')
  const v6Result = await v6.exited
  t.equal(v6Result.code, 0)
  t.match(parse(v6Result), [{ remoteAddress: '::1', localAddress: '::1', data: 'six' }])

  const dual = await startListen(t, ['--type', 'udp6', '--count', '1'])
  t.equal(dual.address, '[::]')
  bashSend(dual.port, 'four')
  const dualResult = await dual.exited
  t.equal(dualResult.code, 0)
  t.match(parse(dualResult), [{ remoteAddress: '::ffff:127.0.0.1', data: 'four' }])
})

t.test('syslog from util-linux logger, RFC 5424 and RFC 3164', async (t) => {
  if (!requireTool(t, 'logger')) return
  const cli = await startListen(t, ['--parse', 'syslog', '--count', '2'])
  const logger = (...args) => execFileSync('logger', ['--udp', '--server', '127.0.0.1', '--port', String(cli.port), ...args], { timeout: LIMIT_MS })
  logger('--rfc5424', '--tag', 'myapp', '--id=4242', '--msgid', 'ID47', '-p', 'local3.warning', '--sd-id', 'exampleSDID@32473', '--sd-param', 'iut="3"', 'disk almost full')
  logger('--rfc3164', '--tag', 'sshd', '-p', 'auth.notice', 'Accepted publickey for alice')
  const result = await cli.exited
  t.equal(result.code, 0)
  const records = parse(result)
  t.equal(records.length, 2)
  const [rfc5424, rfc3164] = records
  // logger names the host as gethostname(2) does, the RFC 5424 one possibly fully qualified.
  const shortHost = os.hostname().split('.')[0]
  t.match(rfc5424, {
    remoteAddress: '127.0.0.1',
    localAddress: '127.0.0.1',
    truncated: false,
    format: 'rfc5424',
    priority: 19 * 8 + 4,
    facility: 19,
    severity: 4,
    version: 1,
    appName: 'myapp',
    procId: '4242',
    msgId: 'ID47',
    structuredData: { 'exampleSDID@32473': { iut: '3' } },
    message: 'disk almost full',
  })
  t.equal(rfc5424.hostname.split('.')[0], shortHost, 'RFC 5424 hostname')
  t.ok(rfc5424.isoTimestamp !== null, 'RFC 5424 timestamp parsed')
  t.ok(rfc5424.size > Buffer.byteLength(rfc5424.message), 'size counts the whole datagram')
  t.match(rfc3164, {
    remoteAddress: '127.0.0.1',
    format: 'rfc3164',
    priority: 4 * 8 + 5,
    facility: 4,
    severity: 5,
    hostname: shortHost,
    appName: 'sshd',
    msgId: null,
    message: 'Accepted publickey for alice',
  })
  t.match(rfc3164.timestamp, /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d$/)
})

t.test('statsd from hot-shots: counters, gauges and timers with tags, one line a metric', async (t) => {
  const cli = await startListen(t, ['--parse', 'statsd', '--count', '1'])
  // Buffered, so the three metrics travel in one datagram (sent on close).
  const client = new StatsD({
    host: '127.0.0.1',
    port: cli.port,
    maxBufferSize: 1000,
    globalTags: { env: 'test' },
    includeDataDogTags: false,
    errorHandler: (error) => t.error(error),
  })
  client.increment('checkout.completed', 2, ['region:eu'])
  client.gauge('queue.depth', 42.5)
  client.timing('db.query', 12, ['table:orders', 'cached'])
  await new Promise((resolve, reject) => client.close((error) => (error ? reject(error) : resolve())))
  const result = await cli.exited
  t.equal(result.code, 0)
  const records = parse(result)
  t.equal(records.length, 3, 'three metrics from one datagram')
  t.equal(new Set(records.map((r) => `${r.remotePort}/${r.size}`)).size, 1, 'all from the same datagram')
  t.match(records, [
    { remoteAddress: '127.0.0.1', name: 'checkout.completed', type: 'c', value: 2, tags: { env: 'test', region: 'eu' } },
    { name: 'queue.depth', type: 'g', value: 42.5, tags: { env: 'test' } },
    { name: 'db.query', type: 'ms', value: 12, tags: { env: 'test', table: 'orders', cached: true } },
  ])
  t.match(summaryOf(stderrLines(result).at(-1)), { written: 1, received: 1, notWritten: 0, truncated: 0, kernelDrops: 0 })
})


t.test('the default buffer takes whole what node:dgram delivers whole (4000 and 65507 bytes)', async (t) => {
  const cli = await startListen(t, ['--count', '2'])
  await sendAll(client(t), [Buffer.alloc(4000, 120), Buffer.alloc(65507, 121)], cli.port, '127.0.0.1')
  const result = await cli.exited
  t.equal(result.code, 0)
  t.match(parse(result), [{ size: 4000, truncated: false }, { size: 65507, truncated: false }])
  t.match(summaryOf(stderrLines(result).at(-1)), { written: 2, truncated: 0, bytes: 69507 })
})

/**
 * hot-shots batching 100 tagged timings into 4000-byte datagrams, then a
 * sentinel metric from another socket; resolves with the CLI's records once
 * the sentinel is written and the CLI stopped.
 */
async function hotShotsBatch(t, args) {
  const cli = await startListen(t, ['--parse', 'statsd', ...args])
  const statsd = new StatsD({ host: '127.0.0.1', port: cli.port, maxBufferSize: 4000, includeDataDogTags: false, errorHandler: (error) => t.error(error) })
  for (let i = 0; i < 100; i++) statsd.timing('checkout.service.database.query.duration', i, ['region:eu-west', `shard:${i}`])
  await new Promise((resolve, reject) => statsd.close((error) => (error ? reject(error) : resolve())))
  await sendAll(client(t), [Buffer.from('sentinel:1|c')], cli.port, '127.0.0.1')
  await until(() => cli.lines().some((line) => line.includes('"name":"sentinel"')), 'the sentinel')
  cli.child.kill('SIGTERM')
  const result = await cli.exited
  t.equal(result.code, 0)
  return parse(result).filter((record) => record.name !== 'sentinel')
}

t.test('hot-shots, 100 timings batched into 4000-byte datagrams: all of them with the default buffer', async (t) => {
  const records = await hotShotsBatch(t, [])
  t.equal(records.length, 100, 'one record a timing')
  t.ok(records.every((r) => r.type === 'ms' && r.tags.region === 'eu-west' && r.truncated === false && r.error === undefined), 'no error, nothing cut')
  t.strictSame(records.map((r) => r.value), Array.from({ length: 100 }, (_, i) => i))
})

t.test('truncated datagrams (--buffer-size 1000): every record marked, each cut line an error, no wrong metric', async (t) => {
  const records = await hotShotsBatch(t, ['--buffer-size', '1000'])
  const datagrams = new Set(records.map((r) => `${r.remotePort}/${r.receivedAt}/${r.size}`))
  t.ok(records.every((r) => r.truncated === true && r.size === 1000), 'every record: truncated, 1000 bytes')
  const errors = records.filter((r) => r.error !== undefined)
  const metrics = records.filter((r) => r.error === undefined)
  t.ok(errors.length >= 2 && errors.every((r) => r.error === 'truncated line'), `${errors.length} truncated lines`)
  t.ok(errors.length >= datagrams.size, 'at least one error record a datagram')
  t.ok(metrics.length > 0 && metrics.length < 100, `${metrics.length} whole metrics`)
  for (const metric of metrics) {
    t.strictSame(metric.tags, { region: 'eu-west', shard: String(metric.value) }, `timing ${metric.value} intact`)
  }
})

t.test('--parse statsd on a hostile 65 496-byte datagram: output a small multiple of the input', async (t) => {
  // The datagram: one DogStatsD line with ~16 000 values and ~3 500 tags.
  let text = 'm:1'
  while (text.length < 32_000) text += ':1'
  text += '|d|#'
  for (let i = 0; text.length < 65_490; i++) text += `t${i}:v,`
  const datagram = Buffer.from(text.padEnd(65_496, 'x'))
  const cli = await startListen(t, ['--parse', 'statsd', '--count', '1'])
  await sendAll(client(t), [datagram], cli.port, '127.0.0.1')
  const result = await cli.exited
  t.equal(result.code, 0, 'no crash')
  const records = parse(result)
  t.equal(records.length, 1, 'one record for the one line')
  t.equal(records[0].values.length, 16_000)
  // Each record: at most 20× its line, plus the datagram's metadata.
  t.ok(result.stdout.length <= 20 * datagram.length + 256 * records.length, `${result.stdout.length} bytes out of ${datagram.length}`)
})

t.test('empty datagrams: an error record with either parser', async (t) => {
  for (const parser of ['statsd', 'syslog']) {
    const cli = await startListen(t, ['--parse', parser, '--count', '1'])
    await sendAll(client(t), [Buffer.alloc(0)], cli.port, '127.0.0.1')
    const result = await cli.exited
    t.equal(result.code, 0)
    t.match(parse(result), [{ size: 0, truncated: false, error: 'empty datagram', raw: '' }], parser)
  }
})

t.test('--reuse-port: two receivers on one port', async (t) => {
  const first = await startListen(t, ['--reuse-port', '--duration', '5'])
  const second = await startListen(t, ['--reuse-port', '--duration', '5', '--port', String(first.port)])
  t.equal(second.port, first.port, 'both bound')
  first.child.kill('SIGTERM')
  second.child.kill('SIGTERM')
  t.match(await first.exited, { code: 0 })
  t.match(await second.exited, { code: 0 })
})

t.test('--recv-buffer-size sets SO_RCVBUF', async (t) => {
  if (!requireTool(t, 'ss')) return
  const cli = await startListen(t, ['--recv-buffer-size', '4194304', '--duration', '5'])
  // ss prints the socket, then its memory: skmem:(r0,rb8388608,...) (Linux doubles what was asked).
  const out = execFileSync('ss', ['-uamn', 'sport', '=', `:${cli.port}`], { encoding: 'utf8', timeout: LIMIT_MS })
  const rb = Number(/\brb(\d+)/.exec(out)?.[1])
  t.ok(rb >= 4194304, `rb ${rb}`)
  cli.child.kill('SIGTERM')
  t.match(await cli.exited, { code: 0 })
})

t.test('--timezone: an RFC 3164 message from a UTC+9 sender is dated when it was sent, not 9 hours ahead', async (t) => {
  // The sender's wall clock, 9 hours ahead of UTC, as RFC 3164 writes it.
  const tokyo = new Date(Date.now() + 9 * 3600_000)
  const month = tokyo.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' })
  const clock = tokyo.toISOString().slice(11, 19)
  const message = `<13>${month} ${String(tokyo.getUTCDate()).padStart(2, ' ')} ${clock} host app: hello`
  const records = []
  for (const zone of [[], ['--timezone', 'Asia/Tokyo'], ['--timezone', '+09:00']]) {
    const cli = await startListen(t, ['--parse', 'syslog', '--count', '1', ...zone])
    await sendAll(client(t), [Buffer.from(message)], cli.port, '127.0.0.1')
    const result = await cli.exited
    t.equal(result.code, 0)
    const [record] = parse(result)
    records.push(Date.parse(record.isoTimestamp) - Date.parse(record.receivedAt))
  }
  const [utc, iana, offset] = records
  t.ok(Math.abs(utc - 9 * 3600_000) < 60_000, 'without --timezone: taken as UTC, 9 hours ahead (within a day of skew)')
  t.ok(Math.abs(iana) < 60_000, `Asia/Tokyo: within a minute of arrival (${iana} ms)`)
  t.ok(Math.abs(offset) < 60_000, `+09:00: within a minute of arrival (${offset} ms)`)
})
