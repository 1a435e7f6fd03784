#!/usr/bin/env node
// `npm run bench` (or `dgram-ring bench`): dgram-ring against node:dgram on loopback.
//
// One native sender (bench/blast.c, sendmmsg + UDP GSO) floods 127.0.0.1; each
// receiver runs in its own child process, so CPU and RSS are its own:
//   message   node:dgram, counting in 'message' (its saturated rate)
//   readable  node:dgram pushed into an object-mode Readable, read with for await
//   ring      dgram-ring's listen(), read with for await
// Sender and receiver are pinned to different cores. After a warm-up the
// receiver measures a fixed window (pps, CPU ns a datagram); accounting
// (sent − received, kernel drops) covers the whole sender run, read after the
// socket is drained. Prints a Markdown table, the command and machine facts.
//
//   npm run bench -- [options]        (or: node bench/run.mjs [options])
//
//   --seconds S          measured window for each receiver (default 3)
//   --warmup S           the sender runs this long before the window opens (default 1)
//   --sizes A,B,...      datagram payload sizes in bytes (default 64,512,1400)
//   --runs N             repeat everything N times; the table shows the median run (default 1)
//   --pick median|best   which of the runs the table shows (best: the fastest, for shared machines)
//   --receivers LIST     any of message,readable,ring (default all three)
//   --rcvbuf BYTES       SO_RCVBUF of every receiver (default min(4 MiB, net.core.rmem_max))
//   --ring-size N        dgram-ring's ringSize (default: the library's)
//   --buffer-size BYTES  dgram-ring's bufferSize (default: the library's; the command's is 65535)
//   --touch data|none|all  what the loop reads of each datagram: payload length (default),
//                        nothing, or also the source address and port
//   --no-gso             plain sendmmsg sender (it offers ~350k datagrams/s at most)
//   --batch N            messages a sendmmsg call, of 64 GSO segments each (default 8)
//   --rate PPS           pace the sender (default: as fast as it goes)
//   --sender-cpu N       core of the sender (default 0); --receiver-cpu N: of the receivers (default 1)
//   --no-pin             do not pin (taskset) at all
//   --settle [MAX_S]     before each measurement wait (at most MAX_S, default 30) until the
//                        machine is 90% idle: for shared machines
//   --module PATH        the dgram-ring build to measure (default dist/index.js): to compare a copy
//   --cpu-prof DIR       write a V8 CPU profile of every receiver into DIR
//   --ingest             the log ingestion benchmark instead: dgram-ring listen against
//                        rsyslog (bench/ingest.mjs; --ingest --help for its options)
//   --json [FILE]        also write the results as JSON to FILE (no FILE: JSON on stdout,
//                        the report on stderr)
//
// Exit code: 0 on success, 1 if a child (sender or receiver) failed or timed out,
// 2 for a bad option.
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { blastBinary } from './blast.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const RECEIVERS = {
  message: "node:dgram 'message'",
  readable: 'node:dgram → Readable, for await',
  ring: 'dgram-ring, for await',
}
const TAIL_S = 0.5 // the sender runs this long past the window, so the window never sees it stop

// --- options ------------------------------------------------------------------

