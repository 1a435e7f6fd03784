// What every benchmark script's command line needs: its help (the comment
// at the top of its file) and numbers checked against their range.
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Prints the comment heading the module at `url` (a shebang skipped) and exits with `code`: stdout for 0, else stderr. */
export function usage(url, code) {
  const lines = fs.readFileSync(fileURLToPath(url), 'utf8').split('\n')
  const start = lines[0].startsWith('#!') ? 1 : 0
  const end = lines.findIndex((line, i) => i >= start && !line.startsWith('//'))
  const help = lines.slice(start, end).map((line) => line.replace(/^\/\/ ?/, '')).join('\n')
  ;(code === 0 ? process.stdout : process.stderr).write(`${help}\n`)
  process.exit(code)
}

/** `value` as a number from `min` to `max`; otherwise says so, naming the option, and exits with 2. */
export function numberOption(name, value, min, max) {
  const n = Number(value)
  if (value === undefined || value === '' || !Number.isFinite(n) || n < min || n > max) {
    console.error(`${name}: expected a number from ${min} to ${max}, got ${value}`)
    process.exit(2)
  }
  return n
}
