// One measurement of bench/run.mjs: the sender (bench/blast.c) against one
// receiver in its own process, both pinned, both bounded in time. A receiver
// is bench/receiver.mjs (Node, over an IPC channel) or bench/recv_ref.c (C,
// over stdin/stdout lines); both answer the same messages: ready → go →
// finish → result.
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { blastBinary, recvRefBinary } from './blast.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
export const TAIL_S = 0.5 // the sender runs this long past the window, so the window never sees it stop
// dgram-ring's default ringSize: the C receiver's ring when --ring-size is not given.
const LIBRARY_RING_SIZE = 256
// dgram-ring's default bufferSize, likewise.
const LIBRARY_BUFFER_SIZE = 2048

export function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

export function haveTaskset() {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// Children alive now, killed if we are interrupted.
const children = new Set()
function track(child) {
  children.add(child)
  child.on('exit', () => children.delete(child))
  return child
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of children) child.kill('SIGKILL')
    process.exit(128 + os.constants.signals[signal])
  })
}

function pinned(o, cpu, file, args) {
  return o.pin ? ['taskset', ['-c', String(cpu), file, ...args]] : [file, args]
}

// /proc/PID/schedstat: [ns on a CPU, ns runnable but waiting for one].
function schedstat(pid) {
  const fields = readText(`/proc/${pid}/schedstat`)?.split(' ')
  return fields ? { ns: process.hrtime.bigint(), run: Number(fields[0]), wait: Number(fields[1]) } : undefined
}

// Runs the sender; `window` = [fromMs, toMs] after its start: over that span
// its CPU use and its wait for its core (other processes on it) are sampled.
function runBlast(o, port, size, seconds, window) {
  const args = [String(port), String(size), String(seconds), String(o.rate), String(o.batch), o.gso ? '1' : '0']
  const [file, argv] = pinned(o, o.senderCpu, blastBinary(), args)
  return new Promise((resolve, reject) => {
    const child = track(spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] }))
    let first
    let last
    const timers = [
      setTimeout(() => (first = schedstat(child.pid)), window[0]),
      setTimeout(() => (last = schedstat(child.pid)), window[1]),
    ]
    const usage = () => {
      if (!first || !last) return undefined
      const span = Number(last.ns - first.ns)
      return { cpuUtilization: (last.run - first.run) / span, runQueueWait: (last.wait - first.wait) / span }
    }
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`sender did not exit within ${seconds + 20} s`))
    }, (seconds + 20) * 1000)
    child.on('error', (error) => {
      clearTimeout(timer)
      timers.forEach(clearTimeout)
      reject(error)
    })
    // 'close', not 'exit': its output has been read by then.
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      timers.forEach(clearTimeout)
      if (code !== 0) return reject(new Error(`sender exited with ${code ?? signal}: ${stderr.trim()}`))
      const line = stdout.trim()
      const fields = Object.fromEntries(line.split(/\s+/).slice(1).map((kv) => kv.split('=')))
      resolve({
        line,
        sent: Number(fields.sent),
        pps: Number(fields.pps),
        errors: Number(fields.errs),
        secs: Number(fields.secs),
        // datagrams a sendmmsg message (GSO segments): a GRO receiver's kernel drop is this many
        segments: Number(fields.segs),
        window: usage(),
      })
    })
  })
}

// --- the receiver processes: { child, send(message), onMessage(fn), onAllRead(fn) } ---

