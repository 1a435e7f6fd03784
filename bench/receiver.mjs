// One benchmark receiver, run by bench/run.mjs in its own process (so that
// RSS and CPU are this receiver's alone). Not meant to be run by hand.
//
//   node bench/receiver.mjs '<json config>'
//
// Talks to the parent over the IPC channel:
//   → {type:'ready', port, recvBufferSize}     bound, nothing received yet
//   ← {type:'go'}                               the sender starts now: time the window from here
//   ← {type:'finish', sent}                     the sender has exited
//   → {type:'result', ...}                      counts, CPU, RSS; then the process exits
// Everything is bounded: the process exits by itself `hardMs` after start.
import dgram from 'node:dgram'
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { createRequire } from 'node:module'

const config = JSON.parse(process.argv[2])
const { receiver, size, warmupMs, windowMs, recvBufferSize, ringSize, bufferSize, backend, coalesce, touch, modulePath, hardMs } = config
const QUIET_MS = 300 // the socket counts as drained after this long without a datagram
const DRAIN_CAP_MS = 10_000

if (typeof process.send !== 'function') {
  console.error('bench/receiver.mjs is started by bench/run.mjs (it needs an IPC channel)')
  process.exit(2)
}

const hardTimer = setTimeout(() => fail(new Error(`receiver did not finish within ${hardMs} ms`), 3), hardMs)
hardTimer.unref()

let count = 0 // datagrams consumed (by the 'message' handler or the for-await body)
let bytes = 0
let touched = 0 // keeps the `touch: 'all'` reads observable

function fail(error, code = 1) {
  try {
    process.send({ type: 'error', message: String(error?.stack ?? error) })
  } catch {}
  setTimeout(() => process.exit(code), 100).unref()
}
process.on('uncaughtException', (error) => fail(error))
// The parent went away (killed, interrupted): nobody wants the result.
let reported = false
process.on('disconnect', () => {
  if (!reported) process.exit(4)
})
process.on('unhandledRejection', (error) => fail(error))

// Time this process spent runnable but waiting for its CPU (/proc/self/schedstat,
// second field, ns): the share of the window another process held our core.
function runDelayNs() {
  try {
    return Number(fs.readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1])
  } catch {
    return NaN
  }
}

function snapshot() {
  return { count, bytes, cpu: process.cpuUsage(), ns: process.hrtime.bigint(), runDelay: runDelayNs() }
}

// The kernel's view of our socket in /proc/net/udp: its drop counter and the
// bytes still queued (unread) in its receive buffer.
function procSocket(port) {
  try {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
    for (const line of fs.readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 13 || fields[1] !== `0100007F:${hexPort}`) continue
      return { drops: Number(fields[fields.length - 1]), queuedBytes: parseInt(fields[4].split(':')[1], 16) }
    }
  } catch {}
  return { drops: undefined, queuedBytes: undefined }
}

// --- the receivers: each returns { port, recvBufferSize, done, close, extra } ---

function bindDgram() {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize })
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve(socket)
    })
  })
}

async function messageReceiver() {
  const socket = await bindDgram()
  if (touch === 'none') {
    socket.on('message', () => {
      count++
    })
  } else if (touch === 'data') {
    socket.on('message', (msg) => {
      count++
      bytes += msg.length
    })
  } else {
    socket.on('message', (msg, rinfo) => {
      count++
      bytes += msg.length
      touched += rinfo.address.length + rinfo.port
    })
  }
  let closed
  const done = new Promise((resolve) => (closed = resolve))
  return {
    port: socket.address().port,
    recvBufferSize: socket.getRecvBufferSize(),
    done,
    close: () => socket.close(closed),
    extra: () => ({}),
  }
}

// What users write today: push every message into an object-mode Readable
// (no backpressure reaches the socket) and read it with for await.
async function readableReceiver() {
  const socket = await bindDgram()
  const readable = new Readable({ objectMode: true, read() {} })
  socket.on('message', (data, rinfo) => readable.push({ data, rinfo }))
  const done = (async () => {
    if (touch === 'none') {
      for await (const _ of readable) count++
    } else if (touch === 'data') {
      for await (const m of readable) {
        count++
        bytes += m.data.length
      }
    } else {
      for await (const m of readable) {
        count++
        bytes += m.data.length
        touched += m.rinfo.address.length + m.rinfo.port
      }
    }
  })()
  // How far the for-await body fell behind the socket, sampled (not per message).
  let peakReadableLength = 0
  const sampler = setInterval(() => {
    peakReadableLength = Math.max(peakReadableLength, readable.readableLength)
  }, 10)
  sampler.unref()
  return {
    port: socket.address().port,
    recvBufferSize: socket.getRecvBufferSize(),
    done,
    close: () => {
      clearInterval(sampler)
      socket.close(() => readable.push(null))
    },
    extra: () => ({ peakReadableLength }),
  }
}

// dgram-ring's listen() with the row's backend and coalesce.
async function listenRing() {
  const require = createRequire(import.meta.url)
  const ring = require(modulePath)
  const options = { address: '127.0.0.1', port: 0, recvBufferSize }
  if (ringSize) options.ringSize = ringSize
  if (bufferSize) options.bufferSize = bufferSize
  if (backend) options.backend = backend
  if (coalesce) options.coalesce = true
  return ring.listen(options)
}

