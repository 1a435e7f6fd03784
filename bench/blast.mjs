// The vendored flood sender (bench/blast.c), compiled on first use into
// build/tools/. Shared by the benchmark and the tests.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Path of the compiled sender; recompiled when blast.c is newer. */
export function blastBinary() {
  const out = path.join(here, '..', 'build', 'tools', 'blast')
  const source = path.join(here, 'blast.c')
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(source).mtimeMs) return out
  fs.mkdirSync(path.dirname(out), { recursive: true })
  // Renamed into place, so a concurrent compile cannot leave half a file.
  const tmp = `${out}.${process.pid}.tmp`
  execFileSync('cc', ['-O2', '-o', tmp, source], { stdio: 'inherit' })
  fs.renameSync(tmp, out)
  return out
}
