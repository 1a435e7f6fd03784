#!/usr/bin/env node
// `npm run soak -- --seconds 60`: a flood against a slow consumer, for a while.
//
// The native sender (bench/blast.c, sendmmsg, to 127.0.0.1) floods one
// dgram-ring stream; the consumer reads it with for-await and sleeps `--delay`
// ms every `--every` datagrams, so it is always behind: credits run out, the
// kernel's queue overflows and drops, over and over. The sender runs in
// slices of `--slice` seconds, one process each, so that what it sent is
// exact (it prints its count when it exits) and known as the run goes.
//
// Once a second: datagrams sent (last slice's rate), received, kernel drops,
// what waits in the stream, RSS and the JS heap. At the end, two checks:
//   memory      RSS must not keep growing after warm-up. Samples every 250 ms
//               during the flood; the flood is cut in thirds: warm-up, middle,
//               last. growth = max(RSS in the last third) - max(RSS in the
//               middle third) must be <= max(--rss-tolerance MiB,
//               --rss-tolerance-pct % of the middle third's max); 8 MiB and
//               5 % by default. Maxima, not single samples, so that where a
//               sample falls in a GC's saw-tooth does not decide; the middle
//               third, not the start, so that warm-up (code, heap, malloc
//               arenas settling) does not count. The young generation is
//               pinned at its full size (see YOUNG_GEN below), which removes
//               the one large step V8 otherwise takes at any time; what is
//               left measured 0.0-0.3 MiB of growth over 20 and 60 s runs
//               (85 MiB RSS), so 8 MiB is >25x the noise, yet a leak of
//               L bytes a datagram adds about L x (datagrams in a third):
//               at the ~200k/s this consumer manages on 2 cores, the last
//               third of a 20 s run sees ~1.3 M datagrams, so ~6 bytes a
//               datagram (or one leaked 2 KiB slot in ~300) fails the run.
//   accounting  after the flood, reading until nothing arrives for
//               --idle-ms, then close(): received + kernelDrops + discarded === sent, to
//               the datagram, and the consumer saw every datagram received.
// Exit code 0 when both hold, 1 when one does not, 2 if the run itself failed
// (sender error, timeout). Linux only (blast.c, SO_MEMINFO drop counter).
//
//   node bench/soak.mjs [--seconds 60] [--slice 1] [--size 64] [--rate 0]
//       [--batch 64] [--every 256] [--delay 1] [--ring-size 256]
//       [--rcvbuf BYTES] [--rss-tolerance 8] [--rss-tolerance-pct 5]
//       [--idle-ms 1000] [--sender-cpu N] [--json FILE]
// Build first (npm run build, or tsc and an addon); a 20 s run suits CI.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

// V8 grows the young generation in steps (semi-spaces of 1, 2, 4, 8, 16 MiB
// on 64-bit), each a jump of RSS whenever the allocation rate asks for it, at
// any point of the run: noise as large as what the RSS check looks for. So
// the soak runs with the young generation at its default maximum from the
// start (re-executing itself with the flags unless they were given).
const YOUNG_GEN = ['--min-semi-space-size=16', '--max-semi-space-size=16']
if (!process.execArgv.some((f) => /^--(min|max)[-_]semi[-_]space[-_]size/.test(f))) {
  const argv = process.argv.slice(2)
  const at = argv.findIndex((x) => /^--seconds(=|$)/.test(x))
  const seconds = (at < 0 ? 60 : Number(argv[at].includes('=') ? argv[at].split('=')[1] : argv[at + 1])) || 60
  const child = spawnSync(process.execPath, [...YOUNG_GEN, ...process.execArgv, fileURLToPath(import.meta.url), ...argv], {
    stdio: 'inherit',
    timeout: (seconds + 180) * 1000,
  })
  if (child.error) console.error(`soak: ${child.error.message}`)
  process.exit(child.status ?? 2)
}
const { blast, ring, sleep } = await import('../test/lib/helpers.mjs')

