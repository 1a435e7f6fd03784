#!/usr/bin/env node
// `npm run bench` (or `dgram-ring bench`): dgram-ring against node:dgram and a C
// receiver on loopback.
//
// One native sender (bench/blast.c, sendmmsg + UDP GSO) floods 127.0.0.1; each
// receiver runs in its own child process, so CPU and RSS are its own:
//   message   node:dgram, counting in 'message' (its saturated rate)
//   readable  node:dgram pushed into an object-mode Readable, read with for await
//   ring      dgram-ring's listen(), read with for await
//   batches   dgram-ring's listen(), a batch at a time through stream.batches()
//   recycle   the same through stream.batches({recycle: true}): each batch's memory
//             back to the ring as the loop moves on
//   c         bench/recv_ref.c: poll + non-blocking recvmmsg with dgram-ring's
//             control messages, in C: the reference for CPU a datagram
//   c-gro     the same with UDP_GRO, counting segments: the reference for coalesce
// ring, batches and recycle rows are measured on every backend (--backends), without and
// with coalesce (--coalesce); a row this build cannot open is named, not run.
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
//   --receivers LIST     any of message,readable,ring,batches,recycle,c,c-gro (default all)
//   --backends LIST      dgram-ring backends of the ring and batches rows (default: every
//                        backend the build has that opens on this machine)
//   --coalesce off|on|both  ring and batches rows without / with coalesce: true (UDP GRO)
//                        (default both)
//   --rcvbuf BYTES       SO_RCVBUF of every receiver (default min(4 MiB, net.core.rmem_max))
//   --ring-size N        dgram-ring's ringSize, and the C receiver's ring (default: the library's)
//   --buffer-size BYTES  dgram-ring's bufferSize, and the C receiver's without GRO (default: the
//                        library's; the command's is 65535)
//   --touch data|none|all  what the loop reads of each datagram: payload length (default),
//                        nothing, or also the source address and port
//   --no-gso             plain sendmmsg sender (it offers ~350k datagrams/s at most)
//   --batch N            messages a sendmmsg call, of 64 GSO segments each (default 8)
//   --rate PPS           pace the sender (default: as fast as it goes)
//   --sender-cpu N       core of the sender (default 0); --receiver-cpu N: of the receivers (default 1)
//   --no-pin             do not pin (taskset) at all
//   --side-by-side N     instead of rows in turn: each dgram-ring row (without coalesce) N times at
//                        once with the C receiver on the receiver core, each with its own sender
//                        (--rate, default 300000), windows opened together: the CPU ratio to C
//                        on a machine whose speed drifts (bench/side-by-side.mjs)
//   --settle [MAX_S]     before each measurement wait (at most MAX_S, default 30) until the
//                        machine is 90% idle: for shared machines
//   --module PATH        the dgram-ring build to measure (default dist/index.js): to compare a copy
//   --cpu-prof DIR       write a V8 CPU profile of every receiver into DIR
//   --send               the sending benchmark instead: dgram-ring's send()/sender()
//                        against node:dgram's send() (bench/send.mjs; --send --help)
//   --workers LIST       listenWorkers() with these worker counts instead (e.g. 1,2; bench/workers.mjs;
//                        --workers 1 --help for its options)
//   --ingest             the log ingestion benchmark instead: dgram-ring listen against
//                        rsyslog (bench/ingest.mjs; --ingest --help for its options)
//   --jetstream          the JetStream benchmark instead: listen --jetstream into R1 and
//                        R3 streams (bench/jetstream.mjs; --jetstream --help for its options)
//   --json [FILE]        also write the results as JSON to FILE (no FILE: JSON on stdout,
//                        the report on stderr)
//
// Exit code: 0 on success, 1 if a child (sender or receiver) failed or timed out,
// 2 for a bad option.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { blastBinary, recvRefBinary } from './blast.mjs'
import { TAIL_S, haveTaskset, isCReceiver, measure, readText, variantName } from './measure.mjs'
import { RECEIVERS, RING_RECEIVERS, backendComparison, contended, fmtPct, markdown, progressLine, summarize, targets } from './report.mjs'
import { numberOption, usage as printUsage } from './options.mjs'
import { sideBySide, sideBySideReport } from './side-by-side.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')

