// `npm run bench -- --side-by-side N`: each dgram-ring row at once with the C
// reference receiver, both on the receiver core, each with its own paced
// sender, their windows opened together: N such pairs a row. On a machine
// whose speed drifts (a VM: up to 2× within minutes) rows measured in turn
// disagree run to run, while the two of a pair see the same machine, so their
// ratio holds.
import { measure, variantName } from './measure.mjs'
import { RECEIVERS, fmtRatio, median } from './report.mjs'

/** The rate each sender of a pair offers when --rate is not given: both receivers keep up with it. */
export const SIDE_BY_SIDE_RATE = 300_000

// Both measurements send `go` (open their windows) once both are ready.
function together(parties) {
  let arrived = 0
  let release
  const all = new Promise((resolve) => (release = resolve))
  return () => {
    if (++arrived === parties) release()
    return all
  }
}

/** N pairs for every (size, dgram-ring variant without coalesce): [{ size, variant, pairs: [{ c, ring }] }]. */
export async function sideBySide(o, variants, out) {
  const paced = { ...o, rate: o.rate || SIDE_BY_SIDE_RATE }
  const reference = { receiver: 'c' }
  const rows = []
  for (const size of o.sizes) {
    for (const variant of variants.filter((v) => !v.coalesce)) {
      const row = { size, variant, pairs: [], failures: [] }
      for (let i = 0; i < o.sideBySide; i++) {
        const start = together(2)
        try {
          const [c, ring] = await Promise.all([measure(paced, reference, size, start), measure(paced, variant, size, start)])
          row.pairs.push({ c, ring, ratio: ring.window.cpuNsPerDatagram / c.window.cpuNsPerDatagram })
          out(`side by side ${size} B ${variantName(variant)}: C ${Math.round(c.window.cpuNsPerDatagram)} ns, dgram-ring ${Math.round(ring.window.cpuNsPerDatagram)} ns a datagram: ${fmtRatio(ring.window.cpuNsPerDatagram / c.window.cpuNsPerDatagram)}`)
        } catch (error) {
          row.failures.push(String(error.message ?? error))
          out(`side by side ${size} B ${variantName(variant)}: FAILED: ${error.message ?? error}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      rows.push(row)
    }
  }
  return { rate: paced.rate, rows }
}

// Issue 12's CPU targets against the C receiver, read off the pairs.
const TARGETS = { batches: 1.1, recycle: 1.1, ring: 1.25 }

/** The Markdown table of sideBySide()'s result, and the target lines. */
export function sideBySideReport(o, result) {
  const lines = [
    `Side by side: each row at once with the C receiver (same cmsgs) on CPU ${o.receiverCpu}, each with its own sender at ${result.rate / 1000}k/s, ` +
      `their ${o.seconds} s windows opened together; ${o.sideBySide} pair(s) a row (medians, ratio range in brackets).`,
    '',
    '| size | receiver | backend | C ns/datagram | dgram-ring ns/datagram | CPU ÷ C | dgram-ring kernel drops |',
    '| ---: | --- | --- | ---: | ---: | ---: | ---: |',
  ]
  const verdicts = []
  for (const row of result.rows) {
    if (row.pairs.length === 0) continue
    const ratios = row.pairs.map((p) => p.ratio)
    const ns = (side) => Math.round(median(row.pairs.map((p) => p[side].window.cpuNsPerDatagram)))
    const drops = median(row.pairs.map((p) => p.ring.stats?.kernelDrops ?? p.ring.kernelDrops ?? 0))
    const range = ratios.length > 1 ? ` (${fmtRatio(Math.min(...ratios))}–${fmtRatio(Math.max(...ratios))})` : ''
    lines.push(`| ${row.size} B | ${RECEIVERS[row.variant.receiver]} | ${row.variant.backend} | ${ns('c')} | ${ns('ring')} | ${fmtRatio(median(ratios))}${range} | ${Math.round(drops)} |`)
    const target = TARGETS[row.variant.receiver]
    if (target !== undefined) verdicts.push(`- ${RECEIVERS[row.variant.receiver]} ≤ ${target}× the C receiver, ${row.variant.backend} ${row.size} B: **${median(ratios) <= target ? 'met' : 'not met'}** (${fmtRatio(median(ratios))}${range})`)
  }
  if (verdicts.length) lines.push('', 'Targets, side by side:', ...verdicts)
  return lines.join('\n')
}