// bench/receiver.mjs over an IPC channel; every message has been read once it disconnects.
function nodeReceiver(o, variant, size, config) {
  const nodeFlags = o.cpuProf
    ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`, `--cpu-prof-name=${variantName(variant).replace(/ /g, '-')}-${size}-${Date.now()}.cpuprofile`]
    : []
  const [file, argv] = pinned(o, o.receiverCpu, process.execPath, [...nodeFlags, path.join(here, 'receiver.mjs'), JSON.stringify(config)])
  const child = track(spawn(file, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  return {
    child,
    send: (message) => child.connected && child.send(message),
    onMessage: (fn) => child.on('message', fn),
    onAllRead: (fn) => child.on('disconnect', fn),
  }
}

// bench/recv_ref.c: JSON lines on stdout, `go` / `finish SENT` lines on stdin;
// every message has been read once its stdout ends.
function cReceiver(o, variant, size, config) {
  const args = [
    config.warmupMs,
    config.windowMs,
    config.hardMs,
    config.recvBufferSize ?? 0,
    Math.min(o.ringSize ?? LIBRARY_RING_SIZE, 1024),
    o.bufferSize ?? LIBRARY_BUFFER_SIZE,
    variant.receiver === 'c-gro' ? 1 : 0,
  ].map(String)
  const [file, argv] = pinned(o, o.receiverCpu, recvRefBinary(), args)
  const child = track(spawn(file, argv, { stdio: ['pipe', 'pipe', 'inherit'] }))
  child.stdin.on('error', () => {}) // it exited first: its exit code says why
  let pending = ''
  const listeners = []
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk) => {
    pending += chunk
    for (let eol; (eol = pending.indexOf('\n')) >= 0; pending = pending.slice(eol + 1)) {
      const message = JSON.parse(pending.slice(0, eol))
      if (message.type === 'result') Object.assign(message, { receiver: variant.receiver, size })
      for (const fn of listeners) fn(message)
    }
  })
  return {
    child,
    send: (message) => child.stdin.writable && child.stdin.write(message.type === 'go' ? 'go\n' : `finish ${message.sent}\n`),
    onMessage: (fn) => listeners.push(fn),
    onAllRead: (fn) => child.stdout.on('end', fn),
  }
}

/** What a row measures: a receiver and, for dgram-ring, its backend and coalesce. */
export function variantName({ receiver, backend, coalesce }) {
  return [receiver, backend, coalesce ? 'coalesce' : undefined].filter(Boolean).join(' ')
}

export const isCReceiver = (receiver) => receiver === 'c' || receiver === 'c-gro'

/**
 * One measurement: the result the receiver reported, with `sender` (runBlast's)
 * added. `start`, if given, is awaited once the receiver is ready, before its
 * window is opened (side by side: both open together).
 */
export function measure(o, variant, size, start = undefined) {
  const { receiver } = variant
  const name = `${variantName(variant)} receiver (size ${size})`
  const senderSeconds = o.warmup + o.seconds + TAIL_S
  const hardMs = Math.round((senderSeconds + 40) * 1000)
  const config = {
    receiver,
    size,
    warmupMs: Math.round(o.warmup * 1000),
    windowMs: Math.round(o.seconds * 1000),
    recvBufferSize: o.rcvbuf,
    ringSize: o.ringSize,
    bufferSize: o.bufferSize,
    backend: variant.backend,
    coalesce: variant.coalesce,
    touch: o.touch,
    modulePath: o.module,
    hardMs,
  }
  const rx = (isCReceiver(receiver) ? cReceiver : nodeReceiver)(o, variant, size, config)
  const { child } = rx

  return new Promise((resolve, reject) => {
    let settled = false
    let exit // { code, signal } once the child exited
    let allRead = false // every message has been read
    let result
    let sender
    let senderRun // the sender's promise, once started
    const finish = (error, value) => {
      if (settled) return
      settled = true
      clearTimeout(killTimer)
      clearTimeout(readyTimer)
      clearTimeout(allReadTimer)
      if (exit === undefined) child.kill('SIGKILL')
      if (!error) return resolve(value)
      // Never leave a sender flooding into the next measurement (it stops by itself).
      Promise.resolve(senderRun).catch(() => {}).then(() => reject(error))
    }
    const decide = () => {
      if (result && sender && exit.code === 0) finish(null, { ...result, variant, sender })
      else finish(new Error(`${name} exited with ${exit.code ?? exit.signal}${result ? '' : ' before reporting'}`))
    }
    // The child bounds itself; this is the backstop.
    const killTimer = setTimeout(() => finish(new Error(`${name} timed out; killed`)), hardMs + 5000)
    const readyTimer = setTimeout(() => finish(new Error(`${name} did not bind within 10 s; killed`)), 10_000)
    let allReadTimer
    child.on('error', (error) => finish(error))
    rx.onAllRead(() => {
      allRead = true
      if (exit) decide()
    })
    child.on('exit', (code, signal) => {
      exit = { code, signal }
      // 'exit' can come before the last message is read: wait for the channel to close.
      if (allRead) decide()
      else allReadTimer = setTimeout(decide, 2000)
    })
    rx.onMessage(async (message) => {
      if (message.type === 'error') return finish(new Error(`${name}: ${message.message}`))
      if (message.type === 'result') result = message
      if (message.type !== 'ready') return
      clearTimeout(readyTimer)
      try {
        await start?.()
        if (settled) return
        rx.send({ type: 'go' })
        senderRun = runBlast(o, message.port, size, senderSeconds, [config.warmupMs, config.warmupMs + config.windowMs])
        sender = await senderRun
        if (!settled) rx.send({ type: 'finish', sent: sender.sent })
      } catch (error) {
        finish(error)
      }
    })
  })
}
