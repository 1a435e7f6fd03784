// How `dgram-ring listen` stops: signals (SIGINT, SIGTERM, SIGHUP) with the
// draining close, --count, --duration as a hard bound, readers that go away
// (EPIPE on stdout or stderr), and a summary that adds up.
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import { client, sendAll } from './lib/helpers.mjs'
import { LIMIT_MS, bashSend, cli, parse, requireTool, startListen, stderrLines, summaryOf, until } from './lib/cli.mjs'

/** Stops the process (SIGSTOP) and waits until it is stopped: what is sent meanwhile waits in the kernel. */
async function freeze(child) {
  child.kill('SIGSTOP')
  const state = () => fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]
  await until(() => state() === 'T', 'the process to stop')
}

const payloads = (count, size = 1) => Array.from({ length: count }, (_, i) => Buffer.alloc(size, 97 + (i % 26)))

t.test('--count 2 with 5 datagrams in one batch: 2 written, 5 received, 3 not written', async (t) => {
  const cli = await startListen(t, ['--count', '2'])
  await freeze(cli.child)
  await sendAll(client(t), payloads(5), cli.port, '127.0.0.1')
  cli.child.kill('SIGCONT')
  const result = await cli.exited
  t.equal(result.code, 0)
  t.match(parse(result), [{ data: 'a' }, { data: 'b' }])
  t.equal(parse(result).length, 2, 'two lines')
  t.strictSame(summaryOf(stderrLines(result).at(-1)), { written: 2, received: 5, notWritten: 3, discarded: 0, kernelDrops: 0, truncated: 0, bytes: 5 })
})

t.test('a signal while the kernel holds datagrams: they are written, then the summary', async (t) => {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const cli = await startListen(t, [])
    await freeze(cli.child)
    await sendAll(client(t), payloads(5), cli.port, '127.0.0.1')
    cli.child.kill(signal)
    cli.child.kill('SIGCONT')
    const result = await cli.exited
    t.equal(result.code, 0, `${signal}: exit 0`)
    t.equal(parse(result).length, 5, `${signal}: all five written`)
    const summary = summaryOf(stderrLines(result).at(-1))
    t.match(summary, { written: 5, received: 5, notWritten: 0 }, signal)
    t.equal(summary.written + summary.discarded + summary.kernelDrops, 5, `${signal}: written + discarded + kernel drops = sent`)
  }
})

t.test('--duration is a hard bound: stdout\'s reader stalled, the command still ends, and says what it did not write', async (t) => {
  const child = spawn(process.execPath, [cli, 'listen', '--address', '127.0.0.1', '--port', '0', '--duration', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  // stdout is not read until the command has exited: its pipe fills and stays full.
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  const killer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS)
  let stdout = ''
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    // Read only now, and at once: after 'exit' Node resumes unread stdio, dropping what it holds.
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
    resolve({ code, signal })
  }))
  t.teardown(() => {
    clearTimeout(killer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await until(() => /listening on 127\.0\.0\.1:\d+/.test(stderr), 'the listening line')
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stderr)[1])
  // 300 lines of about 1.3 KB: several times what a pipe holds.
  const sent = 300
  await sendAll(client(t), payloads(sent, 1000), port, '127.0.0.1')
  t.strictSame(await exited, { code: 0, signal: null }, 'ended by itself, stdout never read')
  await new Promise((resolve) => child.on('close', resolve))
  const lines = stdout.split('\n').slice(0, -1)
  const summary = summaryOf(stderr.trim().split('\n').at(-1))
  t.ok(summary !== null, `a summary: ${stderr}`)
  t.equal(lines.length, summary.written, 'written is what reached stdout')
  t.ok(summary.notWritten > 0, 'some were received and not written')
  t.equal(summary.received, summary.written + summary.notWritten)
  t.equal(summary.received + summary.discarded + summary.kernelDrops, sent, 'received + discarded + kernel drops = sent')
})

t.test('EPIPE on stderr (--stats 2>&1 | head -1) ends quietly with status 0', async (t) => {
  const command = `"${process.execPath}" "${cli}" listen --address 127.0.0.1 --port 0 --stats --duration 20 2>&1 | head -n 1; echo "cli-exit=\${PIPESTATUS[0]}" >&2`
  const result = await new Promise((resolve) => {
    execFile('bash', ['-c', command], { timeout: 10_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => resolve({ error, stdout, stderr }))
  })
  t.equal(result.error, null, 'ends at the first stats line, long before --duration')
  t.match(result.stdout, /^dgram-ring: listening on 127\.0\.0\.1:\d+ \(\w+[^)\n]*\)\n$/)
  t.equal(result.stderr, 'cli-exit=0\n', 'status 0, nothing else said')
})

t.test('--duration: exits 0 with nothing received', async (t) => {
  const cli = await startListen(t, ['--duration', '0.3'])
  const result = await cli.exited
  t.equal(result.code, 0)
  t.equal(result.stdout, '')
  const err = stderrLines(result)
  t.match(err[0], /^dgram-ring: listening on 127\.0\.0\.1:\d+ \(\w+[^)\n]*\)$/)
  t.match(summaryOf(err[1]), { written: 0, received: 0 })
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

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
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
    t.strictSame(summaryOf(err[1]), { written: 2, received: 2, notWritten: 0, discarded: 0, kernelDrops: 0, truncated: 0, bytes: 6 })
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
  t.match(summaryOf(err.at(-1)), { written: 1, received: 1, bytes: 1 })
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
  t.match(output.stdout, /\r\x1b\[Kdgram-ring: written 0, received 0,/, 'the line cleared before the summary')
})

