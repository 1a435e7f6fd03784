// Shared by the tests: the compiled package, a native flood sender, sockets
// that close themselves when a test ends (so a failing test cannot leave a
// handle open and hang the run), and what a test needs of the machine.
import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import tap from 'tap'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { blastBinary, toolBinary } from '../../bench/blast.mjs'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(import.meta.url)
/** The package as users load it (CommonJS entry). */
export const ring = require(root)

/**
 * Backends to run every backend-neutral test against, each forced by name:
 * all this build can run here, or only the one DGRAM_RING_BACKEND names
 * (.ci/run runs the suite once per backend that way).
 */
export const backends = ['', 'auto', undefined].includes(process.env.DGRAM_RING_BACKEND) ? ring.backends : [process.env.DGRAM_RING_BACKEND]

/**
 * Floods 127.0.0.1:port with the native sender and resolves with what it sent.
 * Bounded by `seconds`: the sender stops by itself. `cpu` pins it with
 * taskset: a test that passes it says so with `skipUnless(tool('taskset'))`.
 */
export function blast({ port, size = 64, seconds = 1, rate = 0, batch = 64, gso = false, cpu }) {
  const args = [String(port), String(size), String(seconds), String(rate), String(batch), gso ? '1' : '0']
  if (cpu !== undefined && missingTool('taskset')) return Promise.reject(new Error(`pinning the sender ${missingTool('taskset')}`))
  const [file, argv] = cpu === undefined ? [blastBinary(), args] : ['taskset', ['-c', String(cpu), blastBinary(), ...args]]
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: (seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(Object.assign(error, { stderr }))
      const fields = Object.fromEntries(stdout.trim().split(/\s+/).slice(1).map((kv) => kv.split('=')))
      resolve({ sent: Number(fields.sent), errors: Number(fields.errs), pps: Number(fields.pps), line: stdout.trim() })
    })
  })
}

/**
 * Sends `count` sequence-numbered datagrams with UDP GSO (test/tools/gso_send.c:
 * `segments` a message, each `size` bytes but the last of each message,
 * `last`), paced, bounded by `count`. Resolves with the count sent.
 */
export function gsoSend({ port, count, size, segments, last = 0, address = '127.0.0.1' }) {
  const binary = toolBinary('gso_send', path.join(root, 'test', 'tools', 'gso_send.c'))
  const args = [port, count, size, segments, last, address].map(String)
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) return reject(Object.assign(error, { stderr }))
      resolve(Number(/^sent (\d+)$/m.exec(stdout)?.[1]))
    })
  })
}

/** Checks datagram `seq` as gso_send made it: its number, then (seq + j) & 0xff. */
export function gsoPayloadIntact(data, seq, length) {
  if (data.length !== length || data.readUInt32BE(0) !== seq) return false
  for (let j = 4; j < length; j++) if (data[j] !== ((seq + j - 4) & 0xff)) return false
  return true
}

