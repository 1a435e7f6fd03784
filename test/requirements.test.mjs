// A test that needs an optional system tool skips, naming the tool and its
// Debian package, so `npm test` passes on a machine without it; under CI=true,
// where .ci/run installs every tool, a missing one fails instead.
import t from 'tap'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { root, TOOLS } from './lib/helpers.mjs'

const fixture = path.join(root, 'test', 'fixtures', 'requirements.mjs')
function run(ci) {
  const env = { ...process.env, TAP_REPORTER: 'tap' }
  delete env.CI
  if (ci) env.CI = 'true'
  return new Promise((resolve) =>
    execFile(process.execPath, [fixture], { env, timeout: 30_000 }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr })),
  )
}

t.test('without CI: skipped, saying what to install', async (t) => {
  const { code, stdout } = await run(false)
  t.equal(code, 0, stdout)
  t.match(stdout, /# SKIP needs dgram-ring-absent-tool \(Debian package dgram-ring-tools\)/)
  t.match(stdout, /needs dgram-ring-absent-tool \(Debian package dgram-ring-tools\) # SKIP/)
  t.match(stdout, /# SKIP needs a property this machine lacks/)
  t.notMatch(stdout, /not ok/)
})

t.test('under CI=true: a missing tool fails, a missing property still skips', async (t) => {
  const { code, stdout } = await run(true)
  t.not(code, 0)
  const failures = stdout.split('\n').filter((line) => /^\s*not ok/.test(line))
  t.match(failures.join('\n'), /needs dgram-ring-absent-tool \(Debian package dgram-ring-tools\): CI=true requires every optional tool/)
  t.equal(failures.filter((line) => /ran without/.test(line)).length, 0, 'no test ran without what it needs')
  t.match(stdout, /# SKIP needs a property this machine lacks/)
})

t.test('every optional tool names its Debian packages', async (t) => {
  for (const [tool, packages] of Object.entries(TOOLS)) {
    t.ok(Array.isArray(packages) && packages.length > 0 && packages.every((p) => /^[a-z0-9][a-z0-9+.-]+$/.test(p)), tool)
  }
  for (const tool of ['ping', 'logger', 'setpriv', 'taskset', 'rsyslogd', 'nats-server', 'wine']) t.ok(tool in TOOLS, tool)
})

t.test("README's Development section lists every optional tool and its packages", async (t) => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const development = readme.slice(readme.indexOf('\n## Development'))
  for (const [tool, packages] of Object.entries(TOOLS)) {
    t.match(development, `\`${tool}\``, tool)
    for (const p of packages) t.match(development, `\`${p}\``, `${tool}: ${p}`)
  }
})
