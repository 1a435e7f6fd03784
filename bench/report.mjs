// bench/run.mjs's report: one row a size and variant (the run that stands for
// its repeats), the ratios computed within the same run, the Markdown table,
// and the targets of issue 12 with the figures behind them.
import { variantName } from './measure.mjs'

export const RECEIVERS = {
  message: "node:dgram 'message'",
  readable: 'node:dgram → Readable, for await',
  ring: 'dgram-ring, for await',
  batches: 'dgram-ring, batches()',
  recycle: 'dgram-ring, batches({recycle: true})',
  c: 'C recvmmsg, same cmsgs',
  'c-gro': 'C recvmmsg + UDP_GRO',
}

// The receivers whose rows multiply by backend and coalesce.
export const RING_RECEIVERS = ['ring', 'batches', 'recycle']

export const fmtInt = (n) => (n == null ? '–' : Math.round(n).toLocaleString('en-US'))
export const fmtK = (n) => (n == null ? '–' : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${Math.round(n / 1e3)} k`)
export const fmtPct = (x) => (x == null || Number.isNaN(x) ? '?' : `${(x * 100).toFixed(0)}%`)
export const fmtRatio = (r) => (r == null ? '–' : `${r.toFixed(2)}×`)

// A receiver that kept the sender's segments coalesced: the kernel receives,
// and drops, whole GSO packets of `sender.segments` datagrams.
const coalesced = (r) => r.receiver === 'c-gro' || r.variant?.coalesce === true

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** sent − received, the kernel's drops (in its own units) and whether received + drops = sent. */
export function accounting(r) {
  const drops = r.sent - r.received
  const kernelDrops = r.stats?.kernelDrops ?? r.kernelDrops ?? r.kernelDropsProc
  const perDrop = coalesced(r) ? r.sender.segments : 1
  if (kernelDrops === undefined) return { drops, kernelDrops, perDrop, held: undefined }
  let held = r.received + kernelDrops * perDrop === r.sent
  // dgram-ring's own count must agree with what the loop saw (with coalesce it may count packets).
  if (r.stats && !coalesced(r)) held &&= r.stats.received === r.received
  return { drops, kernelDrops, perDrop, held }
}

// The sender, not the receiver, set the rate (so it is a lower bound) when the
// receiver took at least 97% of what was sent, or used less than 90% of its
// core without waiting for it.
const senderBound = (r) => r.received >= 0.97 * r.sent || (r.window.cpuUtilization < 0.9 && !(r.window.runQueueWait > 0.05))

/** Another process held the receiver's or the sender's core for over 5% of the window. */
export const contended = (r) => r.runQueueWait > 0.05 || r.sender?.runQueueWait > 0.05

const meanBatch = (r) => (r.stats ? r.stats.received / r.stats.batches : r.calls ? r.received / r.calls : undefined)

function notAddingUp(r, acc) {
  // A coalesce row whose kernel dropped single datagrams: the socket did not coalesce.
  if (acc.perDrop > 1 && r.received + acc.kernelDrops === r.sent) return `it does counting a kernel drop as one datagram: the socket did not coalesce`
  return `${r.sent - r.received - (acc.kernelDrops ?? 0) * acc.perDrop} missing, ${r.queuedBytes} B still queued`
}

/** The per-measurement progress line. */
export function progressLine(r) {
  const acc = accounting(r)
  const unit = acc.perDrop > 1 ? ` × ${acc.perDrop}` : ''
  const batch = meanBatch(r)
  return (
    `run ${r.run} ${String(r.size).padStart(5)} B ${variantName(r.variant).padEnd(26)} ${fmtK(r.window.pps).padStart(8)}/s  ` +
    `${fmtInt(r.window.cpuNsPerDatagram).padStart(6)} ns/dgram  cpu ${(r.window.cpuUtilization * 100).toFixed(0)}% ` +
    `wait ${fmtPct(r.window.runQueueWait)}  sender cpu ${fmtPct(r.sender.window?.cpuUtilization)} wait ${fmtPct(r.sender.window?.runQueueWait)}  ` +
    `sent ${fmtInt(r.sent)} received ${fmtInt(r.received)} kernel drops ${fmtInt(acc.kernelDrops)}${unit}` +
    `${acc.held === undefined ? '' : acc.held ? ' (adds up)' : ` (DOES NOT add up: ${notAddingUp(r, acc)})`}  ` +
    `${r.window.datagrams === 0 ? 'STALLED: nothing received in the window  ' : ''}` +
    `${r.stats?.truncated ? `TRUNCATED: ${fmtInt(r.stats.truncated)} datagrams  ` : ''}` +
    `rss ${(r.maxRSS / 2 ** 20).toFixed(0)} MB${batch ? `  batch ${batch.toFixed(0)}` : ''}${r.drained ? '' : '  (not drained!)'}`
  )
}

/** The C row a variant's CPU is compared with: same cmsgs, and GRO when it coalesces. */
const cpuReference = (v) => (v.receiver === 'c' || v.receiver === 'c-gro' ? undefined : v.coalesce ? 'c-gro' : 'c')

export function summarize(o, variants, results) {
  const rows = []
  for (const size of o.sizes) {
    const bySize = []
    for (const variant of variants) {
      const name = variantName(variant)
      const rs = results.filter((r) => r.size === size && variantName(r.variant) === name).sort((a, b) => a.window.pps - b.window.pps)
      if (rs.length === 0) continue
      // One run stands for all, so that its numbers belong together: the
      // median by rate, or with --pick best the fastest (the least disturbed).
      const r = o.pick === 'best' ? rs[rs.length - 1] : rs[(rs.length - 1) >> 1]
      const acc = accounting(r)
      const held = rs.map((x) => accounting(x).held)
      bySize.push({
        size,
        receiver: r.receiver,
        backend: r.backend ?? variant.backend,
        coalesce: variant.coalesce,
        variant: name,
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
        segmentsPerKernelDrop: acc.perDrop,
        accountingHeld: held.every((h) => h === true) ? true : held.some((h) => h === false) ? false : undefined,
        truncated: r.stats?.truncated,
        maxRSS: r.maxRSS,
        meanBatch: meanBatch(r),
        peakReadableLength: r.receiver === 'readable' ? r.peakReadableLength : undefined,
      })
    }
    const find = (receiver) => bySize.find((row) => row.receiver === receiver)
    for (const row of bySize) {
      const message = find('message')
      const readable = find('readable')
      if (message && row !== message) row.vsMessage = row.pps / message.pps
      if (readable && RING_RECEIVERS.includes(row.receiver)) row.vsReadable = row.pps / readable.pps
      const reference = find(cpuReference(row))
      if (reference && row.cpuNsPerDatagram != null && reference.cpuNsPerDatagram) {
        row.cpuReference = reference.receiver
        row.cpuVsReference = row.cpuNsPerDatagram / reference.cpuNsPerDatagram
      }
    }
    rows.push(...bySize)
  }
  return rows
}

const label = (r) => `${RECEIVERS[r.receiver]}${r.coalesce ? ', coalesce' : ''}`

export function markdown(o, rows) {
  const lines = []
  const runs = o.runs > 1 ? ` (${o.pick === 'best' ? 'best' : 'median'} of ${o.runs})` : ''
  lines.push(
    `| size | receiver | backend | offered/s | received/s${runs} | CPU ns/datagram | CPU ÷ C | × node:dgram | ÷ Readable | sent − received | kernel drops | received + drops = sent | peak RSS |`,
  )
  lines.push('| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: |')
  for (const r of rows) {
    const held = r.accountingHeld === true ? 'yes' : r.accountingHeld === false ? '**no**' : '–'
    const ge = r.lowerBound ? '≥ ' : ''
    const cpuVs = r.cpuVsReference === undefined ? '–' : `${fmtRatio(r.cpuVsReference)} ${r.cpuReference}`
    const kernelDrops = fmtInt(r.kernelDrops) + (r.segmentsPerKernelDrop > 1 && r.kernelDrops != null ? ` × ${r.segmentsPerKernelDrop}` : '')
    lines.push(
      `| ${r.size} B | ${label(r)} | ${r.backend ?? '–'} | ${fmtK(r.offeredPps)} | ${ge}${fmtK(r.pps)} | ${fmtInt(r.cpuNsPerDatagram)} | ${cpuVs} | ` +
        `${r.vsMessage === undefined ? '–' : ge + fmtRatio(r.vsMessage)} | ${r.vsReadable === undefined ? '–' : ge + fmtRatio(r.vsReadable)} | ` +
        `${fmtInt(r.drops)} (${(r.dropRate * 100).toFixed(1)}%) | ${kernelDrops} | ${held} | ${(r.maxRSS / 2 ** 20).toFixed(0)} MB |`,
    )
  }
  return lines.join('\n')
}

// Issue 12's targets on this machine (and ARCHITECTURE.md §9's 2.5×): which
// rows each covers, the ratio it reads, and the bound it must meet.
const TARGETS = [
  { name: "dgram-ring through for await ≥ 2.5× node:dgram's saturated rate", receiver: 'ring', coalesce: false, ratio: 'vsMessage', atLeast: 2.5 },
  { name: 'batches() ≤ 1.1× the CPU a datagram of the C receiver with the same cmsgs', receiver: 'batches', coalesce: false, ratio: 'cpuVsReference', atMost: 1.1 },
  { name: 'batches({recycle: true}) ≤ 1.1× the CPU a datagram of the C receiver with the same cmsgs', receiver: 'recycle', coalesce: false, ratio: 'cpuVsReference', atMost: 1.1 },
  { name: 'for await ≤ 1.25× the CPU a datagram of the C receiver with the same cmsgs', receiver: 'ring', coalesce: false, ratio: 'cpuVsReference', atMost: 1.25 },
  { name: "coalesce, batches() ≥ 10× node:dgram's datagrams a second", receiver: 'batches', coalesce: true, ratio: 'vsMessage', atLeast: 10 },
  { name: "coalesce, for await ≥ 5× node:dgram's datagrams a second", receiver: 'ring', coalesce: true, ratio: 'vsMessage', atLeast: 5 },
]

/**
 * Every target some row measured: { target, verdict, figures, contended }. The verdict is
 * 'met', 'not met', or 'lower bound' (a rate target missed only by rows whose
 * receiver kept up with the sender: the sender, not dgram-ring, fell short).
 */
export function targets(rows) {
  const out = []
  for (const target of TARGETS) {
    const covered = rows.filter((r) => r.receiver === target.receiver && Boolean(r.coalesce) === target.coalesce && r[target.ratio] !== undefined)
    if (covered.length === 0) continue
    const meets = (r) => (target.atLeast !== undefined ? r[target.ratio] >= target.atLeast : r[target.ratio] <= target.atMost)
    // Only a rate can be held back by the sender; CPU a datagram is measured either way.
    const bounded = (r) => target.ratio === 'vsMessage' && r.lowerBound
    const short = covered.filter((r) => !meets(r))
    const verdict = short.length === 0 ? 'met' : short.every(bounded) ? 'lower bound' : 'not met'
    const figures = covered.map((r) => `${r.backend} ${r.size} B ${bounded(r) ? '≥ ' : ''}${fmtRatio(r[target.ratio])}`)
    // The row, or the row its ratio divides by, ran on a contended core.
    const reference = (r) => rows.find((x) => x.size === r.size && x.receiver === (target.ratio === 'vsMessage' ? 'message' : r.cpuReference))
    out.push({ target: target.name, verdict, figures, contended: covered.some((r) => contended(r) || contended(reference(r))) })
  }
  return out
}

/**
 * With more than one backend: each other backend's received/s and CPU a
 * datagram over the first's (the build lists backends fastest first, and
 * `backend: 'auto'` takes the first), a line a size, receiver and coalesce.
 * What decides whether the first is rightly the default.
 */
export function backendComparison(rows) {
  // Rows come size by size, backends in the build's order: a group's first row is the first backend's.
  const groups = new Map()
  for (const r of rows.filter((row) => RING_RECEIVERS.includes(row.receiver))) {
    const key = `${r.size} B ${r.receiver}${r.coalesce ? ' coalesce' : ''}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  const lines = []
  for (const [key, [first, ...others]] of groups) {
    if (others.length === 0) continue
    const vs = others.map((r) => `${r.backend} ${r.lowerBound || first.lowerBound ? '≈ ' : ''}${fmtRatio(r.pps / first.pps)} the rate, ${fmtRatio(r.cpuNsPerDatagram / first.cpuNsPerDatagram)} the CPU a datagram`)
    lines.push(`${key}: ${vs.join('; ')} of ${first.backend}`)
  }
  return lines
}
