// The vendored C tools, compiled on first use into build/tools/: the load
// generators bench/blast.c (a sendmmsg/GSO flood sender) and bench/sl5424.c
// (an RFC 5424 syslog sender with sequence numbers), and bench/recv_ref.c (the
// C reference receiver). Shared by the benchmarks and tests.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

/**
 * Path of bench/NAME.c (or of `source`) compiled into build/tools/NAME;
 * recompiled when the source is newer. Throws an error with code
 * `ERR_BENCH_NO_COMPILER` and a one-line message when there is no `cc`.
 */
export function toolBinary(name, source = path.join(here, `${name}.c`)) {
  const out = path.join(here, '..', 'build', 'tools', name)
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(source).mtimeMs) return out
  fs.mkdirSync(path.dirname(out), { recursive: true })
  // Renamed into place, so a concurrent compile cannot leave half a file.
  const tmp = `${out}.${process.pid}.tmp`
  try {
    execFileSync('cc', ['-O2', '-o', tmp, source], { stdio: 'inherit' })
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
    const message = `no C compiler (cc) to build ${path.relative(path.join(here, '..'), source)}: install one (Debian/Ubuntu: apt-get install gcc)`
    throw Object.assign(new Error(message), { code: 'ERR_BENCH_NO_COMPILER' })
  }
  fs.renameSync(tmp, out)
  return out
}

/** The flood sender (bench/blast.c). */
export const blastBinary = () => toolBinary('blast')

/** The RFC 5424 syslog sender (bench/sl5424.c). */
export const sl5424Binary = () => toolBinary('sl5424')

/** The C reference receiver (bench/recv_ref.c). */
export const recvRefBinary = () => toolBinary('recv_ref')