const { values: a } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    slice: { type: 'string', default: '1' },
    size: { type: 'string', default: '64' },
    rate: { type: 'string', default: '0' },
    batch: { type: 'string', default: '64' },
    every: { type: 'string', default: '256' },
    delay: { type: 'string', default: '1' },
    'ring-size': { type: 'string', default: '256' },
    rcvbuf: { type: 'string', default: '0' },
    'rss-tolerance': { type: 'string', default: '8' },
    'rss-tolerance-pct': { type: 'string', default: '5' },
    'idle-ms': { type: 'string', default: '1000' },
    'sender-cpu': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (a.help) {
  const text = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n')
  console.log(text.slice(1, text.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'))
  process.exit(0)
}
const num = (name, min, max) => {
  const v = Number(a[name])
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`soak: --${name} must be a number in [${min}, ${max}], got ${a[name]}`)
    process.exit(2)
  }
  return v
}
const o = {
  seconds: num('seconds', 3, 24 * 3600),
  slice: Math.max(0.25, Math.round(num('slice', 0.25, 60) * 8) / 8),
  size: num('size', 1, 65507),
  rate: num('rate', 0, 1e9),
  batch: num('batch', 1, 1024),
  every: Math.floor(num('every', 1, 1e9)),
  delay: num('delay', 0, 10_000),
  ringSize: Math.floor(num('ring-size', 1, 65536)),
  rcvbuf: Math.floor(num('rcvbuf', 0, 2 ** 31 - 1)),
  rssTolerance: num('rss-tolerance', 0, 1e6) * 2 ** 20,
  rssTolerancePct: num('rss-tolerance-pct', 0, 1000),
  idleMs: num('idle-ms', 100, 60_000),
  senderCpu: a['sender-cpu'] === undefined ? undefined : Math.floor(num('sender-cpu', 0, 4096)),
}
if (process.platform !== 'linux') {
  console.error('soak: Linux only (the flood sender and the kernel drop counter)')
  process.exit(2)
}

// Whatever happens, the process ends: the flood, the drain (bounded below)
// and some slack for slow machines.
const watchdog = setTimeout(() => {
  console.error('soak: FAILED: the run did not finish in time')
  process.exit(2)
}, (o.seconds + 120) * 1000)
watchdog.unref()

const MiB = (bytes) => (bytes / 2 ** 20).toFixed(1)
const stream = await ring.listen({
  address: '127.0.0.1',
  ringSize: o.ringSize,
  ...(o.rcvbuf > 0 ? { recvBufferSize: o.rcvbuf } : {}),
})
const { port } = stream.address()
console.log(
  `soak: ${o.seconds} s flood of ${o.size}-byte datagrams (${o.rate ? `${o.rate} pps` : 'as fast as it goes'}, ` +
    `${o.slice} s slices) to 127.0.0.1:${port}; backend ${stream.backend}, ringSize ${o.ringSize}; ` +
    `consumer sleeps ${o.delay} ms every ${o.every}; node ${process.version} ${process.execArgv.join(' ')}, pid ${process.pid}`,
)

// --- the slow consumer ---------------------------------------------------
let consumed = 0
let consumedBytes = 0
const consumer = (async () => {
  for await (const d of stream) {
    consumed++
    consumedBytes += d.data.length
    if (consumed % o.every === 0) await sleep(o.delay)
  }
})()
let consumerError
consumer.catch((error) => (consumerError = error))

// --- samples and the once-a-second line ----------------------------------
const t0 = performance.now()
const elapsed = () => (performance.now() - t0) / 1000
const samples = [] // { t, rss } during the flood
let floodOn = true
let sent = 0
let sendErrors = 0
let lastSlicePps = 0
let slices = 0
const sampler = setInterval(() => {
  if (floodOn) samples.push({ t: elapsed(), rss: process.memoryUsage.rss() })
}, 250)
let last = { t: 0, received: 0, drops: 0 }
let maxRssSeen = 0
const header = '   t s    sent/s    recv/s   drops/s  queued  posted   RSS MiB  heap MiB'
console.log(header)
const printer = setInterval(() => {
  const s = stream.stats()
  const t = elapsed()
  const m = process.memoryUsage()
  maxRssSeen = Math.max(maxRssSeen, m.rss)
  const dt = t - last.t
  const drops = s.kernelDrops ?? 0
  console.log(
    [
      t.toFixed(1).padStart(6),
      String(Math.round(lastSlicePps)).padStart(9),
      String(Math.round((s.received - last.received) / dt)).padStart(9),
      String(Math.round((drops - last.drops) / dt)).padStart(9),
      String(stream.readableLength).padStart(7),
      String(s.posted).padStart(7),
      MiB(m.rss).padStart(9),
      MiB(m.heapUsed).padStart(9),
    ].join(' '),
  )
  last = { t, received: s.received, drops }
}, 1000)