// --- options ------------------------------------------------------------------

const usage = (code) => printUsage(import.meta.url, code)

function parseArgs(argv) {
  const o = {
    seconds: 3,
    warmup: 1,
    sizes: [64, 512, 1400],
    runs: 1,
    receivers: Object.keys(RECEIVERS),
    backends: undefined, // undefined: every backend the build has that opens here
    coalesce: [false, true],
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
    sideBySide: 0, // pairs a dgram-ring row with the C receiver at once; 0: rows in turn
  }
  const number = numberOption
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
      case '--backends': o.backends = String(next()).split(','); break
      case '--coalesce': {
        const choice = next()
        const values = { off: [false], on: [true], both: [false, true] }[choice]
        if (!values) { console.error(`--coalesce: expected off, on or both, got ${choice}`); process.exit(2) }
        o.coalesce = values
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
      case '--side-by-side': o.sideBySide = Math.floor(number(arg, next(), 1, 20)); break
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

// --- reporting ---------------------------------------------------------------------------

function commandLine() {
  const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)
  return ['node', path.relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/run.mjs', ...process.argv.slice(2)].map(quote).join(' ')
}

// With --json: the document on stdout ('-') or into the file.
function writeJson(o, document) {
  if (o.json === undefined) return
  const text = JSON.stringify(document, null, 2) + '\n'
  if (o.json === '-') process.stdout.write(text)
  else fs.writeFileSync(o.json, text)
}

// --- the rows -------------------------------------------------------------------------------

// Opens and closes a dgram-ring socket: undefined if it opened, else why not.
async function opens(ring, options) {
  try {
    const stream = await ring.listen(options)
    await stream.close()
    return undefined
  } catch (error) {
    return error.message
  }
}

// The dgram-ring rows this build can open here, a { receiver, backend,
// coalesce } each, and a line for each row it cannot.
async function ringVariants(o, receivers) {
  const ring = createRequire(import.meta.url)(o.module)
  const built = ring.backends
  const notes = []
  if (o.backends === undefined && !built.includes('io_uring')) notes.push(`io_uring: not in this build (it has ${built.join(', ')}): no io_uring rows`)
  const backends = []
  for (const backend of o.backends ?? built) {
    if (!built.includes(backend)) notes.push(`${backend}: not in this build (it has ${built.join(', ')}): no ${backend} rows`)
    else {
      const why = await opens(ring, { address: '127.0.0.1', port: 0, backend })
      if (why) notes.push(`${backend}: does not open on this machine (${why}): no ${backend} rows`)
      else backends.push(backend)
    }
  }
  // listen() reads each option it knows exactly once and ignores any other:
  // a build that never reads `coalesce` does not have it.
  const coalesceMissing = {}
  if (o.coalesce.includes(true)) {
    for (const backend of backends) {
      let read = false
      const options = { address: '127.0.0.1', port: 0, backend, get coalesce() { read = true; return true } }
      const why = await opens(ring, options)
      if (!read) coalesceMissing[backend] = 'not available in this build (listen() does not read a coalesce option)'
      else if (why) coalesceMissing[backend] = `not available: ${why}`
    }
  }
  const variants = []
  for (const receiver of receivers) {
    for (const backend of backends) {
      for (const coalesce of o.coalesce) {
        if (coalesce && coalesceMissing[backend]) notes.push(`${variantName({ receiver, backend, coalesce })}: ${coalesceMissing[backend]}`)
        else variants.push({ receiver, backend, coalesce })
      }
    }
  }
  return { variants, notes }
}

// --- main ----------------------------------------------------------------------------------

async function main() {
  // Sending, against node:dgram's send(): a benchmark of its own (bench/send.mjs).
  if (process.argv.includes('--send')) {
    const { main: send } = await import('./send.mjs')
    return send(process.argv.slice(2).filter((arg) => arg !== '--send'))
  }
  // Log ingestion against rsyslog: a benchmark of its own (bench/ingest.mjs).
  if (process.argv.includes('--ingest')) {
    const { main: ingest } = await import('./ingest.mjs')
    return ingest(process.argv.slice(2).filter((arg) => arg !== '--ingest'))
  }
  // From the wire into an acknowledged JetStream stream: a benchmark of its own (bench/jetstream.mjs).
  if (process.argv.includes('--jetstream')) {
    const { main: jetstream } = await import('./jetstream.mjs')
    return jetstream(process.argv.slice(2).filter((arg) => arg !== '--jetstream'))
  }
  // One ring a worker thread, 1, 2, … of them on one port: a benchmark of its own (bench/workers.mjs).
  if (process.argv.some((arg) => arg === '--workers' || arg.startsWith('--workers='))) {
    const { main: workers } = await import('./workers.mjs')
    return workers(process.argv.slice(2))
  }
  const o = parseArgs(process.argv.slice(2))
  const facts = machineFacts()
  // Human output goes to stderr when the JSON goes to stdout.
  const out = o.json === '-' ? (s) => process.stderr.write(s + '\n') : (s) => process.stdout.write(s + '\n')

  const measuresRing = o.receivers.some((r) => RING_RECEIVERS.includes(r))
  if (measuresRing && !fs.existsSync(o.module)) {
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
  // (SO_RCVBUFFORCE), as may the C receivers. Default to the cap, so that all get the same.
  if (o.rcvbuf === undefined) o.rcvbuf = Math.min(4 << 20, facts.rmemMax ?? 4 << 20)
  else if (facts.rmemMax && o.rcvbuf > facts.rmemMax) {
    out(`warning: --rcvbuf ${o.rcvbuf} > rmem_max ${facts.rmemMax}: node:dgram gets rmem_max, dgram-ring and the C receivers more (not comparable)`)
  }
  if (o.cpuProf) fs.mkdirSync(o.cpuProf, { recursive: true })
  blastBinary()
  if (o.receivers.some(isCReceiver)) recvRefBinary()

  // The rows in the order of --receivers; ring and batches once a backend and coalesce.
  const ring = measuresRing ? await ringVariants(o, o.receivers.filter((r) => RING_RECEIVERS.includes(r))) : { variants: [], notes: [] }
  const variants = o.receivers.flatMap((receiver) => (RING_RECEIVERS.includes(receiver) ? ring.variants.filter((v) => v.receiver === receiver) : [{ receiver }]))

  if (o.sideBySide > 0) {
    out(`# dgram-ring receive benchmark, side by side with the C receiver`)
    for (const note of ring.notes) out(note)
    recvRefBinary()
    const result = await sideBySide(o, variants.filter((v) => RING_RECEIVERS.includes(v.receiver)), out)
    out('')
    out(sideBySideReport(o, result))
    out('')
    out(`Command: \`${commandLine()}\``)
    out(`Machine: ${facts.cpu}, ${facts.cores} cores${facts.virtualized ? ' (VM)' : ''}; Node ${facts.node}; ${facts.platform}; load average at start ${facts.loadavg.join(' ')}`)
    writeJson(o, { command: commandLine(), machine: facts, options: o, sideBySide: result })
    process.exitCode = result.rows.some((row) => row.failures.length > 0) ? 1 : 0
    return
  }

  const perMeasure = o.warmup + o.seconds + TAIL_S + 1.2
  const estimate = Math.round(perMeasure * o.sizes.length * variants.length * o.runs)
  out(`# dgram-ring receive benchmark`)
  for (const note of ring.notes) out(note)
  out(`about ${estimate} s: ${o.runs} run(s) × sizes ${o.sizes.join('/')} B × ${variants.length} rows, ${o.warmup} s warm-up + ${o.seconds} s window each\n`)

  const results = []
  const failures = []
  for (let run = 1; run <= o.runs; run++) {
    for (const size of o.sizes) {
      for (const variant of variants) {
        try {
          const settled = o.settle ? await settle(o.settle) : undefined
          if (settled && !settled.quiet) out(`(the machine did not get quiet within ${o.settle} s: measuring anyway)`)
          const r = await measure(o, variant, size)
          r.settled = settled
          r.run = run
          results.push(r)
          out(progressLine(r))
        } catch (error) {
          failures.push({ run, size, variant: variantName(variant), error: String(error.message ?? error) })
          out(`run ${run} ${size} B ${variantName(variant)}: FAILED: ${error.message ?? error}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }

  const rows = summarize(o, variants, results)
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
    `received/s and CPU ns/datagram are over the window (user+sys CPU ÷ datagrams: process.cpuUsage, getrusage in C); drops and accounting over the whole sender run ` +
      `(dgram-ring: stats().kernelDrops; C: SO_MEMINFO drops; node:dgram: the socket's drops in /proc/net/udp; with GRO the kernel drops whole GSO packets, ` +
      `"× N" datagrams each); peak RSS is the process's maxRSS. × node:dgram: received/s ÷ node:dgram 'message' in the same run. ` +
      `CPU ÷ C: CPU ns/datagram ÷ the C receiver's with the same cmsgs (c), or with UDP_GRO (c-gro) for the coalesce rows.`,
  )
  const verdicts = targets(rows)
  if (verdicts.length) {
    out('')
    out('Targets:')
    for (const t of verdicts) out(`- ${t.target}: **${t.verdict}** (${t.figures.join(', ')})${t.contended ? ', on contended cores (see Caution)' : ''}`)
    if (verdicts.some((t) => t.verdict === 'lower bound')) out('  lower bound: the rows short of the target kept up with the sender, which set the rate, not dgram-ring.')
  }
  for (const note of ring.notes) out(`Not measured: ${note}.`)
  const backends = backendComparison(rows)
  if (backends.length) {
    out('')
    out('Backends (≈: a row kept up with the sender):')
    for (const line of backends) out(`- ${line}`)
  }
  const disturbed = rows.filter(contended)
  if (disturbed.length) {
    out(
      `Caution: other processes held a pinned core for part of the window (receiver / sender runnable but waiting): ` +
        `${disturbed.map((r) => `${r.variant} ${r.size} B ${fmtPct(r.runQueueWait)} / ${fmtPct(r.sender?.runQueueWait)}`).join(', ')}; ` +
        `rerun on a quiet machine, or with --settle, or --runs N --pick best.`,
    )
  }
  const bound = rows.filter((r) => r.lowerBound)
  if (bound.length) {
    out(`≥: the receiver kept up with the sender (took ≥ 97% of what was sent, or used < 90% of its core without waiting for it), so the sender set the rate: ${bound.map((r) => `${r.variant} ${r.size} B (CPU ${fmtPct(r.cpuUtilization)}, ${(100 - r.dropRate * 100).toFixed(1)}% received)`).join(', ')}.`)
  }
  if (failures.length) out(`\n${failures.length} measurement(s) FAILED:\n${failures.map((f) => `- run ${f.run} ${f.size} B ${f.variant}: ${f.error}`).join('\n')}`)

  writeJson(o, { command: commandLine(), machine: facts, options: { ...o, sender }, targets: verdicts, notRun: ring.notes, summary: rows, results, failures })
  process.exitCode = failures.length ? 1 : 0
}

main().catch((error) => {
  // A missing tool is one line; anything else keeps its stack for the bug report.
  console.error(error.code === 'ERR_BENCH_NO_COMPILER' ? error.message : error)
  process.exit(1)
})