function usage(code) {
  const text = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')
  const help = text.slice(1, text.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n')
  ;(code === 0 ? console.log : console.error)(help)
  process.exit(code)
}

function parseArgs(argv) {
  const o = {
    seconds: 3,
    warmup: 1,
    sizes: [64, 512, 1400],
    runs: 1,
    receivers: Object.keys(RECEIVERS),
    rcvbuf: undefined,
    ringSize: undefined,
    bufferSize: undefined,
    touch: 'data',
    gso: true,
    // Messages a sendmmsg call, each of 64 GSO segments (46 at 1400 B). With 64
    // (4096 datagrams a call) runs fell more often into the slow state that
    // bench/README.md describes; 8 smooths the arrivals and costs no rate.
    batch: 8,
    rate: 0,
    senderCpu: 0,
    receiverCpu: 1,
    pin: true,
    module: path.join(root, 'dist', 'index.js'),
    cpuProf: undefined,
    json: undefined, // undefined: no JSON; '-': stdout; else a file
    pick: 'median',
    settle: 0, // seconds to wait at most for a quiet machine before each measurement; 0: don't
  }
  const number = (name, value, min, max) => {
    const n = Number(value)
    if (value === undefined || !Number.isFinite(n) || n < min || n > max) {
      console.error(`${name}: expected a number from ${min} to ${max}, got ${value}`)
      process.exit(2)
    }
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]
    let value
    const eq = arg.indexOf('=')
    if (arg.startsWith('--') && eq > 0) [arg, value] = [arg.slice(0, eq), arg.slice(eq + 1)]
    const next = () => (value !== undefined ? value : argv[++i])
    switch (arg) {
      case '--seconds': o.seconds = number(arg, next(), 0.2, 600); break
      case '--warmup': o.warmup = number(arg, next(), 0, 60); break
      case '--sizes': o.sizes = String(next()).split(',').map((s) => number(arg, s, 1, 65507)); break
      case '--runs': o.runs = Math.floor(number(arg, next(), 1, 100)); break
      case '--receivers': {
        o.receivers = String(next()).split(',')
        for (const r of o.receivers) if (!(r in RECEIVERS)) { console.error(`--receivers: unknown '${r}' (${Object.keys(RECEIVERS)})`); process.exit(2) }
        break
      }
      case '--rcvbuf': o.rcvbuf = Math.floor(number(arg, next(), 1, 2 ** 31 - 1)); break
      case '--ring-size': o.ringSize = Math.floor(number(arg, next(), 1, 65536)); break
      case '--buffer-size': o.bufferSize = Math.floor(number(arg, next(), 1, 65535)); break
      case '--touch': o.touch = next(); if (!['data', 'none', 'all'].includes(o.touch)) usage(2); break
      case '--gso': o.gso = true; break
      case '--no-gso': o.gso = false; break
      case '--batch': o.batch = Math.floor(number(arg, next(), 1, 1024)); break
      case '--rate': o.rate = number(arg, next(), 0, 1e9); break
      case '--sender-cpu': o.senderCpu = Math.floor(number(arg, next(), 0, 4095)); break
      case '--receiver-cpu': o.receiverCpu = Math.floor(number(arg, next(), 0, 4095)); break
      case '--no-pin': o.pin = false; break
      case '--module': o.module = path.resolve(next()); break
      case '--settle': {
        if (value !== undefined) o.settle = number(arg, value, 1, 3600)
        else if (argv[i + 1] !== undefined && /^\d/.test(argv[i + 1])) o.settle = number(arg, argv[++i], 1, 3600)
        else o.settle = 30
        break
      }
      case '--pick': o.pick = next(); if (!['median', 'best'].includes(o.pick)) usage(2); break
      case '--cpu-prof': o.cpuProf = path.resolve(next()); break
      case '--json': {
        if (value !== undefined) o.json = value
        else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) o.json = argv[++i]
        else o.json = '-'
        break
      }
      case '-h': case '--help': usage(0); break
      default: console.error(`unknown option ${arg}`); usage(2)
    }
  }
  return o
}

// --- machine facts --------------------------------------------------------------

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

function machineFacts() {
  const cpuinfo = readText('/proc/cpuinfo') ?? ''
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown'
  const mhz = /cpu MHz\s*:\s*(.*)/.exec(cpuinfo)?.[1]
  const hypervisor = /\bhypervisor\b/.test(cpuinfo)
  const rmemMax = Number(readText('/proc/sys/net/core/rmem_max')) || undefined
  return {
    cpu: model.trim(),
    cpuMHz: mhz ? Math.round(Number(mhz)) : undefined,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    virtualized: hypervisor,
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    kernel: os.release(),
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    rmemMax,
    date: new Date().toISOString(),
  }
}

// Fraction of all CPUs' time idle over `ms` (/proc/stat), or undefined.
async function idleFraction(ms) {
  const sample = () => readText('/proc/stat')?.split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
  const a = sample()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const b = sample()
  if (!a || !b) return undefined
  const total = b.reduce((sum, v, i) => sum + v - a[i], 0)
  return total > 0 ? (b[3] - a[3] + (b[4] - a[4])) / total : undefined
}