// --- the flood, in slices ------------------------------------------------
let runError
const floodMs = o.seconds * 1000
const maxSlices = Math.ceil(o.seconds / o.slice) + 1
try {
  while (slices < maxSlices) {
    // Slice lengths in eighths of a second: exact in binary, so the helper's
    // (seconds + 30) * 1000 ms timeout is a whole number.
    const left = Math.floor(((floodMs - (performance.now() - t0)) / 1000) * 8) / 8
    if (left <= 0) break
    const r = await blast({ port, size: o.size, seconds: Math.min(o.slice, left), rate: o.rate, batch: o.batch, cpu: o.senderCpu })
    if (!Number.isSafeInteger(r.sent)) throw new Error(`unexpected sender output: ${r.line}`)
    sent += r.sent
    sendErrors += r.errors
    lastSlicePps = r.pps
    slices++
  }
} catch (error) {
  runError = error
}
floodOn = false
const floodSeconds = elapsed()
clearInterval(sampler)

// --- drain, close, account -----------------------------------------------
// The kernel's queue empties at the consumer's pace; once nothing has
// arrived for idleMs and nothing waits in the stream, there is nothing left.
const drainStart = performance.now()
let quietSince = performance.now()
let seen = stream.stats().received
while (!runError && performance.now() - drainStart < 30_000) {
  await sleep(50)
  const now = stream.stats().received
  if (now !== seen || stream.readableLength > 0) {
    seen = now
    quietSince = performance.now()
  } else if (performance.now() - quietSince >= o.idleMs) {
    break
  }
}
const drainSeconds = (performance.now() - drainStart) / 1000
clearInterval(printer)
await stream.close()
let consumerTimer
await Promise.race([consumer.catch(() => {}), new Promise((resolve) => (consumerTimer = setTimeout(resolve, 10_000)))])
clearTimeout(consumerTimer)
const final = stream.stats()
clearTimeout(watchdog)

// --- verdict -------------------------------------------------------------
const third = floodSeconds / 3
const maxIn = (from, to) => Math.max(0, ...samples.filter((s) => s.t >= from && s.t < to).map((s) => s.rss))
const warmupMax = maxIn(0, third)
const middleMax = maxIn(third, 2 * third)
const lastMax = maxIn(2 * third, Infinity)
const growth = lastMax - middleMax
const tolerance = Math.max(o.rssTolerance, (o.rssTolerancePct / 100) * middleMax)
const drops = final.kernelDrops
const checks = {
  run: !runError && !consumerError && consumed === final.received,
  rss: samples.length >= 6 && middleMax > 0 && growth <= tolerance,
  accounting: typeof drops === 'number' && final.received + drops + final.discarded === sent,
}
const result = {
  seconds: o.seconds,
  floodSeconds: +floodSeconds.toFixed(2),
  drainSeconds: +drainSeconds.toFixed(2),
  slices,
  sent,
  sendErrors,
  received: final.received,
  consumed,
  consumedBytes,
  kernelDrops: drops,
  discarded: final.discarded,
  peakPosted: final.peakPosted,
  batches: final.batches,
  rssMiB: { warmupMax: +MiB(warmupMax), middleMax: +MiB(middleMax), lastMax: +MiB(lastMax), growth: +MiB(growth), tolerance: +MiB(tolerance), maxSeen: +MiB(maxRssSeen) },
  samples: samples.length,
  checks,
  ok: Object.values(checks).every(Boolean),
}
console.log(
  `flood ${result.floodSeconds} s in ${slices} slices, drained in ${result.drainSeconds} s: ` +
    `sent ${sent} (send errors ${sendErrors}), received ${final.received}, kernelDrops ${drops}, ` +
    `consumed ${consumed}; ${Math.round(final.received / result.floodSeconds)} received/s on average`,
)
console.log(
  `RSS max MiB: warm-up ${MiB(warmupMax)}, middle ${MiB(middleMax)}, last ${MiB(lastMax)}; ` +
    `growth ${MiB(growth)} (tolerance ${MiB(tolerance)}) -> ${checks.rss ? 'flat' : 'GROWING'}`,
)
console.log(
  `accounting: received ${final.received} + kernelDrops ${drops} + discarded ${final.discarded} = ${final.received + (drops ?? NaN) + final.discarded} ` +
    `${checks.accounting ? '===' : '!=='} sent ${sent} (off by ${final.received + (drops ?? NaN) - sent})`,
)
if (runError) console.log(`run: FAILED: ${runError.stack ?? runError}`)
if (consumerError) console.log(`consumer: FAILED: ${consumerError.stack ?? consumerError}`)
if (consumed !== final.received) console.log(`consumer saw ${consumed} of ${final.received} received`)
if (a.json) fs.writeFileSync(a.json, JSON.stringify(result, null, 2) + '\n')
console.log(result.ok ? 'soak: OK' : `soak: FAILED (${Object.keys(checks).filter((k) => !checks[k]).join(', ')})`)
process.exitCode = runError || consumerError ? 2 : result.ok ? 0 : 1
