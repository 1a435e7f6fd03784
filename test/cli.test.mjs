// The `dgram-ring` command, run as users run it (node bin/dgram-ring.js) and
// fed by senders this project did not write: util-linux `logger`, bash's
// /dev/udp and the hot-shots StatsD client. Every child is killed when its
// test ends, and every wait is bounded.
import t from 'tap'
import { execFile, execFileSync, spawn } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { root } from './lib/helpers.mjs'

const require = createRequire(import.meta.url)
const StatsD = require('hot-shots')

const cli = path.join(root, 'bin', 'dgram-ring.js')
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
/** Upper bound on any wait: a broken CLI fails the test instead of hanging the run. */
const LIMIT_MS = 30_000

function installed(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Fails (not skips) when a system tool the tests rely on is missing. */
function requireTool(t, command) {
  if (installed(command)) return true
  t.fail(`'${command}' is not installed: these tests need util-linux's ${command} (Debian/Ubuntu package: bsdutils)`)
  return false
}

/** Runs the CLI to completion: { code, signal, stdout, stderr }. */
function run(args, options = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: LIMIT_MS, killSignal: 'SIGKILL', ...options }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code ?? null : 0, signal: error?.signal ?? null, stdout, stderr })
    })
  })
}

/** Polls `condition` until it holds; throws after LIMIT_MS. */
async function until(condition, what) {
  const deadline = Date.now() + LIMIT_MS
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Starts `dgram-ring listen --port 0 …args` (on 127.0.0.1 unless args name an
 * address) and resolves once it says where it listens. `exited` resolves with
 * { code, signal, stdout, stderr }; `lines()` is stdout so far, split.
 */
async function startListen(t, args) {
  const address = args.includes('--address') || args.includes('--type') ? [] : ['--address', '127.0.0.1']
  const child = spawn(process.execPath, [cli, 'listen', ...address, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  const killer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS)
  exited.then(() => clearTimeout(killer))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return exited
  })
  let ended = false
  exited.then(() => (ended = true))
  await until(() => ended || /listening on .*:\d+ \(/.test(stderr), 'the listening line')
  const match = /^dgram-ring: listening on (\S+):(\d+) \((\w+)\)\n/.exec(stderr)
  if (match === null) throw new Error(`no listening line; stderr: ${stderr}`)
  return {
    child,
    exited,
    address: match[1],
    port: Number(match[2]),
    backend: match[3],
    lines: () => stdout.split('\n').filter((line) => line !== ''),
  }
}

/** bash writes `printf FORMAT` as one datagram to host:port through its /dev/udp. */
function bashSend(port, format, host = '127.0.0.1') {
  execFileSync('bash', ['-c', `printf '${format}' > /dev/udp/${host}/${port}`], { timeout: LIMIT_MS })
}

const parse = (result) => result.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line))
const stderrLines = (result) => result.stderr.split('\n').filter((line) => line !== '')
const SUMMARY = /^dgram-ring: (\d+) datagrams?, \d+ bytes?, \d+ truncated, \d+ kernel drops?$/