// Waits (at most maxSeconds) until the machine was 90% idle for 3 half-second samples in a row.
async function settle(maxSeconds) {
  const start = Date.now()
  let quiet = 0
  let idle
  while (Date.now() - start < maxSeconds * 1000) {
    idle = await idleFraction(500)
    if (idle === undefined) return { waited: 0, idle, quiet: false }
    quiet = idle >= 0.9 ? quiet + 1 : 0
    if (quiet >= 3) return { waited: (Date.now() - start) / 1000, idle, quiet: true }
  }
  return { waited: (Date.now() - start) / 1000, idle, quiet: false }
}

// --- the sender -------------------------------------------------------------------

function haveTaskset() {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// Children alive now, killed if we are interrupted.
const children = new Set()
function track(child) {
  children.add(child)
  child.on('exit', () => children.delete(child))
  return child
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of children) child.kill('SIGKILL')
    process.exit(128 + os.constants.signals[signal])
  })
}

function pinned(o, cpu, file, args) {
  return o.pin ? ['taskset', ['-c', String(cpu), file, ...args]] : [file, args]
}

// /proc/PID/schedstat: [ns on a CPU, ns runnable but waiting for one].
function schedstat(pid) {
  const fields = readText(`/proc/${pid}/schedstat`)?.split(' ')
  return fields ? { ns: process.hrtime.bigint(), run: Number(fields[0]), wait: Number(fields[1]) } : undefined
}

// Runs the sender; `window` = [fromMs, toMs] after its start: over that span
// its CPU use and its wait for its core (other processes on it) are sampled.
function runBlast(o, port, size, seconds, window) {
  const args = [String(port), String(size), String(seconds), String(o.rate), String(o.batch), o.gso ? '1' : '0']
  const [file, argv] = pinned(o, o.senderCpu, blastBinary(), args)
  return new Promise((resolve, reject) => {
    const child = track(spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] }))
    let first
    let last
    const timers = [
      setTimeout(() => (first = schedstat(child.pid)), window[0]),
      setTimeout(() => (last = schedstat(child.pid)), window[1]),
    ]
    const usage = () => {
      if (!first || !last) return undefined
      const span = Number(last.ns - first.ns)
      return { cpuUtilization: (last.run - first.run) / span, runQueueWait: (last.wait - first.wait) / span }
    }
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`sender did not exit within ${seconds + 20} s`))
    }, (seconds + 20) * 1000)
    child.on('error', (error) => {
      clearTimeout(timer)
      timers.forEach(clearTimeout)
      reject(error)
    })
    // 'close', not 'exit': its output has been read by then.
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      timers.forEach(clearTimeout)
      if (code !== 0) return reject(new Error(`sender exited with ${code ?? signal}: ${stderr.trim()}`))
      const line = stdout.trim()
      const fields = Object.fromEntries(line.split(/\s+/).slice(1).map((kv) => kv.split('=')))
      resolve({ line, sent: Number(fields.sent), pps: Number(fields.pps), errors: Number(fields.errs), secs: Number(fields.secs), window: usage() })
    })
  })
}

// --- one receiver measurement --------------------------------------------------------

