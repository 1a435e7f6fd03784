// Shared by the tests: the compiled package, a native flood sender, and
// sockets that close themselves when a test ends (so a failing test cannot
// leave a handle open and hang the run).
import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { blastBinary } from '../../bench/blast.mjs'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(import.meta.url)
/** The package as users load it (CommonJS entry). */
export const ring = require(root)

/** Backends to run every backend-neutral test against: all this build has, each forced by name. */
export const backends = ring.backends

/**
 * Floods 127.0.0.1:port with the native sender and resolves with what it sent.
 * Bounded by `seconds`: the sender stops by itself.
 */
export function blast({ port, size = 64, seconds = 1, rate = 0, batch = 64, gso = false, cpu }) {
  const args = [String(port), String(size), String(seconds), String(rate), String(batch), gso ? '1' : '0']
  const [file, argv] = cpu === undefined ? [blastBinary(), args] : ['taskset', ['-c', String(cpu), blastBinary(), ...args]]
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: (seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(Object.assign(error, { stderr }))
      const fields = Object.fromEntries(stdout.trim().split(/\s+/).slice(1).map((kv) => kv.split('=')))
      resolve({ sent: Number(fields.sent), errors: Number(fields.errs), pps: Number(fields.pps), line: stdout.trim() })
    })
  })
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

/** Reads `count` datagrams (or fails after `ms`). */
export async function take(stream, count, ms = 10_000) {
  const got = []
  const timer = setTimeout(() => stream.destroy(new Error(`timed out after ${got.length} of ${count} datagrams`)), ms)
  try {
    for await (const d of stream) {
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
