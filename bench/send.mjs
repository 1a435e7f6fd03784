#!/usr/bin/env node
// `npm run bench -- --send` (or node bench/send.mjs): sending, dgram-ring
// against node:dgram, the same run. Each sender runs in a child process of its
// own (so its CPU is its own) and sends as fast as it can for a fixed window
// to 127.0.0.1, where one receiver (a dgram-ring stream with coalesce: true,
// counting batches: it keeps up with GSO) counts what arrives:
//   dgram    node:dgram's socket.send(), 64 sends in flight (callbacks)
//   send     dgram-ring's stream.send(), 64 a turn (one sendmmsg, GSO runs)
//   sender   dgram-ring's stream.sender() under pipeline() (highWaterMark 1024)
// Reported: datagrams a second sent, CPU (user + system) of the sending
// process a datagram, and the receiver's count (loopback: what the receiver
// could not take is the kernel's drop, not the sender's).
//
//   node bench/send.mjs [--seconds S] [--sizes A,B] [--senders dgram,send,sender] [--burst N] [--json]
//
// Bounded: every child exits by itself after the window; the parent kills
// what has not ended 30 s after it.
import { fork } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = path.dirname(fileURLToPath(import.meta.url))
const SENDERS = ['dgram', 'send', 'sender']

function parseArgs(argv) {
  const o = { seconds: 2, sizes: [64, 512, 1400], senders: SENDERS, burst: 64, json: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const next = () => argv[++i]
    const number = (v, min, max) => {
      const n = Number(v)
      if (!Number.isFinite(n) || n < min || n > max) {
        console.error(`${arg}: a number from ${min} to ${max}, not ${v}`)
        process.exit(2)
      }
      return n
    }
    switch (arg) {
      case '--seconds': o.seconds = number(next(), 0.2, 60); break
      case '--sizes': o.sizes = String(next()).split(',').map((s) => number(s, 1, 65507)); break
      case '--burst': o.burst = Math.floor(number(next(), 1, 4096)); break
      case '--senders':
        o.senders = String(next()).split(',')
        for (const s of o.senders) if (!SENDERS.includes(s)) { console.error(`--senders: unknown '${s}' (${SENDERS})`); process.exit(2) }
        break
      case '--json': o.json = true; break
      case '--send': break // from bench/run.mjs
      case '--help': console.log('node bench/send.mjs [--seconds S] [--sizes A,B] [--senders dgram,send,sender] [--burst N] [--json]'); process.exit(0)
      default: console.error(`unknown option ${arg}`); process.exit(2)
    }
  }
  return o
}

// ---- children -------------------------------------------------------------------

const modulePath = process.env.DGRAM_RING_MODULE ?? path.join(here, '..')

async function receiverChild() {
  const ring = createRequire(import.meta.url)(modulePath)
  const stream = await ring.listen({ address: '127.0.0.1', coalesce: process.platform === 'linux', recvBufferSize: 8 << 20, ringSize: 1024 })
  let count = 0
  process.on('message', async (m) => {
    if (m === 'count') {
      // let what is in flight land first
      await new Promise((resolve) => setTimeout(resolve, 200))
      process.send({ received: count, reset: true })
      count = 0
    } else if (m === 'exit') {
      await stream.close()
      process.exit(0)
    }
  })
  process.send({ port: stream.address().port })
  for await (const batch of stream.batches()) count += batch.length
}