// With coalesce a datagram may carry several of the sender's segments (all
// `size` bytes): counted by its length, so the count is in the sender's
// datagrams whether the library hands over segments or coalesced buffers
// (and so even `touch: 'none'` reads the length there).
const segments = coalesce ? (length) => Math.ceil(length / size) : () => 1

function ringHandle(stream, done) {
  let finalStats
  return {
    port: stream.address().port,
    recvBufferSize, // requested; the addon sets it with SO_RCVBUFFORCE
    done,
    close: async () => {
      await stream.close()
      finalStats = stream.stats()
    },
    extra: () => ({ backend: stream.backend, stats: finalStats ?? stream.stats() }),
  }
}

// dgram-ring, one datagram at a time through for await.
async function ringReceiver() {
  const stream = await listenRing()
  const done = (async () => {
    if (touch === 'none' && !coalesce) {
      for await (const _ of stream) count++
    } else if (touch === 'data') {
      for await (const d of stream) {
        const length = d.data.length
        count += segments(length)
        bytes += length
      }
    } else {
      for await (const d of stream) {
        const length = d.data.length
        count += segments(length)
        bytes += length
        touched += d.remoteAddress.length + d.remotePort
      }
    }
  })()
  return ringHandle(stream, done)
}

// dgram-ring, a batch at a time through stream.batches() (with `recycle`:
// batches({recycle: true})); each datagram of the batch is read as the
// for-await loops read theirs.
async function batchesReceiver(recycle = false) {
  const stream = await listenRing()
  const batches = () => stream.batches({ recycle })
  const done = (async () => {
    if (touch === 'none' && !coalesce) {
      for await (const batch of batches()) count += batch.length
    } else if (touch === 'data') {
      for await (const batch of batches()) {
        for (const d of batch) {
          const length = d.data.length
          count += segments(length)
          bytes += length
        }
      }
    } else {
      for await (const batch of batches()) {
        for (const d of batch) {
          const length = d.data.length
          count += segments(length)
          bytes += length
          touched += d.remoteAddress.length + d.remotePort
        }
      }
    }
  })()
  return ringHandle(stream, done)
}

const receivers = { message: messageReceiver, readable: readableReceiver, ring: ringReceiver, batches: () => batchesReceiver(), recycle: () => batchesReceiver(true) }

async function main() {
  const rx = await receivers[receiver]()
  const rssAtReady = process.memoryUsage().rss
  let start, end
  let finishMessage
  const finished = new Promise((resolve) => (finishMessage = resolve))
  process.on('message', (message) => {
    if (message.type === 'go') {
      setTimeout(() => {
        start = snapshot()
      }, warmupMs)
      setTimeout(() => {
        end = snapshot()
      }, warmupMs + windowMs)
    } else if (message.type === 'finish') {
      finishMessage(message)
    }
  })
  process.send({ type: 'ready', port: rx.port, recvBufferSize: rx.recvBufferSize })

  const { sent } = await finished
  // Drain: read until nothing has arrived for QUIET_MS (bounded by DRAIN_CAP_MS).
  const drainStart = Date.now()
  let last = -1
  let quietSince = Date.now()
  while (Date.now() - drainStart < DRAIN_CAP_MS) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    if (count !== last) {
      last = count
      quietSince = Date.now()
    } else if (Date.now() - quietSince >= QUIET_MS) {
      break
    }
  }
  const drained = Date.now() - quietSince >= QUIET_MS
  const proc = procSocket(rx.port)
  const within = (promise, what) =>
    Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} within 5 s`)), 5000).unref())])
  await within(rx.close(), 'close() did not resolve')
  await within(rx.done, 'the receiver did not end after close()')
  if (!start || !end) throw new Error('the measurement window did not complete (is --seconds shorter than the sender ran?)')

  const cpuUs = end.cpu.user - start.cpu.user + (end.cpu.system - start.cpu.system)
  const windowNs = Number(end.ns - start.ns)
  const windowCount = end.count - start.count
  process.send({
    type: 'result',
    receiver,
    size,
    sent,
    received: count,
    bytes,
    drained,
    window: {
      seconds: windowNs / 1e9,
      datagrams: windowCount,
      pps: windowCount / (windowNs / 1e9),
      cpuUserUs: end.cpu.user - start.cpu.user,
      cpuSystemUs: end.cpu.system - start.cpu.system,
      cpuNsPerDatagram: windowCount > 0 ? (cpuUs * 1000) / windowCount : null,
      cpuUtilization: cpuUs / 1e6 / (windowNs / 1e9),
      // runnable but not running (another process had the core); NaN where unknown
      runQueueWait: (end.runDelay - start.runDelay) / windowNs,
    },
    kernelDropsProc: proc.drops,
    queuedBytes: proc.queuedBytes,
    maxRSS: process.resourceUsage().maxRSS * 1024,
    rssAtReady,
    recvBufferSize: rx.recvBufferSize,
    touched,
    ...rx.extra(),
  })
  // Let the IPC message flush, then leave.
  reported = true
  process.disconnect()
}

main().catch((error) => fail(error))
