// RxJS under a flood: the same sendmmsg flood (bench/blast.c, to 127.0.0.1)
// through plain `mergeMap(async …, 4)` and through `mergeMapWithBackpressure`,
// each in its own process so that one's heap cannot hide the other's. Prints
// RSS growth, datagrams queued in JS, kernel drops and the accounting
// `received + kernelDrops + discarded === sent` for both.
//
//   node bench/rx-memory.mjs [--rate PPS] [--seconds S] [--ring N] [--size BYTES]
//
// Linux only (the flood sender and the kernel drop counter). Build first:
// `npx tsc -p tsconfig.json`.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { blast } from '../test/lib/helpers.mjs'

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '150000' },
    seconds: { type: 'string', default: '1' },
    ring: { type: 'string', default: '256' },
    size: { type: 'string', default: '64' },
    child: { type: 'string' },
  },
})
const rate = Number(args.rate)
const seconds = Number(args.seconds)
const ringSize = Number(args.ring)
const size = Number(args.size)
const CONCURRENCY = 4
const VARIANTS = ['mergeMap', 'mergeMapWithBackpressure']

if (args.child) {
  console.log(JSON.stringify(await run(args.child)))
} else {
  if (process.platform !== 'linux') throw new Error('Linux only: the flood sender and kernelDrops')
  console.log(
    `flood: ${size}-byte datagrams at ${rate} pps for ${seconds} s to 127.0.0.1; ringSize ${ringSize}; ` +
      `project: await a 1 ms timer, concurrency ${CONCURRENCY}; node ${process.version}`,
  )
  const rows = VARIANTS.map((variant) => {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', fileURLToPath(import.meta.url), '--child', variant, ...process.argv.slice(2)],
      { encoding: 'utf8', timeout: (seconds + 90) * 1000 },
    )
    return JSON.parse(out.trim().split('\n').pop())
  })
  const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`
  const metrics = {
    sent: (r) => r.sent,
    received: (r) => r.received,
    kernelDrops: (r) => r.kernelDrops,
    'received + kernelDrops + discarded === sent': (r) => r.received + r.kernelDrops + r.discarded === r.sent,
    'peak RSS growth': (r) => mb(r.peakRssGrowth),
    'peak heap growth': (r) => mb(r.peakHeapGrowth),
    'peak datagrams queued in JS': (r) => r.peakQueued,
    'queued when the flood ended': (r) => r.queuedAtEnd,
    'peak projects running': (r) => r.peakRunning,
    peakPosted: (r) => r.peakPosted,
    'max posted + held in JS': (r) => r.maxPostedPlusHeld,
    'projects done': (r) => r.done,
  }
  console.table(Object.fromEntries(Object.entries(metrics).map(([name, of]) => [name, Object.fromEntries(rows.map((r) => [r.variant, of(r)]))])))
}

async function run(variant) {
  const rx = await import('dgram-ring/rx')
  const { mergeMap } = await import('rxjs')
  const operator = variant === 'mergeMap' ? mergeMap : rx.mergeMapWithBackpressure
  const tick = () => new Promise((resolve) => setTimeout(resolve, 1))

  let handle
  let started = 0
  let running = 0
  let done = 0
  let peakRunning = 0
  const source = rx.fromDatagrams({ address: '127.0.0.1', ringSize, onListening: (ring) => (handle = ring) })
  const project = async (d) => {
    started++
    running++
    peakRunning = Math.max(peakRunning, running)
    await tick()
    running--
    done++
    return d.data.length
  }
  const subscription = source.pipe(operator(project, CONCURRENCY)).subscribe()

  global.gc()
  await tick()
  global.gc()
  const base = process.memoryUsage()
  let peakRss = base.rss
  let peakHeap = base.heapUsed
  let peakQueued = 0
  let maxPostedPlusHeld = 0
  // Datagrams in JS: received but not yet started (queued in the operator), plus running.
  const sample = () => {
    const memory = process.memoryUsage()
    peakRss = Math.max(peakRss, memory.rss)
    peakHeap = Math.max(peakHeap, memory.heapUsed)
    const { received, posted } = handle.stats()
    peakQueued = Math.max(peakQueued, received - started)
    maxPostedPlusHeld = Math.max(maxPostedPlusHeld, posted + received - started + running)
    return received - started
  }
  const sampler = setInterval(sample, 10)
  const { sent } = await blast({ port: handle.address().port, size, seconds, rate })
  const queuedAtEnd = sample()
  // The kernel's queue drains into JS; then every datagram is received or dropped.
  const deadline = Date.now() + 20_000
  let stats = handle.stats()
  while (stats.received + stats.kernelDrops !== sent && Date.now() < deadline) {
    await tick()
    stats = handle.stats()
  }
  clearInterval(sampler)
  subscription.unsubscribe()
  await handle.closed
  stats = handle.stats()
  return {
    variant,
    sent,
    received: stats.received,
    kernelDrops: stats.kernelDrops,
    discarded: stats.discarded,
    peakPosted: stats.peakPosted,
    peakRssGrowth: peakRss - base.rss,
    peakHeapGrowth: peakHeap - base.heapUsed,
    peakQueued,
    queuedAtEnd,
    peakRunning,
    maxPostedPlusHeld,
    done,
  }
}
