// The vendored flood sender (bench/blast.c), compiled on first use into
// build/tools/. Shared by the benchmark and the tests.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

/**
 * Path of the compiled sender; recompiled when blast.c is newer. Throws an
 * error with code `ERR_BENCH_NO_COMPILER` and a one-line message when there
 * is no `cc`.
 */
export function blastBinary() {
  const out = path.join(here, '..', 'build', 'tools', 'blast')
  const source = path.join(here, 'blast.c')
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(source).mtimeMs) return out
  fs.mkdirSync(path.dirname(out), { recursive: true })
  // Renamed into place, so a concurrent compile cannot leave half a file.
  const tmp = `${out}.${process.pid}.tmp`
  try {
    execFileSync('cc', ['-O2', '-o', tmp, source], { stdio: 'inherit' })
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
    const message = 'no C compiler (cc) to build the flood sender bench/blast.c: install one (Debian/Ubuntu: apt-get install gcc)'
    throw Object.assign(new Error(message), { code: 'ERR_BENCH_NO_COMPILER' })
  }
  fs.renameSync(tmp, out)
  return out
}