function measure(o, receiver, size) {
  const senderSeconds = o.warmup + o.seconds + TAIL_S
  const hardMs = Math.round((senderSeconds + 40) * 1000)
  const config = {
    receiver,
    size,
    warmupMs: Math.round(o.warmup * 1000),
    windowMs: Math.round(o.seconds * 1000),
    recvBufferSize: o.rcvbuf,
    ringSize: o.ringSize,
    bufferSize: o.bufferSize,
    touch: o.touch,
    modulePath: o.module,
    hardMs,
  }
  const nodeFlags = o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`, `--cpu-prof-name=${receiver}-${size}-${Date.now()}.cpuprofile`] : []
  const [file, argv] = pinned(o, o.receiverCpu, process.execPath, [...nodeFlags, path.join(here, 'receiver.mjs'), JSON.stringify(config)])
  const child = track(spawn(file, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))

  return new Promise((resolve, reject) => {
    let settled = false
    let exit // { code, signal } once the child exited
    let disconnected = false // the IPC channel is closed: every message has been read
    let result
    let sender
    let senderRun // the sender's promise, once started
    const finish = (error, value) => {
      if (settled) return
      settled = true
      clearTimeout(killTimer)
      clearTimeout(readyTimer)
      clearTimeout(disconnectTimer)
      if (exit === undefined) child.kill('SIGKILL')
      if (!error) return resolve(value)
      // Never leave a sender flooding into the next measurement (it stops by itself).
      Promise.resolve(senderRun).catch(() => {}).then(() => reject(error))
    }
    const decide = () => {
      if (result && sender && exit.code === 0) finish(null, { ...result, sender })
      else finish(new Error(`${receiver} receiver (size ${size}) exited with ${exit.code ?? exit.signal}${result ? '' : ' before reporting'}`))
    }
    // The child bounds itself; this is the backstop.
    const killTimer = setTimeout(() => finish(new Error(`${receiver} receiver (size ${size}) timed out; killed`)), hardMs + 5000)
    const readyTimer = setTimeout(() => finish(new Error(`${receiver} receiver did not bind within 10 s; killed`)), 10_000)
    let disconnectTimer
    child.on('error', (error) => finish(error))
    child.on('disconnect', () => {
      disconnected = true
      if (exit) decide()
    })
    child.on('exit', (code, signal) => {
      exit = { code, signal }
      // 'exit' can come before the last IPC message is read: wait for the channel to close.
      if (disconnected) decide()
      else disconnectTimer = setTimeout(decide, 2000)
    })
    child.on('message', async (message) => {
      if (message.type === 'error') return finish(new Error(`${receiver} receiver (size ${size}): ${message.message}`))
      if (message.type === 'result') result = message
      if (message.type !== 'ready') return
      clearTimeout(readyTimer)
      try {
        child.send({ type: 'go' })
        senderRun = runBlast(o, message.port, size, senderSeconds, [config.warmupMs, config.warmupMs + config.windowMs])
        sender = await senderRun
        if (!settled && child.connected) child.send({ type: 'finish', sent: sender.sent })
      } catch (error) {
        finish(error)
      }
    })
  })
}

// --- reporting -------------------------------------------------------------------------

const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b)
  if (s.length === 0) return null
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtInt = (n) => (n == null ? '–' : Math.round(n).toLocaleString('en-US'))
const fmtK = (n) => (n == null ? '–' : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${Math.round(n / 1e3)} k`)
const fmtPct = (x) => (x == null || Number.isNaN(x) ? '?' : `${(x * 100).toFixed(0)}%`)
const fmtRatio = (r) => (r == null ? '–' : `${r.toFixed(2)}×`)

function accounting(r) {
  const drops = r.sent - r.received
  if (r.receiver === 'ring') {
    const kd = r.stats?.kernelDrops
    const held = kd !== undefined && r.received + kd === r.sent && r.stats.received === r.received
    return { drops, kernelDrops: kd, held }
  }
  return { drops, kernelDrops: r.kernelDropsProc, held: r.kernelDropsProc !== undefined ? r.received + r.kernelDropsProc === r.sent : undefined }
}

// The sender, not the receiver, set the rate (so it is a lower bound) when the
// receiver took at least 97% of what was sent, or used less than 90% of its
// core without waiting for it.
const senderBound = (r) => r.received >= 0.97 * r.sent || (r.window.cpuUtilization < 0.9 && !(r.window.runQueueWait > 0.05))