async function senderChild(kind, port, size, seconds, burst) {
  const payload = Buffer.alloc(size, 0x61)
  let sent = 0
  let failed = 0
  const start = process.hrtime.bigint()
  const cpu0 = process.cpuUsage()
  const end = Date.now() + seconds * 1000
  if (kind === 'dgram') {
    const dgram = await import('node:dgram')
    const socket = dgram.createSocket('udp4')
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve))
    await new Promise((resolve) => {
      let inFlight = 0
      const pump = () => {
        while (inFlight < burst && Date.now() < end) {
          inFlight++
          socket.send(payload, port, '127.0.0.1', (error) => {
            inFlight--
            if (error) failed++
            else sent++
            if (Date.now() < end) {
              if (inFlight === 0) pump()
            } else if (inFlight === 0) resolve()
          })
        }
      }
      pump()
    })
    socket.close()
  } else {
    const ring = createRequire(import.meta.url)(modulePath)
    const stream = await ring.listen({ address: '127.0.0.1' })
    if (kind === 'send') {
      while (Date.now() < end) {
        const sends = []
        for (let i = 0; i < burst; i++) sends.push(stream.send(payload, port, '127.0.0.1'))
        for (const r of await Promise.allSettled(sends)) r.status === 'fulfilled' ? sent++ : failed++
      }
    } else {
      const { pipeline } = await import('node:stream/promises')
      const sender = stream.sender()
      const written = { n: 0 }
      await pipeline(function* () {
        while (Date.now() < end) {
          for (let i = 0; i < burst; i++) {
            written.n++
            yield { data: payload, port, address: '127.0.0.1' }
          }
        }
      }, sender)
      sent = written.n
    }
    await stream.close()
  }
  const wallNs = Number(process.hrtime.bigint() - start)
  const cpu = process.cpuUsage(cpu0)
  const cpuNs = (cpu.user + cpu.system) * 1000
  process.send({ sent, failed, pps: sent / (wallNs / 1e9), cpuNsPerDatagram: sent > 0 ? cpuNs / sent : 0, cpuShare: cpuNs / wallNs })
  process.exit(0)
}

// ---- parent ----------------------------------------------------------------------

function child(args) {
  const c = fork(fileURLToPath(import.meta.url), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const timer = setTimeout(() => c.kill('SIGKILL'), 30_000 + 60_000)
  c.on('exit', () => clearTimeout(timer))
  return c
}

const nextMessage = (c) => new Promise((resolve, reject) => {
  c.once('message', resolve)
  c.once('exit', (code) => reject(new Error(`child exited (${code}) before answering`)))
})

export async function main(argv = process.argv.slice(2)) {
  const o = parseArgs(argv)
  const rx = child(['--child-receiver'])
  const { port } = await nextMessage(rx)
  const rows = []
  try {
    for (const size of o.sizes) {
      for (const kind of o.senders) {
        const tx = child(['--child-sender', kind, String(port), String(size), String(o.seconds), String(o.burst)])
        const result = await nextMessage(tx)
        rx.send('count')
        const { received } = await nextMessage(rx)
        rows.push({ sender: kind, size, ...result, received })
      }
    }
  } finally {
    rx.send('exit')
  }
  const base = new Map(rows.filter((r) => r.sender === 'dgram').map((r) => [r.size, r]))
  if (o.json) {
    console.log(JSON.stringify({ rows, seconds: o.seconds, burst: o.burst, node: process.version, cpus: os.cpus().length }))
    return
  }
  console.log(`Sending, ${o.seconds} s a row, loopback, ${o.burst} sends a turn; Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'})\n`)
  console.log('| sender | size | datagrams/s | CPU ns a datagram | CPU share | received | failed | vs node:dgram (rate, CPU) |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |')
  for (const r of rows) {
    const b = base.get(r.size)
    const ratio = b && r.sender !== 'dgram' ? `${(r.pps / b.pps).toFixed(2)}×, ${(r.cpuNsPerDatagram / b.cpuNsPerDatagram).toFixed(2)}×` : ''
    console.log(`| ${r.sender} | ${r.size} | ${Math.round(r.pps).toLocaleString('en')} | ${Math.round(r.cpuNsPerDatagram)} | ${(r.cpuShare * 100).toFixed(0)}% | ${r.received.toLocaleString('en')} | ${r.failed} | ${ratio} |`)
  }
}

const args = process.argv.slice(2)
if (args[0] === '--child-receiver') {
  await receiverChild()
} else if (args[0] === '--child-sender') {
  await senderChild(args[1], Number(args[2]), Number(args[3]), Number(args[4]), Number(args[5]))
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main()
}