t.test('--help, listen --help and --version', async (t) => {
  const help = await run(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: dgram-ring <command>/)
  t.match(help.stdout, /listen/)
  t.match(help.stdout, /bench/)
  t.equal(help.stderr, '')
  const listenHelp = await run(['listen', '--help'])
  t.equal(listenHelp.code, 0)
  for (const flag of ['--address', '--port', '--type', '--count', '--duration', '--parse', '--encoding', '--backend', '--ring-size', '--buffer-size', '--stats']) {
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
  ]
  for (const args of cases) {
    const result = await run(args)
    const name = `dgram-ring ${args.join(' ')}`
    t.equal(result.code, 2, `${name}: exit 2`)
    t.match(result.stderr, /^dgram-ring: [^\n]+\n$/, `${name}: one line (${result.stderr.trim()})`)
    t.equal(result.stdout, '', `${name}: nothing on stdout`)
  }
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
  const cli = await startListen(t, ['--count', '3'])
  t.equal(cli.address, '127.0.0.1')
  bashSend(cli.port, 'hi')
  bashSend(cli.port, '\\xff\\xfe\\x00hi')
  bashSend(cli.port, 'caf\\xc3\\xa9\\n')
  const result = await cli.exited
  t.equal(result.code, 0, 'exits 0 after 3 datagrams')
  const records = parse(result)
  t.equal(records.length, 3)
  for (const record of records) {
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
  t.match(err[1], SUMMARY)
  t.match(err[1], /^dgram-ring: 3 datagrams, 13 bytes, 0 truncated, 0 kernel drops$/)
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
  t.match(stderrLines(b64Result).at(-1), /, 1 truncated,/)
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
  t.match(stderrLines(result).at(-1), /^dgram-ring: 1 datagram, \d+ bytes, 0 truncated, 0 kernel drops$/)
})

t.test('--duration: exits 0 with nothing received', async (t) => {
  const cli = await startListen(t, ['--duration', '0.3'])
  const result = await cli.exited
  t.equal(result.code, 0)
  t.equal(result.stdout, '')
  t.match(stderrLines(result), [/^dgram-ring: listening on 127\.0\.0\.1:\d+ \(\w+\)$/, /^dgram-ring: 0 datagrams, 0 bytes/])
})

t.test('| head -n 2: the CLI exits 0 and says nothing about EPIPE', async (t) => {
  const shell = spawn(
    'bash',
    ['-c', `"${process.execPath}" "${cli}" listen --address 127.0.0.1 --port 0 | head -n 2; echo "cli-exit=\${PIPESTATUS[0]}" >&2`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  shell.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
  shell.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  let done = false
  const exited = new Promise((resolve) => shell.on('close', (code) => {
    done = true
    resolve(code)
  }))
  t.teardown(() => {
    if (!done) shell.kill('SIGKILL')
  })
  await until(() => done || /listening on 127\.0\.0\.1:\d+/.test(stderr), 'the listening line')
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stderr)[1])
  // head exits after two lines; the CLI learns it on its next write. Bounded.
  for (let i = 0; i < 200 && !done; i++) {
    bashSend(port, `line ${i}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(await exited, 0)
  t.match(stdout.split('\n'), [/"data":"line 0"/, /"data":"line 1"/, ''])
  t.equal(stdout.split('\n').length, 3, 'exactly two lines')
  const err = stderr.split('\n').filter((line) => line !== '')
  t.match(err, [/^dgram-ring: listening on /, /^cli-exit=0$/], `stderr: ${JSON.stringify(stderr)}`)
  t.equal(err.length, 2, 'nothing else on stderr')
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  t.test(`${signal}: what was received is written, final stats on stderr, exit 0`, async (t) => {
    const cli = await startListen(t, [])
    bashSend(cli.port, 'one')
    bashSend(cli.port, 'two')
    await until(() => cli.lines().length === 2, 'two lines')
    cli.child.kill(signal)
    const result = await cli.exited
    t.equal(result.code, 0)
    t.equal(result.signal, null)
    t.match(parse(result), [{ data: 'one' }, { data: 'two' }])
    const err = stderrLines(result)
    t.equal(err.length, 2)
    t.match(err[1], /^dgram-ring: 2 datagrams, 6 bytes, 0 truncated, 0 kernel drops$/)
  })
}

t.test('--stats, stderr not a TTY: one line a second', async (t) => {
  // The 1 s interval is due before the 2.5 s timer, so at least one line comes first whatever the load.
  const cli = await startListen(t, ['--stats', '--duration', '2.5'])
  bashSend(cli.port, 'x')
  const result = await cli.exited
  t.equal(result.code, 0)
  t.notMatch(result.stderr, /\r/)
  const err = stderrLines(result)
  const stats = err.slice(1, -1)
  t.ok(stats.length >= 1, 'at least one stats line')
  for (const line of stats) t.match(line, /^dgram-ring: \d+ pps, \d+\.\d\d MB\/s, \d+ kernel drops?, \d+ buffers? posted$/)
  t.match(err.at(-1), /^dgram-ring: 1 datagram, 1 byte, 0 truncated, 0 kernel drops$/)
})

t.test('--stats, stderr a TTY: one line rewritten in place', async (t) => {
  if (!requireTool(t, 'script')) return
  // script(1) gives the CLI a pseudo-terminal; -e passes its exit status on.
  const command = `"${process.execPath}" "${cli}" listen --address 127.0.0.1 --port 0 --stats --duration 2.5 >/dev/null`
  const output = await new Promise((resolve) => {
    execFile('script', ['-qec', command, '/dev/null'], { timeout: LIMIT_MS, killSignal: 'SIGKILL' }, (error, stdout) => resolve({ code: error ? error.code : 0, stdout }))
  })
  t.equal(output.code, 0)
  t.match(output.stdout, /\r\x1b\[Kdgram-ring: \d+ pps, /, 'stats line drawn over the previous one')
  t.match(output.stdout, /\r\x1b\[Kdgram-ring: 0 datagrams, 0 bytes/, 'the line cleared before the summary')
})

t.test('bench passes its arguments to bench/run.mjs', async (t) => {
  const bench = path.join(root, 'bench', 'run.mjs')
  if (!fs.existsSync(bench)) return t.fail('bench/run.mjs is missing')
  const direct = await new Promise((resolve) => {
    execFile(process.execPath, [bench, '--help'], { timeout: LIMIT_MS }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr }))
  })
  const viaCli = await run(['bench', '--help'])
  t.equal(viaCli.code, direct.code, 'same exit status')
  t.equal(viaCli.stdout, direct.stdout, 'same stdout')
  t.equal(viaCli.stderr, direct.stderr, 'same stderr')
  t.ok(viaCli.stdout.length + viaCli.stderr.length > 0, 'the benchmark printed its usage')
})
