// `npm run bench -- --jetstream`: datagrams a second from the wire into an
// acknowledged JetStream stream. RFC 5424 messages from the vendored sender
// (bench/sl5424.c) to `dgram-ring listen --parse syslog --jetstream …`, into an
// R1 stream on one nats-server and an R3 stream on a 3-node cluster (routes on
// loopback), each with --max-in-flight 64, 256 and 1024. Every step starts
// its servers' stream afresh and a new receiver, stopped with SIGINT once
// the sender is done; its summary must add up: acknowledged + failed +
// discarded + kernel drops = sent, and the stream must hold the acknowledged.
// nats-server is Debian's package `nats-server`; the NATS client packages are
// the devDependencies @nats-io/transport-node and @nats-io/jetstream.
//
//   --seconds S          sending time a step, at most 5 (default 3)
//   --rate PPS           the sender's pace (default 100000; 0: flat out)
//   --replicas LIST      any of 1,3 (default 1,3)
//   --in-flight LIST     --max-in-flight values (default 64,256,1024)
//   --size BYTES         message size (default 200)
//   --json FILE          also write the results as JSON
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { sl5424Binary } from './blast.mjs'
import { numberOption, usage as printUsage } from './options.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.join(here, '..')
const CLI = path.join(root, 'bin', 'dgram-ring.js')
const require = createRequire(path.join(root, 'package.json'))

const usage = (code) => printUsage(import.meta.url, code)

function parseArgs(argv) {
  const o = { seconds: 3, rate: 100_000, replicas: [1, 3], inFlight: [64, 256, 1024], size: 200, json: undefined }
  const list = (text, min, max) => String(text).split(',').map((v) => number(v, min, max))
  const number = (text, min, max) => numberOption('bench --jetstream', text, min, max)
  for (let i = 0; i < argv.length; i++) {
    const next = () => argv[++i]
    switch (argv[i]) {
      case '--seconds': o.seconds = number(next(), 0.2, 5); break
      case '--rate': o.rate = number(next(), 0, 1e7); break
      case '--replicas': o.replicas = list(next(), 1, 3).filter((r) => r === 1 || r === 3); break
      case '--in-flight': o.inFlight = list(next(), 1, 65536).map(Math.floor); break
      case '--size': o.size = Math.floor(number(next(), 80, 65507)); break
      case '--json': o.json = next(); break
      case '-h': case '--help': usage(0); break
      default: console.error(`bench --jetstream: unknown option '${argv[i]}'`); usage(2)
    }
  }
  return o
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** `size` nats-servers (1: alone; 3: one cluster), started; `stop()` kills them and removes their dirs. */
async function startServers(size) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-bench-nats-'))
  const ports = [], routes = []
  for (let i = 0; i < size; i++) {
    ports.push(await freePort())
    routes.push(await freePort())
  }
  const children = []
  const stop = async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((r) => child.on('close', r)) : undefined)))
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < size; i++) {
      const conf = [`server_name: n${i + 1}`, `listen: 127.0.0.1:${ports[i]}`, `jetstream { store_dir: ${JSON.stringify(path.join(dir, `n${i + 1}`))} }`]
      if (size > 1) conf.push(`cluster { name: bench, listen: 127.0.0.1:${routes[i]}, routes: [${routes.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}] }`)
      const file = path.join(dir, `n${i + 1}.conf`)
      fs.writeFileSync(file, conf.join('\n') + '\n')
      const child = spawn('nats-server', ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] })
      children.push(child)
      let log = ''
      child.stderr.setEncoding('utf8').on('data', (chunk) => (log += chunk))
      const deadline = Date.now() + 15_000
      while (!/Server is ready/.test(log)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nats-server n${i + 1} did not start: ${log}`)
        await sleep(20)
      }
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { urls: ports.map((p) => `nats://127.0.0.1:${p}`), stop }
}

/** Runs fn(jsm) on a connection to `urls`, retried while a cluster elects its leaders (bounded). */
async function withJsm(urls, fn) {
  const { connect } = require('@nats-io/transport-node')
  const { jetstreamManager } = require('@nats-io/jetstream')
  const nc = await connect({ servers: urls })
  try {
    const deadline = Date.now() + 20_000
    for (;;) {
      try {
        return await fn(await jetstreamManager(nc, { timeout: 5000 }))
      } catch (error) {
        if (Date.now() > deadline) throw error
        await sleep(200)
      }
    }
  } finally {
    await nc.close()
  }
}