/** Sends to 127.0.0.1:port from node:dgram until the function it returns is called (bounded: at most `ms`). */
export function flood(port, ms = 20_000) {
  const socket = dgram.createSocket('udp4')
  const payload = Buffer.alloc(300, 7)
  let running = true
  const deadline = Date.now() + ms
  const done = (async () => {
    while (running && Date.now() < deadline) {
      for (let i = 0; i < 64; i++) socket.send(payload, port, '127.0.0.1')
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  return async () => {
    running = false
    await done
    await new Promise((resolve) => socket.close(resolve))
  }
}

/** A stream that is closed when the test ends, whatever happens. */
export async function listenFor(t, options) {
  const stream = await ring.listen(options)
  t.teardown(() => stream.close())
  return stream
}

/** A node:dgram client closed when the test ends. */
export function client(t, type = 'udp4') {
  const socket = dgram.createSocket(type)
  t.teardown(() => new Promise((resolve) => socket.close(resolve)))
  return socket
}

/** Sends each buffer in order, waiting for each send to be handed to the kernel. */
export async function sendAll(socket, buffers, port, address) {
  for (const buffer of buffers) {
    await new Promise((resolve, reject) => socket.send(buffer, port, address, (error) => (error ? reject(error) : resolve())))
  }
}

/** Reads `count` datagrams, of those `keep` accepts (or fails after `ms`). */
export async function take(stream, count, ms = 10_000, keep = () => true) {
  const got = []
  const timer = setTimeout(() => stream.destroy(new Error(`timed out after ${got.length} of ${count} datagrams`)), ms)
  try {
    for await (const d of stream) {
      if (!keep(d)) continue
      got.push(d)
      if (got.length === count) break
    }
  } finally {
    clearTimeout(timer)
  }
  return got
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether this OS lists a process's descriptors (Linux /proc): descriptor-leak checks need it. */
export const canCountFds = process.platform === 'linux'

/** Open file descriptors of this process (Linux). */
export function openFds() {
  return fs.readdirSync('/proc/self/fd').length
}

/**
 * The optional system tools the tests run, each with the Debian packages that
 * install it (test/lib/optional-tools.json, which .ci/run installs). A fresh
 * machine with Node and a C++ toolchain may have none of them: a test that
 * needs one skips, naming the package; under CI=true a missing one fails.
 */
export const TOOLS = JSON.parse(fs.readFileSync(new URL('./optional-tools.json', import.meta.url), 'utf8'))

/** Whether CI=true: there every optional tool is installed, and a missing one is a failure, not a skip. */
export const inCI = process.env.CI === 'true'

/** Whether `command` is an executable file in a directory of PATH (no shell involved). */
export function installed(command) {
  const extensions = process.platform === 'win32' ? ['', ...(process.env.PATHEXT ?? '.EXE').split(';')] : ['']
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue
    for (const extension of extensions) {
      try {
        const file = path.join(dir, command + extension)
        fs.accessSync(file, fs.constants.X_OK)
        if (fs.statSync(file).isFile()) return true
      } catch {}
    }
  }
  return false
}

/** Why `command` cannot run here ("needs ping (Debian package iputils-ping)"), or false when it can. */
export function missingTool(command, debianPackage = TOOLS[command]?.join(', ')) {
  if (installed(command)) return false
  if (!debianPackage) return `needs ${command}`
  return `needs ${command} (Debian package${debianPackage.includes(',') ? 's' : ''} ${debianPackage})`
}

/** A system tool a test runs: `skipUnless(tool('ping'))`. */
export const tool = (command, debianPackage) => ({ command, debianPackage })
/** A property of the machine: `skipUnless(machine(isRoot, 'raw sockets need root (CAP_NET_RAW)'))`. */
export const machine = (holds, reason) => ({ holds, reason })

/**
 * tap's `skip` option for a test that needs tools or machine properties:
 * false when all are there, else why not. Properties are checked first, in
 * order, and the first that does not hold is the reason (the tools are then
 * moot). A missing tool skips, except under CI=true, where it fails the file.
 */
export function skipUnless(...requirements) {
  for (const requirement of requirements) {
    if ('holds' in requirement && !requirement.holds) return requirement.reason
  }
  const missing = requirements.filter((r) => 'command' in r).map((r) => missingTool(r.command, r.debianPackage)).filter(Boolean)
  if (missing.length === 0) return false
  const reason = missing.join('; ')
  if (inCI && !failedInCI.has(reason)) {
    failedInCI.add(reason)
    tap.fail(requiredInCI(reason))
  }
  return reason
}
const failedInCI = new Set()
const requiredInCI = (reason) => `${reason}: CI=true requires every optional tool (.ci/run installs them)`

/**
 * Inside a test: true when `command` is installed. Otherwise the test is
 * skipped with the package to install (return at once), or failed under CI=true.
 */
export function requireTool(t, command, debianPackage) {
  const reason = missingTool(command, debianPackage)
  if (!reason) return true
  if (inCI) t.fail(requiredInCI(reason))
  else t.skip(reason)
  return false
}

/** Whether this process is root (uid 0): raw sockets, and dropping privileges, need it. */
export const isRoot = process.getuid?.() === 0

/**
 * A copy of the package as it runs (package.json, dist/, the compiled addon
 * and node-gyp-build), plus `extra` files, in a new directory every user can
 * read: a process that dropped to nobody cannot read a checkout under a home
 * directory or `mktemp -d`. Removed when the test ends. Returns
 * { root, files }: the package's copy, and the copies of `extra` by base name.
 */
export function readableCopy(t, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pkg = path.join(dir, 'dgram-ring')
  const copy = (from, to) => fs.cpSync(from, to, { recursive: true, dereference: true })
  for (const entry of ['package.json', 'dist', 'prebuilds', path.join('build', 'Release'), path.join('node_modules', 'node-gyp-build')]) {
    if (fs.existsSync(path.join(root, entry))) copy(path.join(root, entry), path.join(pkg, entry))
  }
  const files = {}
  for (const file of extra) copy(file, (files[path.basename(file)] = path.join(dir, path.basename(file))))
  // Modes are set, not copied: a checkout made under umask 077 has none for others.
  const open = (p) => {
    const directory = fs.statSync(p).isDirectory()
    fs.chmodSync(p, directory ? 0o755 : 0o644)
    if (directory) for (const entry of fs.readdirSync(p)) open(path.join(p, entry))
  }
  open(dir)
  return { root: pkg, files }
}

/** The uid and gid of the user `name` from /etc/passwd, or undefined where it has none. */
export function systemUser(name) {
  try {
    const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))
    if (line === undefined) return undefined
    const [, , uid, gid] = line.split(':')
    return { uid: Number(uid), gid: Number(gid) }
  } catch {
    return undefined
  }
}
