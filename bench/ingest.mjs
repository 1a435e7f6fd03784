// `npm run bench -- --ingest`: log ingestion, `dgram-ring listen` against
// rsyslog, as users would run either: RFC 5424 messages from the vendored
// sender (bench/sl5424.c, sendmmsg, a sequence number in every message) to
// 127.0.0.1, each receiver writing to a file.
//
// Receivers (each started afresh for every step, alone on its core):
//   raw, syslog, statsd   dgram-ring listen --parse … > file, default flags
//                         (statsd: the same syslog lines, parsed as StatsD:
//                         every line an error record, the parser's cost)
//   rsyslog               rsyslogd, imudp → omfile, its default file format
//   rsyslog-json          the same with a JSON template (as the command's output)
// rsyslog is Debian's package `rsyslog`; without it those rows are skipped.
//
// Steps: paced at each --rates value, then flat out. For each receiver:
// the highest paced rate with at most 0.1 % loss (loss = sent − lines
// written), CPU µs a message at 50k/s (the receiver's own user + system time
// over what it wrote), what it delivered a second flat out, and whether its
// own loss report matches sent − written (dgram-ring's summary line: kernel
// drops + discarded + not written; rsyslog reports none).
//
// Side by side: each dgram-ring receiver and its rsyslog counterpart (raw
// with rsyslog's own format, syslog and statsd with its JSON template) run at
// once on the receiver core, each with its own sender at 50k/s, and their CPU
// is read over the same windows. Receivers measured in turn can fall into
// different spells of a shared machine (this project's VM: the same receiver
// 1.1 and 3.1 µs a message minutes apart); the same windows fall on both, so
// their ratio holds.
//
//   --seconds S       sending time a step, at most 5 (default 3)
//   --runs N          repeat every step N times (default 1), the receivers taking turns at each
//                     step so that a slow spell of the machine falls on all of them; the table
//                     shows medians (and the range of the CPU a message), a rate as lossless
//                     only if every run of it was
//   --warmup S        before each step, S seconds at its rate (50k/s before flat out) that count
//                     in the loss but not in the CPU a message: V8's warm-up (default 1; 0: none)
//   --rates A,B,...   paced steps in messages/s (default 25000,50000,100000,200000)
//   --receivers LIST  any of raw,syslog,statsd,rsyslog,rsyslog-json (default all)
//   --size BYTES      message size (default 200)
//   --sender-cpu N, --receiver-cpu N   cores (default 0 and 1); --no-pin
//   --cpu-prof DIR    a V8 CPU profile of every dgram-ring step into DIR
//   --side-by-side N  windows of the side-by-side table (default 3; 0: no such table)
//   --json FILE       also write the results as JSON
import { execFile, execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { sl5424Binary } from './blast.mjs'
import { numberOption, usage as printUsage } from './options.mjs'
import { median } from './report.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.join(here, '..')
const CLI = path.join(root, 'bin', 'dgram-ring.js')
const TICK = 100 // clock ticks a second in /proc/PID/stat (USER_HZ)
const QUIET_MS = 300 // the output counts as complete after this long unchanged

const RECEIVERS = {
  raw: 'dgram-ring listen --parse raw',
  syslog: 'dgram-ring listen --parse syslog',
  statsd: 'dgram-ring listen --parse statsd',
  rsyslog: 'rsyslog imudp → omfile',
  'rsyslog-json': 'rsyslog imudp → omfile, JSON template',
}

const usage = (code) => printUsage(import.meta.url, code)

function parseArgs(argv) {
  const o = { seconds: 3, runs: 1, warmup: 1, rates: [25000, 50000, 100000, 200000], receivers: Object.keys(RECEIVERS), size: 200, senderCpu: 0, receiverCpu: 1, pin: true, cpuProf: undefined, json: undefined, sideBySide: 3 }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const next = () => {
      if (argv[i + 1] === undefined) usage(2)
      return argv[++i]
    }
    const number = (value, min, max) => numberOption(arg, value, min, max)
    switch (arg) {
      case '--seconds': o.seconds = number(next(), 0.5, 5); break
      case '--warmup': o.warmup = number(next(), 0, 5); break
      case '--runs': o.runs = number(next(), 1, 20); break
      case '--rates': o.rates = next().split(',').map((r) => number(r, 1, 1e8)); break
      case '--receivers':
        o.receivers = next().split(',')
        for (const r of o.receivers) if (!(r in RECEIVERS)) { console.error(`--receivers: unknown '${r}' (${Object.keys(RECEIVERS)})`); process.exit(2) }
        break
      case '--size': o.size = number(next(), 80, 65000); break
      case '--sender-cpu': o.senderCpu = number(next(), 0, 4095); break
      case '--receiver-cpu': o.receiverCpu = number(next(), 0, 4095); break
      case '--no-pin': o.pin = false; break
      case '--cpu-prof': o.cpuProf = path.resolve(next()); break
      case '--side-by-side': o.sideBySide = number(next(), 0, 20); break
      case '--json': o.json = path.resolve(next()); break
      case '-h': case '--help': usage(0); break
      default: console.error(`unknown option ${arg}`); usage(2)
    }
  }
  return o
}