function summarize(o, results) {
  const rows = []
  for (const size of o.sizes) {
    const bySize = {}
    for (const receiver of o.receivers) {
      const rs = results.filter((r) => r.size === size && r.receiver === receiver).sort((a, b) => a.window.pps - b.window.pps)
      if (rs.length === 0) continue
      // One run stands for all, so that its numbers belong together: the
      // median by rate, or with --pick best the fastest (the least disturbed).
      const r = o.pick === 'best' ? rs[rs.length - 1] : rs[(rs.length - 1) >> 1]
      const acc = accounting(r)
      bySize[receiver] = {
        size,
        receiver,
        runs: rs.length,
        run: r.run,
        offeredPps: r.sender.pps,
        pps: r.window.pps,
        ppsRange: [rs[0].window.pps, rs[rs.length - 1].window.pps],
        lowerBound: senderBound(r),
        cpuNsPerDatagram: r.window.cpuNsPerDatagram,
        cpuUtilization: r.window.cpuUtilization,
        runQueueWait: r.window.runQueueWait,
        sender: r.sender.window,
        sent: r.sent,
        received: r.received,
        drops: acc.drops,
        dropRate: acc.drops / r.sent,
        kernelDrops: acc.kernelDrops,
        accountingHeld: rs.map(accounting).every((a) => a.held === true) ? true : rs.map(accounting).some((a) => a.held === false) ? false : undefined,
        maxRSS: r.maxRSS,
        meanBatch: receiver === 'ring' ? r.stats.received / r.stats.batches : undefined,
        peakReadableLength: receiver === 'readable' ? r.peakReadableLength : undefined,
      }
    }
    const ring = bySize.ring
    if (ring) {
      ring.vsMessage = bySize.message ? ring.pps / bySize.message.pps : undefined
      ring.vsReadable = bySize.readable ? ring.pps / bySize.readable.pps : undefined
    }
    rows.push(...Object.values(bySize))
  }
  return rows
}

function markdown(o, rows) {
  const lines = []
  const runs = o.runs > 1 ? ` (${o.pick === 'best' ? 'best' : 'median'} of ${o.runs})` : ''
  lines.push(`| size | receiver | offered/s | received/s${runs} | CPU ns/datagram | sent − received | kernel drops | received + drops = sent | peak RSS | ÷ 'message' | ÷ Readable |`)
  lines.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: |')
  for (const r of rows) {
    const held = r.accountingHeld === true ? 'yes' : r.accountingHeld === false ? '**no**' : '–'
    const ge = r.lowerBound ? '≥ ' : ''
    lines.push(
      `| ${r.size} B | ${RECEIVERS[r.receiver]} | ${fmtK(r.offeredPps)} | ${ge}${fmtK(r.pps)} | ${fmtInt(r.cpuNsPerDatagram)} | ${fmtInt(r.drops)} (${(r.dropRate * 100).toFixed(1)}%) | ${fmtInt(r.kernelDrops)} | ${held} | ${(r.maxRSS / 2 ** 20).toFixed(0)} MB | ${r.vsMessage === undefined ? '–' : ge + fmtRatio(r.vsMessage)} | ${r.vsReadable === undefined ? '–' : ge + fmtRatio(r.vsReadable)} |`,
    )
  }
  return lines.join('\n')
}

function commandLine() {
  const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)
  return ['node', path.relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/run.mjs', ...process.argv.slice(2)].map(quote).join(' ')
}

// --- main ----------------------------------------------------------------------------------

