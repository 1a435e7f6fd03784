// `npm run bench -- --workers 1,2 [options]` (or node bench/workers.mjs): dgram-ring's
// listenWorkers() with 1, 2, … worker threads, one ring each on one port, against
// the same sender (bench/blast.c, one flow: hence `--balance spread` by default,
// since with 'flow' one sender's datagrams all go to one worker).
//
// For each worker count: the group starts, the sender floods 127.0.0.1 for
// warm-up + window + a tail, and the window measures datagrams a second and the
// process's CPU a datagram (every thread: the workers' and the main thread's,
// which only asks for stats). Then the group closes (draining) and the books
// must balance: received + kernelDrops + discarded === sent, summed over the
// workers. Prints a Markdown table, the command and machine facts.
//
// A machine with 2 cores cannot show scaling: the sender takes one core, so two
// workers share the other (pinned: the sender on --sender-cpu, the receivers on
// every other core). Compare worker counts on a machine with cores to spare.
//
//   --workers LIST       worker counts (default 1,2)
//   --balance flow|spread  (default spread)
//   --seconds S          measured window (default 3); --warmup S before it (default 1)
//   --size BYTES         datagram payload (default 512)
//   --backend NAME       every worker's ring backend (default: the library's choice)
//   --rate PPS           pace the sender (default: as fast as it goes)
//   --no-gso             plain sendmmsg sender
//   --sender-cpu N       the sender's core (default 0); --no-pin: do not pin
//   --module PATH        the dgram-ring build to measure (default dist/index.js)
//
// Exit code: 0 on success (books balanced), 1 if a run failed, 2 for a bad option.
import { execFile, execFileSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { blastBinary } from './blast.mjs'
import { numberOption, usage as printUsage } from './options.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const TAIL_S = 0.5

const usage = (code) => printUsage(import.meta.url, code)

function parseArgs(argv) {
  const o = { workers: [1, 2], balance: 'spread', seconds: 3, warmup: 1, size: 512, backend: undefined, rate: 0, gso: true, senderCpu: 0, pin: true, module: path.join(root, 'dist', 'index.js') }
  const number = numberOption
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]
    let value
    const eq = arg.indexOf('=')
    if (arg.startsWith('--') && eq > 0) [arg, value] = [arg.slice(0, eq), arg.slice(eq + 1)]
    const next = () => (value !== undefined ? value : argv[++i])
    switch (arg) {
      case '--workers': o.workers = String(next()).split(',').map((s) => Math.floor(number(arg, s, 1, 1024))); break
      case '--balance': o.balance = next(); if (!['flow', 'spread'].includes(o.balance)) usage(2); break
      case '--seconds': o.seconds = number(arg, next(), 0.2, 600); break
      case '--warmup': o.warmup = number(arg, next(), 0, 60); break
      case '--size': o.size = Math.floor(number(arg, next(), 8, 65507)); break
      case '--backend': o.backend = next(); break
      case '--rate': o.rate = number(arg, next(), 0, 1e9); break
      case '--no-gso': o.gso = false; break
      case '--sender-cpu': o.senderCpu = Math.floor(number(arg, next(), 0, 4095)); break
      case '--no-pin': o.pin = false; break
      case '--module': o.module = path.resolve(next()); break
      case '-h': case '--help': usage(0); break
      default: console.error(`unknown option ${arg}`); usage(2)
    }
  }
  return o
}