const pinned = (o, cpu, file, args) => (o.pin ? ['taskset', ['-c', String(cpu), file, ...args]] : [file, args])

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICK
}

function lineCount(file) {
  if (!fs.existsSync(file)) return 0
  const buffer = fs.readFileSync(file)
  let lines = 0
  for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) lines++
  return lines
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function freePort() {
  const dgram = await import('node:dgram')
  const socket = dgram.createSocket('udp4')
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const { port } = socket.address()
  await new Promise((resolve) => socket.close(resolve))
  return port
}

function rsyslogConfig(kind, dir, port, out) {
  const json = `template(name="json" type="list") {
  constant(value="{") property(name="timereported" dateFormat="rfc3339" format="jsonf" outname="timestamp")
  constant(value=",") property(name="hostname" format="jsonf")
  constant(value=",") property(name="app-name" format="jsonf" outname="appName")
  constant(value=",") property(name="procid" format="jsonf" outname="procId")
  constant(value=",") property(name="msgid" format="jsonf" outname="msgId")
  constant(value=",") property(name="syslogfacility" format="jsonf" outname="facility")
  constant(value=",") property(name="syslogseverity" format="jsonf" outname="severity")
  constant(value=",") property(name="structured-data" format="jsonf" outname="structuredData")
  constant(value=",") property(name="fromhost-ip" format="jsonf" outname="remoteAddress")
  constant(value=",") property(name="msg" format="jsonf" outname="message")
  constant(value="}\\n")
}
`
  return `global(workDirectory="${dir}")
module(load="imudp" threads="1" batchSize="32")
${kind === 'rsyslog-json' ? json : ''}input(type="imudp" address="127.0.0.1" port="${port}" ruleset="in" rcvbufSize="16m")
ruleset(name="in") { action(type="omfile" file="${out}"${kind === 'rsyslog-json' ? ' template="json"' : ''}) }
`
}