async function main() {
  // Log ingestion against rsyslog: a benchmark of its own (bench/ingest.mjs).
  if (process.argv.includes('--ingest')) {
    const { main: ingest } = await import('./ingest.mjs')
    return ingest(process.argv.slice(2).filter((arg) => arg !== '--ingest'))
  }
  const o = parseArgs(process.argv.slice(2))
  const facts = machineFacts()
  // Human output goes to stderr when the JSON goes to stdout.
  const out = o.json === '-' ? (s) => process.stderr.write(s + '\n') : (s) => process.stdout.write(s + '\n')

  if (o.receivers.includes('ring') && !fs.existsSync(o.module)) {
    console.error(`${o.module} is missing: build it first (npx tsc -p tsconfig.json)`)
    process.exit(2)
  }
  // Only a source checkout (it has tsconfig.json, the package does not) builds
  // dist/ from lib/; an installed package's file times say nothing about that.
  if (o.module === path.join(root, 'dist', 'index.js') && fs.existsSync(path.join(root, 'tsconfig.json'))) {
    const stale = fs.readdirSync(path.join(root, 'lib')).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).filter((f) => {
      const js = path.join(root, 'dist', f.replace(/\.ts$/, '.js'))
      return !fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(root, 'lib', f)).mtimeMs
    })
    if (stale.length) out(`warning: dist/ is older than lib/ (${stale.join(', ')}): run npx tsc -p tsconfig.json`)
  }
  if (o.pin && !haveTaskset()) {
    out('warning: taskset not found: sender and receivers run unpinned')
    o.pin = false
  }
  if (o.pin && Math.max(o.senderCpu, o.receiverCpu) >= facts.cores) {
    out(`warning: only ${facts.cores} CPU(s): running unpinned`)
    o.pin = false
  }
  // One receive buffer size for every receiver. node:dgram sets SO_RCVBUF,
  // which the kernel caps at rmem_max; dgram-ring may pass the cap
  // (SO_RCVBUFFORCE). Default to the cap, so that both get the same.
  if (o.rcvbuf === undefined) o.rcvbuf = Math.min(4 << 20, facts.rmemMax ?? 4 << 20)
  else if (facts.rmemMax && o.rcvbuf > facts.rmemMax) {
    out(`warning: --rcvbuf ${o.rcvbuf} > rmem_max ${facts.rmemMax}: node:dgram gets rmem_max, dgram-ring gets more (not comparable)`)
  }
  if (o.cpuProf) fs.mkdirSync(o.cpuProf, { recursive: true })
  blastBinary()

  const perMeasure = o.warmup + o.seconds + TAIL_S + 1.2
  const estimate = Math.round(perMeasure * o.sizes.length * o.receivers.length * o.runs)
  out(`# dgram-ring receive benchmark`)
  out(`about ${estimate} s: ${o.runs} run(s) × sizes ${o.sizes.join('/')} B × ${o.receivers.length} receivers, ${o.warmup} s warm-up + ${o.seconds} s window each\n`)

  const results = []
  const failures = []
  for (let run = 1; run <= o.runs; run++) {
    for (const size of o.sizes) {
      for (const receiver of o.receivers) {
        try {
          const settled = o.settle ? await settle(o.settle) : undefined
          if (settled && !settled.quiet) out(`(the machine did not get quiet within ${o.settle} s: measuring anyway)`)
          const r = await measure(o, receiver, size)
          r.settled = settled
          r.run = run
          results.push(r)
          const acc = accounting(r)
          out(
            `run ${run} ${String(size).padStart(5)} B ${receiver.padEnd(8)} ${fmtK(r.window.pps).padStart(8)}/s  ` +
              `${fmtInt(r.window.cpuNsPerDatagram).padStart(6)} ns/dgram  cpu ${(r.window.cpuUtilization * 100).toFixed(0)}% ` +
              `wait ${fmtPct(r.window.runQueueWait)}  sender cpu ${fmtPct(r.sender.window?.cpuUtilization)} wait ${fmtPct(r.sender.window?.runQueueWait)}  ` +
              `sent ${fmtInt(r.sent)} received ${fmtInt(r.received)} kernel drops ${fmtInt(acc.kernelDrops)}` +
              `${acc.held === undefined ? '' : acc.held ? ' (adds up)' : ` (DOES NOT add up: ${r.sent - r.received - (acc.kernelDrops ?? 0)} missing, ${r.queuedBytes} B still queued)`}  ` +
              `${r.window.datagrams === 0 ? 'STALLED: nothing received in the window  ' : ''}` +
              `rss ${(r.maxRSS / 2 ** 20).toFixed(0)} MB${r.stats ? `  batch ${(r.stats.received / r.stats.batches).toFixed(0)}` : ''}${r.drained ? '' : '  (not drained!)'}`,
          )
        } catch (error) {
          failures.push({ run, size, receiver, error: String(error.message ?? error) })
          out(`run ${run} ${size} B ${receiver}: FAILED: ${error.message ?? error}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }

  const rows = summarize(o, results)
  const sender = `bench/blast.c, sendmmsg batch ${o.batch}${o.gso ? ', UDP GSO' : ''}${o.rate ? `, paced at ${o.rate}/s` : ', unpaced'}`
  out('')
  out(markdown(o, rows))
  out('')
  out(`Command: \`${commandLine()}\``)
  out(
    `Machine: ${facts.cpu}${facts.cpuMHz ? ` @ ${facts.cpuMHz} MHz` : ''}, ${facts.cores} cores${facts.virtualized ? ' (VM)' : ''}; ` +
      `Node ${facts.node} (V8 ${facts.v8}); ${facts.platform}; load average at start ${facts.loadavg.join(' ')}`,
  )
  out(
    `Setup: loopback 127.0.0.1; sender ${sender}${o.pin ? ` on CPU ${o.senderCpu}` : ''}; receivers${o.pin ? ` on CPU ${o.receiverCpu}` : ' unpinned'}, ` +
      `one process each, receive buffer ${o.rcvbuf} B (SO_RCVBUF) for all; ${o.warmup} s warm-up, ${o.seconds} s window; ` +
      `each datagram's ${o.touch === 'none' ? 'payload untouched' : o.touch === 'data' ? 'payload length read' : 'payload length and source address read'}` +
      `${o.ringSize ? `; ringSize ${o.ringSize}` : ''}${o.bufferSize ? `; bufferSize ${o.bufferSize}` : ''}.`,
  )
  out(
    `received/s and CPU ns/datagram are over the window (process.cpuUsage user+sys ÷ datagrams); drops and accounting over the whole sender run ` +
      `(dgram-ring: stats().kernelDrops; node:dgram: the socket's drops in /proc/net/udp); peak RSS is resourceUsage().maxRSS.`,
  )
  const ringRows = rows.filter((r) => r.receiver === 'ring' && r.vsMessage !== undefined)
  let verdict
  if (ringRows.length) {
    const short = ringRows.filter((r) => r.vsMessage < 2.5)
    verdict = short.length === 0 ? 'met' : short.every((r) => r.lowerBound) ? 'inconclusive' : 'not met'
    const list = ringRows.map((r) => `${r.size} B ${r.lowerBound ? '≥ ' : ''}${fmtRatio(r.vsMessage)}`).join(', ')
    out(
      `Target, dgram-ring through for await ≥ 2.5× node:dgram's saturated rate: **${verdict}** (${list})` +
        (verdict === 'inconclusive' ? ': the short ones were held back by the sender, not by dgram-ring.' : '.'),
    )
  }
  const contended = rows.filter((r) => r.runQueueWait > 0.05 || r.sender?.runQueueWait > 0.05)
  if (contended.length) {
    out(
      `Caution: other processes held a pinned core for part of the window (receiver / sender runnable but waiting): ` +
        `${contended.map((r) => `${r.receiver} ${r.size} B ${fmtPct(r.runQueueWait)} / ${fmtPct(r.sender?.runQueueWait)}`).join(', ')}; ` +
        `rerun on a quiet machine, or with --settle, or --runs N --pick best.`,
    )
  }
  const bound = rows.filter((r) => r.lowerBound)
  if (bound.length) {
    out(`≥: the receiver kept up with the sender (took ≥ 97% of what was sent, or used < 90% of its core without waiting for it), so the sender set the rate: ${bound.map((r) => `${r.receiver} ${r.size} B (CPU ${fmtPct(r.cpuUtilization)}, ${(100 - r.dropRate * 100).toFixed(1)}% received)`).join(', ')}.`)
  }
  if (failures.length) out(`\n${failures.length} measurement(s) FAILED:\n${failures.map((f) => `- run ${f.run} ${f.size} B ${f.receiver}: ${f.error}`).join('\n')}`)

  if (o.json !== undefined) {
    const doc = JSON.stringify({ command: commandLine(), machine: facts, options: { ...o, sender }, verdict, summary: rows, results, failures }, null, 2)
    if (o.json === '-') process.stdout.write(doc + '\n')
    else fs.writeFileSync(o.json, doc + '\n')
  }
  process.exitCode = failures.length ? 1 : 0
}

main().catch((error) => {
  // A missing tool is one line; anything else keeps its stack for the bug report.
  console.error(error.code === 'ERR_BENCH_NO_COMPILER' ? error.message : error)
  process.exit(1)
})
