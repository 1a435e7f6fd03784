// Native unit tests (test/native/*_test.cc): built with AddressSanitizer and
// UndefinedBehaviorSanitizer, so a read past a buffer fails them even where
// it would not crash, and run in a clean environment.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { root } from './helpers.mjs'

/** Builds test/native/NAME.cc with `sources` (paths under native/), runs it, and checks its "N passed, 0 failed" line. */
export function runNativeUnit(t, name, sources = []) {
  const out = path.join(root, 'build', 'tools', name)
  fs.mkdirSync(path.dirname(out), { recursive: true })
  execFileSync('g++', [
    '-std=c++17', '-g', '-O1', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-Wall',
    '-o', out, path.join(root, 'test', 'native', `${name}.cc`), ...sources.map((s) => path.join(root, 'native', s)),
  ])
  // A clean environment: no preloaded runtime from an outer sanitizer run.
  const run = spawnSync(out, { encoding: 'utf8', env: { PATH: process.env.PATH, ASAN_OPTIONS: 'detect_leaks=1' }, timeout: 60_000 })
  t.equal(run.status, 0, run.stderr)
  t.match(run.stdout, /^\d+ passed, 0 failed$/m, run.stdout)
}
