// NATS servers for the JetStream tests: nats-server (the Debian package)
// started on free loopback ports with its store in a temp dir, alone or as a
// cluster of routed nodes; each stopped by its PID and its dir removed when
// the test ends. Every wait is bounded.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { root } from './helpers.mjs'
import { sl5424Binary } from '../../bench/blast.mjs'

const require = createRequire(path.join(root, 'package.json'))
export const { connect } = require('@nats-io/transport-node')
export const { jetstreamManager, jetstream, AckPolicy } = require('@nats-io/jetstream')

const START_MS = 15_000

/** A TCP port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function config({ name, port, dir, cluster }) {
  const lines = [
    `server_name: ${name}`,
    `listen: 127.0.0.1:${port}`,
    `jetstream { store_dir: ${JSON.stringify(dir)}, max_memory_store: 64MB, max_file_store: 2GB }`,
  ]
  if (cluster) {
    const routes = cluster.routes.map((p) => `nats-route://127.0.0.1:${p}`).join(', ')
    lines.push(`cluster { name: ${cluster.name}, listen: 127.0.0.1:${cluster.port}, routes: [${routes}] }`)
  }
  return lines.join('\n') + '\n'
}

/**
 * A nats-server process: `url`, `start()` (again after `stop()`, with the
 * same store), `stop(signal)` resolving once it exited. Stopped and its dir
 * removed at the test's teardown.
 */
export async function natsServer(t, { name = 'n1', cluster } = {}) {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgram-ring-nats-'))
  const file = path.join(dir, 'server.conf')
  fs.writeFileSync(file, config({ name, port, dir: path.join(dir, 'js'), cluster }))
  let child
  let exited = Promise.resolve()
  let log = ''
  const server = {
    name,
    port,
    url: `nats://127.0.0.1:${port}`,
    log: () => log,
    async start() {
      log = ''
      child = spawn('nats-server', ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] })
      child.stderr.setEncoding('utf8').on('data', (chunk) => (log += chunk))
      exited = new Promise((resolve) => child.on('close', resolve))
      const deadline = Date.now() + START_MS
      while (!/Server is ready/.test(log)) {
        if (child.exitCode !== null) throw new Error(`nats-server ${name} exited: ${log}`)
        if (Date.now() > deadline) throw new Error(`nats-server ${name} not ready in ${START_MS} ms: ${log}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    },
    async stop(signal = 'SIGKILL') {
      if (child && child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, signal)
        await exited
      }
    },
  }
  t.teardown(async () => {
    await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  await server.start()
  return server
}

/** Three (or `size`) routed nodes of one cluster on loopback, started. */
export async function natsCluster(t, size = 3) {
  const routePorts = []
  for (let i = 0; i < size; i++) routePorts.push(await freePort())
  const servers = []
  for (let i = 0; i < size; i++) {
    servers.push(natsServer(t, { name: `n${i + 1}`, cluster: { name: 'dgram', port: routePorts[i], routes: routePorts.filter((_, j) => j !== i) } }))
  }
  return Promise.all(servers)
}

/**
 * Connects to `servers`, runs `fn(nc, jsm)`, closes. Retries JetStream calls
 * that fail while a cluster elects its meta leader (bounded).
 */
export async function withNats(servers, fn) {
  const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  try {
    const deadline = Date.now() + START_MS
    for (;;) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 5000 })
        return await fn(nc, jsm)
      } catch (error) {
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  } finally {
    await nc.close()
  }
}

/** Creates a stream (retried while a cluster is not ready). */
export function addStream(servers, config) {
  return withNats(servers, (nc, jsm) => jsm.streams.add(config))
}

/** The stream's messages' `Nats-Msg-Id`s and bodies, read with an ordered consumer (bounded by `limitMs`). */
export async function readStream(servers, stream, limitMs = 60_000) {
  return withNats(servers, async (nc, jsm) => {
    const info = await jsm.streams.info(stream)
    const total = info.state.messages
    const js = jetstream(nc)
    const consumer = await js.consumers.get(stream)
    const messages = []
    if (total === 0) return messages
    const deadline = Date.now() + limitMs
    const iterator = await consumer.consume({ max_messages: 1000 })
    const timer = setTimeout(() => iterator.stop(), limitMs)
    for await (const m of iterator) {
      messages.push({ id: m.headers?.get('Nats-Msg-Id'), headers: m.headers, data: m.data })
      if (messages.length >= total || Date.now() > deadline) break
    }
    clearTimeout(timer)
    await iterator.close?.()
    return messages
  })
}

// For the `listen --jetstream` tests.

/** The --jetstream summary line: its numbers by name, or null. */
export function jetstreamSummaryOf(text) {
  const m =
    /dgram-ring: acknowledged (\d+), failed (\d+), received (\d+), not published (\d+), discarded (\d+), kernel drops (\d+|n\/a), truncated (\d+), bytes (\d+), retried (\d+), duplicates (\d+)\n/.exec(
      text,
    )
  if (m === null) return null
  const [acknowledged, failed, received, notPublished, discarded, kernelDrops, truncated, bytes, retried, duplicates] = m
    .slice(1)
    .map((v) => (v === 'n/a' ? undefined : Number(v)))
  return { acknowledged, failed, received, notPublished, discarded, kernelDrops, truncated, bytes, retried, duplicates }
}

/** Runs bench/sl5424.c (RFC 5424, paced, bounded by `seconds`) at 127.0.0.1:port; resolves with what it sent. */
export function sendSyslog(port, rate, seconds) {
  return new Promise((resolve, reject) => {
    execFile(sl5424Binary(), [String(port), String(seconds), String(rate), '32', '200'], { timeout: 30_000 }, (error, stdout) => {
      if (error) return reject(error)
      const sent = /sent=(\d+)/.exec(stdout)
      if (sent === null) return reject(new Error(`sl5424 said: ${stdout}`))
      resolve(Number(sent[1]))
    })
  })
}

/** Stops a receiver as a user does (SIGINT: draining close, acknowledgements awaited) and returns its summary. */
export async function stopReceiver(t, receiver) {
  receiver.child.kill('SIGINT')
  const result = await receiver.exited
  t.equal(result.code, 0, 'exit status 0')
  const summary = jetstreamSummaryOf(result.stderr)
  t.ok(summary, `a summary line: ${result.stderr}`)
  return summary
}

export function addsUp(t, summary, sent, what = '') {
  t.equal(summary.notPublished, 0, `${what}nothing received was left unpublished`)
  t.equal(
    summary.acknowledged + summary.failed + summary.discarded + summary.kernelDrops,
    sent,
    `${what}acknowledged ${summary.acknowledged} + failed ${summary.failed} + discarded ${summary.discarded} + kernel drops ${summary.kernelDrops} = sent ${sent}`,
  )
}

/** Messages the stream holds, by subject. */
export const subjectCounts = (servers, stream) =>
  withNats(servers, async (nc, jsm) => (await jsm.streams.info(stream, { subjects_filter: '>' })).state.subjects ?? {})
