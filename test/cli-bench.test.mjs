// `dgram-ring bench`: from the source tree (a short run of every receiver
// kind, whose JSON has the rows and accounts for every datagram), and from an
// installed package (the files `npm pack` would ship, with the file times an
// install leaves), where it must not warn about a build it cannot do, must not
// point at files the package lacks, and must say in one line that a C
// compiler is missing.
import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ring, root } from './lib/helpers.mjs'
import { LIMIT_MS, run } from './lib/cli.mjs'

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

/** Runs bench/run.mjs to completion (SIGTERM past the limit: it stops its children): { code, stdout, stderr }. */
function runBench(args, limitMs) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bench', 'run.mjs'), ...args], { timeout: limitMs, killSignal: 'SIGTERM', maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code ?? error.signal : 0, stdout, stderr }),
    )
  })
}

t.test('a short run of the new receivers: every row in the JSON, each adding up', async (t) => {
  // Paced and short: a smoke test of the harness, not a measurement.
  const args = ['--seconds', '0.3', '--warmup', '0.2', '--sizes', '64', '--rate', '100000', '--receivers', 'message,ring,batches,c,c-gro', '--json']
  const result = await runBench(args, 120_000)
  t.equal(result.code, 0, `exit 0: ${result.stderr.slice(-2000)}`)
  const doc = JSON.parse(result.stdout)
  t.equal(doc.failures.length, 0, 'no measurement failed')
  const names = doc.summary.map((row) => row.variant)
  for (const receiver of ['message', 'c', 'c-gro']) t.ok(names.includes(receiver), `a ${receiver} row`)
  for (const receiver of ['ring', 'batches']) {
    for (const backend of ring.backends) {
      t.ok(names.includes(`${receiver} ${backend}`), `a ${receiver} row on ${backend}`)
      // Before coalesce lands the row is named as not run, after it is measured.
      const coalesced = `${receiver} ${backend} coalesce`
      t.ok(names.includes(coalesced) || doc.notRun.some((note) => note.startsWith(`${coalesced}: not available`)), `${coalesced}: measured, or named as not available`)
    }
  }
  for (const row of doc.summary) {
    t.equal(row.accountingHeld, true, `${row.variant}: received + kernel drops = sent (${row.received} + ${row.kernelDrops} × ${row.segmentsPerKernelDrop} of ${row.sent})`)
    t.ok(row.received > 0, `${row.variant}: received datagrams`)
  }
  const batches = doc.summary.find((row) => row.receiver === 'batches' && !row.coalesce)
  t.ok(batches.cpuReference === 'c' && batches.cpuVsReference > 0, 'batches() CPU is compared with the C receiver')
  t.ok(batches.vsMessage > 0, "batches() rate is compared with node:dgram's")
  t.match(result.stderr, /\| size \| receiver \| backend \|/, 'the table went to stderr')
  t.match(result.stderr, /^Targets:$/m, 'and the targets under it')
})

t.test('a short side-by-side run: each pair measured at once, with its ratio to the C receiver', async (t) => {
  // A smoke test of the harness, not a measurement.
  const backend = ring.backends[0]
  const args = ['--seconds', '0.3', '--warmup', '0.2', '--sizes', '64', '--rate', '50000', '--receivers', 'recycle', '--backends', backend, '--side-by-side', '1', '--json']
  const result = await runBench(args, 120_000)
  t.equal(result.code, 0, `exit 0: ${result.stderr.slice(-2000)}`)
  const doc = JSON.parse(result.stdout)
  t.equal(doc.sideBySide.rows.length, 1, 'one row')
  const [row] = doc.sideBySide.rows
  t.same(row.failures, [], 'no pair failed')
  t.equal(row.pairs.length, 1, 'one pair')
  const [{ c, ring: mine, ratio }] = row.pairs
  t.ok(c.window.cpuNsPerDatagram > 0 && mine.window.cpuNsPerDatagram > 0, 'both measured their CPU a datagram')
  t.equal(ratio, mine.window.cpuNsPerDatagram / c.window.cpuNsPerDatagram, 'the ratio is of the two')
  t.ok(c.received > 0 && mine.received > 0, 'both received')
  t.match(result.stderr, /\| size \| receiver \| backend \| C ns\/datagram \|/, 'the table went to stderr')
  t.match(result.stderr, /^Targets, side by side:$/m, 'and the targets under it')
})

t.test('bench refuses a bad --coalesce', async (t) => {
  const result = await runBench(['--coalesce', 'sometimes'], 30_000)
  t.equal(result.code, 2)
  t.match(result.stderr, /--coalesce: expected off, on or both/)
})

/** A copy of what `npm pack` ships, laid out as an install leaves it: lib/ written after dist/, so newer. */
function installedCopy() {
  const [{ files }] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: LIMIT_MS }))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-installed-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const shipped = files.map((f) => f.path)
  const older = new Date(Date.now() - 60_000)
  for (const file of shipped) {
    const to = path.join(dir, file)
    fs.mkdirSync(path.dirname(to), { recursive: true })
    fs.copyFileSync(path.join(root, file), to)
    if (file.startsWith('dist/')) fs.utimesSync(to, older, older)
  }
  return { dir, shipped: new Set(shipped) }
}

const { dir, shipped } = installedCopy()

/** Runs the installed copy's command with PATH holding no C compiler. */
function runInstalled(dir, args) {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-path-'))
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(dir, 'bin', 'dgram-ring.js'), ...args], { timeout: LIMIT_MS, env: { ...process.env, PATH: empty } }, (error, stdout, stderr) => {
      fs.rmSync(empty, { recursive: true, force: true })
      resolve({ code: error ? error.code : 0, stdout, stderr })
    })
  })
}

t.test('bench from an installed package without a C compiler: no false warning, one line naming the package', async (t) => {
  t.ok(shipped.has('bench/run.mjs') && !shipped.has('tsconfig.json'), 'the package ships the benchmark, not the build setup')
  const result = await runInstalled(dir, ['bench', '--seconds', '0.2', '--sizes', '64', '--receivers', 'message'])
  t.equal(result.code, 1)
  t.notMatch(result.stdout, /older than lib/, 'no warning about a build the package does not do')
  t.match(result.stderr, /^[^\n]*no C compiler[^\n]*apt-get install gcc[^\n]*\n$/, `one line: ${JSON.stringify(result.stderr)}`)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
})

t.test('bench and the command name only files the package ships', async (t) => {
  const texts = [(await runInstalled(dir, ['--help'])).stdout, (await runInstalled(dir, ['bench', '--help'])).stdout]
  const named = texts.join('\n').match(/[\w./-]+\.(?:md|mjs|c|h|js|ts|json)\b/g) ?? []
  t.ok(texts[1].includes('--seconds'), 'bench --help printed its usage')
  for (const file of new Set(named)) {
    const relative = file.replace(/^\.\//, '')
    t.ok(shipped.has(relative), `'${file}' is shipped`)
  }
})