function haveTaskset() {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// The sender, bounded by its own clock: resolves with what it sent.
function send(o, port, seconds, pin) {
  const args = [String(port), String(o.size), String(seconds), String(o.rate), '8', o.gso ? '1' : '0']
  const [file, argv] = pin ? ['taskset', ['-c', String(o.senderCpu), blastBinary(), ...args]] : [blastBinary(), args]
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: (seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(Object.assign(error, { stderr }))
      const fields = Object.fromEntries(stdout.trim().split(/\s+/).slice(1).map((kv) => kv.split('=')))
      resolve(Number(fields.sent))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function measure(ring, o, n, pin) {
  const options = { address: '127.0.0.1', balance: o.balance, recvBufferSize: 4 << 20 }
  if (o.backend) options.backend = o.backend
  const group = await ring.listenWorkers(n, options, new URL('./workers-worker.mjs', import.meta.url))
  const errors = []
  group.on('error', (error) => errors.push(error))
  try {
    const sending = send(o, group.port, o.warmup + o.seconds + TAIL_S, pin)
    await sleep(o.warmup * 1000)
    const snap = async () => ({ stats: await group.stats(), cpu: process.cpuUsage(), ns: process.hrtime.bigint() })
    const start = await snap()
    await sleep(o.seconds * 1000)
    const end = await snap()
    const sent = await sending
    await group.close()
    const final = await group.stats()
    const datagrams = end.stats.received - start.stats.received
    const seconds = Number(end.ns - start.ns) / 1e9
    const cpuUs = end.cpu.user - start.cpu.user + (end.cpu.system - start.cpu.system)
    return {
      workers: n,
      pps: datagrams / seconds,
      cpuNsPerDatagram: datagrams > 0 ? (cpuUs * 1000) / datagrams : null,
      cores: cpuUs / 1e6 / seconds,
      shares: final.workers.map((w) => w.received / Math.max(1, final.received)),
      sent,
      received: final.received,
      kernelDrops: final.kernelDrops ?? 0,
      discarded: final.discarded,
      exact: final.received + (final.kernelDrops ?? 0) + final.discarded === sent,
      errors: errors.map((e) => `worker ${e.index}: ${e.message}`),
    }
  } finally {
    await group.close()
  }
}

export async function main(argv = process.argv.slice(2)) {
  const o = parseArgs(argv)
  if (process.platform !== 'linux') {
    console.error('bench --workers: listenWorkers() needs Linux (SO_REUSEPORT groups)')
    process.exit(2)
  }
  const ring = createRequire(import.meta.url)(o.module)
  const pin = o.pin && haveTaskset()
  const cores = os.availableParallelism?.() ?? os.cpus().length
  if (pin) {
    // The receivers (this process and its worker threads) on every core but the sender's.
    const others = Array.from({ length: cores }, (_, i) => i).filter((i) => i !== o.senderCpu)
    if (others.length > 0) execFileSync('taskset', ['-a', '-p', '-c', others.join(','), String(process.pid)], { stdio: 'ignore' })
  }
  const rows = []
  let failed = false
  for (const n of o.workers) {
    try {
      const row = await measure(ring, o, n, pin)
      if (!row.exact || row.errors.length > 0) failed = true
      rows.push(row)
      process.stderr.write(`workers ${n}: ${Math.round(row.pps)} datagrams/s\n`)
    } catch (error) {
      failed = true
      console.error(`workers ${n}: ${error.stack ?? error}`)
    }
  }
  const fmt = (v, d = 0) => (v === null || v === undefined ? '–' : v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }))
  console.log(`| workers | balance | datagrams/s | CPU ns/datagram | cores busy | share by worker | kernel drops | sent = received + drops + discarded |`)
  console.log(`| ---: | --- | ---: | ---: | ---: | --- | ---: | --- |`)
  for (const r of rows) {
    const shares = r.shares.map((s) => `${Math.round(s * 100)}%`).join(' / ')
    const books = `${r.exact ? 'yes' : 'NO'} (${fmt(r.sent)} = ${fmt(r.received)} + ${fmt(r.kernelDrops)} + ${fmt(r.discarded)})`
    console.log(`| ${r.workers} | ${o.balance} | ${fmt(r.pps)} | ${fmt(r.cpuNsPerDatagram)} | ${fmt(r.cores, 2)} | ${shares} | ${fmt(r.kernelDrops)} | ${books} |`)
    for (const e of r.errors) console.log(`  error: ${e}`)
  }
  console.log('')
  const command = argv.some((a) => a.startsWith('--workers')) ? argv : ['--workers', o.workers.join(','), ...argv]
  console.log(`Command: node bench/run.mjs ${command.join(' ')}`)
  console.log(`Machine: ${cores} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}, Linux ${os.release()}, Node ${process.version}; ${o.size}-byte datagrams, ${o.gso ? 'GSO' : 'plain sendmmsg'} sender${pin ? ` pinned to core ${o.senderCpu}, receivers on the others` : ', unpinned'}`)
  if (cores <= 2) console.log(`Note: with ${cores} cores and the sender on one of them, more workers share what is left: this machine cannot show scaling.`)
  if (failed) process.exitCode = 1
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main()