/** Starts one receiver writing to `out`; resolves once it listens. */
async function startReceiver(o, kind, dir, out, step) {
  const port = await freePort()
  if (kind.startsWith('rsyslog')) {
    const conf = path.join(dir, 'rsyslog.conf')
    fs.writeFileSync(conf, rsyslogConfig(kind, dir, port, out))
    const [file, args] = pinned(o, o.receiverCpu, 'rsyslogd', ['-n', '-f', conf, '-i', path.join(dir, 'rsyslog.pid')])
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c))
    const exited = new Promise((resolve) => child.on('close', () => resolve({ stderr })))
    // rsyslog says nothing when it is ready: wait until the port is taken.
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const taken = await import('node:dgram').then(async (dgram) => {
        const probe = dgram.createSocket('udp4')
        return new Promise((resolve) => {
          probe.once('error', () => resolve(true))
          probe.bind(port, '127.0.0.1', () => probe.close(() => resolve(false)))
        })
      })
      if (taken) break
      await sleep(50)
    }
    await sleep(200) // its file and queue set up
    return { child, port, exited, pid: child.pid }
  }
  const prof = o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf, '--cpu-prof-name', `${kind}-${step}.cpuprofile`] : []
  const [file, args] = pinned(o, o.receiverCpu, process.execPath, [...prof, CLI, 'listen', '--address', '127.0.0.1', '--port', String(port), '--parse', kind])
  const fd = fs.openSync(out, 'w')
  const child = spawn(file, args, { stdio: ['ignore', fd, 'pipe'] })
  fs.closeSync(fd)
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c))
  const exited = new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })))
  const deadline = Date.now() + 10_000
  while (!/listening on/.test(stderr) && Date.now() < deadline) await sleep(20)
  if (!/listening on/.test(stderr)) throw new Error(`${kind}: no listening line: ${stderr}`)
  return { child, port, exited, pid: child.pid }
}

/** The vendored sender to `port` at `pps` (0: flat out) for `seconds` (at most 5): what it sent. */
function send(o, port, seconds, pps) {
  const [file, args] = pinned(o, o.senderCpu, sl5424Binary(), [String(port), String(seconds), String(pps), '32', String(o.size)])
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 }, (error, stdout) => {
      if (error) reject(error)
      else resolve({ sent: Number(/sent=(\d+)/.exec(stdout)[1]), elapsed: Number(/secs=([\d.]+)/.exec(stdout)[1]) })
    })
  })
}

/** The lines in `out` once it stops growing: the receiver has written what it will. */
async function settledLines(out) {
  let last = -1
  let lines = lineCount(out)
  for (const deadline = Date.now() + 30_000; lines !== last && Date.now() < deadline; ) {
    last = lines
    await sleep(QUIET_MS)
    lines = lineCount(out)
  }
  return lines
}

