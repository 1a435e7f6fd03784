// The control-data decoder against malformed and truncated buffers: a native
// unit test (test/native/cmsg_test.cc) built with ASan and UBSan, so reading
// past a buffer fails it even where it would not crash.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { root } from './lib/helpers.mjs'

t.test('DecodeControl bounds-checks every length', { skip: process.platform === 'win32' ? 'POSIX layout; Windows shares the code' : false }, async (t) => {
  const out = path.join(root, 'build', 'tools', 'cmsg_test')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  execFileSync('g++', [
    '-std=c++17', '-g', '-O1', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-Wall',
    '-o', out, path.join(root, 'test', 'native', 'cmsg_test.cc'), path.join(root, 'native', 'cmsg.cc'),
  ])
  // A clean environment: no preloaded runtime from an outer sanitizer run.
  const run = spawnSync(out, { encoding: 'utf8', env: { PATH: process.env.PATH, ASAN_OPTIONS: 'detect_leaks=1' }, timeout: 60_000 })
  t.equal(run.status, 0, run.stderr)
  t.match(run.stdout, /^\d+ passed, 0 failed$/m, run.stdout)
})
