// Running the `dgram-ring` command as users run it (node bin/dgram-ring.js),
// for the CLI tests. Every child is killed when its test ends, and every
// wait is bounded.
import { execFile, execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { root } from './helpers.mjs'

export const cli = path.join(root, 'bin', 'dgram-ring.js')
export const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
/** Upper bound on any wait: a broken CLI fails the test instead of hanging the run. */
export const LIMIT_MS = 30_000

// Optional tools: skip naming the Debian package, or fail under CI=true.
export { installed, requireTool } from './helpers.mjs'

/** Runs the CLI to completion: { code, signal, stdout, stderr }. */
export function run(args, options = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: LIMIT_MS, killSignal: 'SIGKILL', ...options }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code ?? null : 0, signal: error?.signal ?? null, stdout, stderr })
    })
  })
}

/** Polls `condition` until it holds; throws after LIMIT_MS. */
export async function until(condition, what) {
  const deadline = Date.now() + LIMIT_MS
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Starts `dgram-ring listen --port 0 …args` (on 127.0.0.1 unless args name an
 * address) and resolves once it says where it listens. `exited` resolves with
 * { code, signal, stdout, stderr }; `lines()` is stdout so far, split.
 */
export async function startListen(t, args) {
  const address = args.includes('--address') || args.includes('--type') ? [] : ['--address', '127.0.0.1']
  const child = spawn(process.execPath, [cli, 'listen', ...address, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  const killer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS)
  exited.then(() => clearTimeout(killer))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return exited
  })
  let ended = false
  exited.then(() => (ended = true))
  await until(() => ended || /listening on .*:\d+ \(/.test(stderr), 'the listening line')
  const match = /^dgram-ring: listening on (\S+):(\d+) \((\w+)[,)][^\n]*\n/.exec(stderr)
  if (match === null) throw new Error(`no listening line; stderr: ${stderr}`)
  return {
    child,
    exited,
    address: match[1],
    port: Number(match[2]),
    backend: match[3],
    lines: () => stdout.split('\n').filter((line) => line !== ''),
  }
}

/** bash writes `printf FORMAT` as one datagram to host:port through its /dev/udp. */
export function bashSend(port, format, host = '127.0.0.1') {
  execFileSync('bash', ['-c', `printf '${format}' > /dev/udp/${host}/${port}`], { timeout: LIMIT_MS })
}

export const parse = (result) => result.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line))
export const stderrLines = (result) => result.stderr.split('\n').filter((line) => line !== '')
/** The summary line: its numbers by name, or null if `line` is not one. */
export function summaryOf(line) {
  const m = /^dgram-ring: written (\d+), received (\d+), not written (\d+), discarded (\d+), kernel drops (\d+|n\/a), truncated (\d+), bytes (\d+)$/.exec(line ?? '')
  if (m === null) return null
  const [written, received, notWritten, discarded, kernelDrops, truncated, bytes] = m.slice(1).map((v) => (v === 'n/a' ? undefined : Number(v)))
  return { written, received, notWritten, discarded, kernelDrops, truncated, bytes }
}