/** One step: a fresh receiver, the sender at `rate` (0: flat out), then the count. */
async function step(o, kind, rate) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-ingest-'))
  const out = path.join(dir, 'out.log')
  try {
    const receiver = await startReceiver(o, kind, dir, out, rate || 'max')
    // The warm-up (at the step's rate; 50k/s before a flat-out step) is in
    // the loss count, not in the CPU a message: a receiver runs for hours,
    // and V8 compiling the command's hot code is not what a message costs.
    const warm = o.warmup > 0 ? (await send(o, receiver.port, o.warmup, rate || 50000)).sent : 0
    const writtenBefore = o.warmup > 0 ? await settledLines(out) : 0
    const cpuBefore = cpuSeconds(receiver.pid)
    const { sent: measured, elapsed } = await send(o, receiver.port, o.seconds, rate)
    const sent = warm + measured
    const lines = await settledLines(out)
    const cpu = cpuSeconds(receiver.pid) - cpuBefore
    receiver.child.kill('SIGTERM')
    const { stderr } = await receiver.exited
    const written = lineCount(out) // what the draining close added counts too
    const summary = /written (\d+), received (\d+), not written (\d+), discarded (\d+), kernel drops (\d+|n\/a)/.exec(stderr ?? '')
    let reported
    if (summary) {
      const [, w, , notWritten, discarded, drops] = summary.map(Number)
      reported = { lost: notWritten + discarded + drops, matches: w === written && notWritten + discarded + drops === sent - written }
    }
    return { kind, rate, sent, elapsed, written, lost: sent - written, cpuUsPerMessage: lines > writtenBefore ? (cpu * 1e6) / (lines - writtenBefore) : undefined, deliveredPerSecond: (lines - writtenBefore) / elapsed, reported }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// Each dgram-ring receiver's rsyslog counterpart: the same output, or near it.
const COUNTERPARTS = { raw: 'rsyslog', syslog: 'rsyslog-json', statsd: 'rsyslog-json' }
const SIDE_BY_SIDE_RATE = 50000
// Before the first window: the command's first windows after 1 s still ran some 20 % slower.
const SIDE_BY_SIDE_WARMUP_S = 3

/**
 * Two receivers at once on the receiver core, each with its own sender at
 * SIDE_BY_SIDE_RATE: the CPU µs a message of each over the same windows, and
 * what each lost. Messages in a window are the paced rate times its length
 * (the senders restart every 5 s, a few ms each: under 0.1 %).
 */
async function sideBySide(o, kinds) {
  const dirs = kinds.map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-ingest-')))
  const outs = dirs.map((dir) => path.join(dir, 'out.log'))
  const receivers = []
  try {
    for (const [i, kind] of kinds.entries()) receivers.push(await startReceiver(o, kind, dirs[i], outs[i], 'side-by-side'))
    const warmup = Math.max(o.warmup, SIDE_BY_SIDE_WARMUP_S)
    const total = warmup + o.sideBySide * o.seconds + 1
    const keepSending = async (port) => {
      let sent = 0
      for (let left = total; left > 0; left -= 5) sent += (await send(o, port, Math.min(5, left), SIDE_BY_SIDE_RATE)).sent
      return sent
    }
    const sending = Promise.all(receivers.map((r) => keepSending(r.port)))
    await sleep((warmup + 0.5) * 1000)
    const windows = []
    for (let w = 0; w < o.sideBySide; w++) {
      const before = receivers.map((r) => cpuSeconds(r.pid))
      const start = performance.now()
      await sleep(o.seconds * 1000)
      const seconds = (performance.now() - start) / 1000
      windows.push(receivers.map((r, i) => ((cpuSeconds(r.pid) - before[i]) * 1e6) / (SIDE_BY_SIDE_RATE * seconds)))
    }
    const sent = await sending
    const written = await Promise.all(outs.map(settledLines))
    return { kinds, windows, lost: sent.map((n, i) => n - written[i]), sent }
  } finally {
    for (const r of receivers) r.child.kill('SIGTERM')
    await Promise.all(receivers.map((r) => r.exited))
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  }
}

function available(kind) {
  if (!kind.startsWith('rsyslog')) return true
  try {
    execFileSync('sh', ['-c', 'command -v rsyslogd'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export async function main(argv) {
  const o = parseArgs(argv)
  const results = []
  const rows = []
  const kinds = o.receivers.filter((kind) => {
    if (available(kind)) return true
    console.log(`${RECEIVERS[kind]}: skipped (rsyslogd not found: Debian package rsyslog)`)
    return false
  })
  const steps = new Map(kinds.map((kind) => [kind, []]))
  for (let run = 1; run <= o.runs; run++) {
    for (const rate of [...o.rates, 0]) {
      for (const kind of kinds) {
        const r = await step(o, kind, rate)
        steps.get(kind).push(r)
        results.push({ run, ...r })
        console.error(`${o.runs > 1 ? `run ${run}: ` : ''}${kind} ${rate ? `${rate}/s` : 'flat out'}: sent ${r.sent}, written ${r.written}, lost ${r.lost} (${((r.lost / r.sent) * 100).toFixed(2)} %), ` +
          `${r.cpuUsPerMessage?.toFixed(2)} µs CPU a message${r.reported ? `, own report: ${r.reported.lost} lost (${r.reported.matches ? 'matches' : 'DOES NOT match'})` : ''}`)
      }
    }
  }
  for (const kind of kinds) {
    const mine = steps.get(kind)
    const lossless = o.rates.filter((rate) => mine.filter((s) => s.rate === rate).every((s) => s.lost <= s.sent * 0.001))
    const at50k = mine.filter((s) => s.rate === 50000 && s.cpuUsPerMessage !== undefined).map((s) => s.cpuUsPerMessage)
    const cpu50k = at50k.length === 0 ? '–' : at50k.length === 1 ? at50k[0].toFixed(2) : `${median(at50k).toFixed(2)} (${Math.min(...at50k).toFixed(2)}–${Math.max(...at50k).toFixed(2)})`
    const flat = median(mine.filter((s) => s.rate === 0).map((s) => s.deliveredPerSecond))
    const reports = mine.filter((s) => s.reported)
    rows.push(
      `| ${RECEIVERS[kind]} | ${lossless.length ? `${Math.max(...lossless) / 1000}k/s` : 'none'} | ${cpu50k} | ${Math.round(flat / 1000)}k | ` +
        `${reports.length ? (reports.every((s) => s.reported.matches) ? `yes, exact in ${reports.length} of ${reports.length} steps` : 'yes, but it did NOT match') : 'no'} |`,
    )
  }
  const pairs = o.sideBySide === 0 ? [] : kinds.filter((kind) => kinds.includes(COUNTERPARTS[kind])).map((kind) => [kind, COUNTERPARTS[kind]])
  const pairRows = []
  for (const pair of pairs) {
    const r = await sideBySide(o, pair)
    results.push({ sideBySide: r })
    const ratios = r.windows.map(([mine, theirs]) => mine / theirs)
    const cpuOf = (i) => median(r.windows.map((w) => w[i])).toFixed(2)
    const lossy = r.kinds.filter((_, i) => r.lost[i] > r.sent[i] * 0.001).map((kind, i) => `${kind} lost ${r.lost[i]}`)
    console.error(`side by side: ${pair.join(' and ')}: ${r.windows.map((w) => w.map((x) => x.toFixed(2)).join(' / ')).join(', ')} µs a message${lossy.length ? ` (${lossy.join(', ')})` : ''}`)
    pairRows.push(
      `| ${RECEIVERS[pair[0]]} | ${cpuOf(0)} | ${RECEIVERS[pair[1]]} | ${cpuOf(1)} | ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) |` +
        `${lossy.length ? ` lost: ${lossy.join(', ')}, not comparable |` : ' none |'}`,
    )
  }
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? 'unknown CPU'
  const runs = o.runs > 1 ? `, ${o.runs} runs (medians; receivers taking turns at each step)` : ''
  console.log(`\n${o.size}-byte RFC 5424 messages from bench/sl5424.c, ${o.seconds} s a step${runs}; ${os.cpus().length} cores (${cpu}), Linux ${os.release()}, Node ${process.version}`)
  console.log(`sender on core ${o.senderCpu}, each receiver alone on core ${o.receiverCpu}; receive buffer 16 MiB for all; ${o.warmup ? `${o.warmup} s of warm-up a step (in the loss, not in the CPU)` : "no warm-up"}\n`)
  console.log('| receiver | max rate with ≤ 0.1 % loss | CPU µs a message at 50k/s | flat out: delivered/s | reports its own loss |')
  console.log('| --- | ---: | ---: | ---: | --- |')
  for (const row of rows) console.log(row)
  if (pairRows.length > 0) {
    console.log(`\nSide by side: both receivers at once on core ${o.receiverCpu}, each with its own sender at ${SIDE_BY_SIDE_RATE / 1000}k/s, CPU read over the same ${o.sideBySide} windows of ${o.seconds} s (medians, ratio range in brackets)\n`)
    console.log('| dgram-ring | CPU µs a message | rsyslog | CPU µs a message | dgram-ring ÷ rsyslog | loss (> 0.1 %) |')
    console.log('| --- | ---: | --- | ---: | ---: | --- |')
    for (const row of pairRows) console.log(row)
  }
  console.log(`\ncommand: npm run bench -- --ingest ${argv.join(' ')}`.trimEnd())
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(results, null, 2))
}