function send(port, o) {
  return new Promise((resolve, reject) => {
    execFile(sl5424Binary(), [String(port), String(o.seconds), String(o.rate), '32', String(o.size)], { timeout: 60_000 }, (error, stdout) => {
      if (error) return reject(error)
      resolve(Number(/sent=(\d+)/.exec(stdout)?.[1]))
    })
  })
}

const SUMMARY = /dgram-ring: acknowledged (\d+), failed (\d+), received (\d+), not published (\d+), discarded (\d+), kernel drops (\d+|n\/a), truncated (\d+), bytes (\d+), retried (\d+), duplicates (\d+)/

/** One step: a fresh stream, a receiver with `inFlight`, the sender, SIGINT, the summary and the stream's count. */
async function step(urls, replicas, inFlight, o) {
  const stream = 'BENCH'
  await withJsm(urls, async (jsm) => {
    await jsm.streams.delete(stream).catch(() => undefined)
    await jsm.streams.add({ name: stream, subjects: ['bench.>'], num_replicas: replicas })
  })
  const child = spawn(process.execPath, [CLI, 'listen', '--address', '127.0.0.1', '--port', '0', '--parse', 'syslog', '--jetstream', urls.join(','), '--subject', 'bench.syslog', '--stream', stream, '--max-in-flight', String(inFlight)], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('close', resolve))
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000)
  try {
    const deadline = Date.now() + 20_000
    while (!/listening on 127\.0\.0\.1:(\d+)/.test(stderr)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the receiver did not start: ${stderr}`)
      await sleep(20)
    }
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stderr)[1])
    const started = process.hrtime.bigint()
    const sent = await send(port, o)
    child.kill('SIGINT')
    await exited
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const m = SUMMARY.exec(stderr)
    if (m === null) throw new Error(`no summary: ${stderr}`)
    const [acknowledged, failed, , , discarded, kernelDrops, , , retried, duplicates] = m.slice(1).map(Number)
    const stored = await withJsm(urls, async (jsm) => (await jsm.streams.info(stream)).state.messages)
    return {
      replicas,
      inFlight,
      sent,
      acknowledged,
      failed,
      discarded,
      kernelDrops,
      retried,
      duplicates,
      stored,
      seconds,
      ackedPerSecond: Math.round(acknowledged / seconds),
      addsUp: acknowledged + failed + discarded + kernelDrops === sent && stored >= acknowledged && stored <= acknowledged + failed,
    }
  } finally {
    clearTimeout(killer)
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}

export async function main(argv) {
  const o = parseArgs(argv)
  for (const pkg of ['@nats-io/transport-node', '@nats-io/jetstream']) {
    try {
      require.resolve(pkg)
    } catch {
      console.error(`bench --jetstream needs ${pkg}: npm install (it is a devDependency)`)
      process.exit(1)
    }
  }
  const rows = []
  for (const replicas of o.replicas) {
    let servers
    try {
      servers = await startServers(replicas)
    } catch (error) {
      console.error(error.code === 'ENOENT' ? 'bench --jetstream needs nats-server (Debian package nats-server)' : error.message)
      process.exit(1)
    }
    try {
      for (const inFlight of o.inFlight) {
        const row = await step(servers.urls, replicas, inFlight, o)
        rows.push(row)
        process.stderr.write(`R${replicas} max-in-flight ${inFlight}: ${row.ackedPerSecond} acknowledged/s\n`)
      }
    } finally {
      await servers.stop()
    }
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const rate = o.rate === 0 ? 'flat out' : `${o.rate}/s offered`
  console.log(`\n${o.size}-byte RFC 5424 messages from bench/sl5424.c (${rate}, ${o.seconds} s a step) → dgram-ring listen --parse syslog --jetstream; ${os.cpus().length} cores (${cpu}), Linux ${os.release()}, Node ${process.version}\n`)
  console.log('| stream | --max-in-flight | sent | acknowledged | acknowledged/s | kernel drops | failed | retried | stored | adds up |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |')
  for (const r of rows) {
    console.log(`| R${r.replicas} | ${r.inFlight} | ${r.sent} | ${r.acknowledged} | ${r.ackedPerSecond} | ${r.kernelDrops} | ${r.failed} | ${r.retried} | ${r.stored} | ${r.addsUp ? 'yes' : '**no**'} |`)
  }
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, rows }, null, 2) + '\n')
  if (rows.some((r) => !r.addsUp)) process.exitCode = 1
}
