// dgram-ring/jetstream: the sink against a real nats-server (started here on
// a free loopback port, its store in a temp dir): what it publishes, message
// ids that make a publish stored once, acknowledgements as backpressure,
// failures counted, a server restarted mid-stream costing nothing; and the
// errors it gives without a server, a stream or the NATS packages.
import t from 'tap'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { root, ring, client, sendAll, sleep, requireTool } from './lib/helpers.mjs'
import { natsServer, addStream, readStream, withNats, freePort } from './lib/nats.mjs'

const require = createRequire(path.join(root, 'package.json'))
const { createJetStreamSink } = require('dgram-ring/jetstream')
const { createSyslogParser } = require('dgram-ring/parsers')

const finish = (sink) => new Promise((resolve, reject) => sink.on('finish', resolve).on('error', reject))
const text = (message) => Buffer.from(message.data).toString()

t.test('bad options are TypeError / RangeError with codes, before any connection', async (t) => {
  const good = { servers: 'nats://127.0.0.1:1', subject: 'logs.a' }
  t.throws(() => createJetStreamSink(), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, servers: [] }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, servers: 42 }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, subject: 'logs.*' }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, subject: '' }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, stream: 'a.b' }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, maxInFlight: 0 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => createJetStreamSink({ ...good, maxInFlight: 1.5 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => createJetStreamSink({ ...good, maxInFlight: '8' }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => createJetStreamSink({ ...good, timeout: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => createJetStreamSink({ ...good, msgId: 7 }), { code: 'ERR_INVALID_ARG_TYPE' })
})

t.test('without the NATS packages: a coded error naming them, and dgram-ring itself never loads them', async (t) => {
  // A preload that makes @nats-io/* unresolvable, as when the optional peers are not installed.
  const hide = `const M = require('module'); const r = M._resolveFilename; M._resolveFilename = function (request, ...rest) { if (request.startsWith('@nats-io/')) { const e = new Error('Cannot find module ' + request); e.code = 'MODULE_NOT_FOUND'; throw e } return r.call(this, request, ...rest) }`
  const script = `
    require(${JSON.stringify(root)})
    const loaded = Object.keys(require.cache).filter((f) => f.includes('@nats-io'))
    const { createJetStreamSink } = require('dgram-ring/jetstream')
    try { createJetStreamSink({ servers: 'nats://127.0.0.1:1', subject: 'a' }); console.log('no error') }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, loaded })) }`
  const out = await new Promise((resolve, reject) =>
    execFile(process.execPath, ['-e', `${hide}\n${script}`], { cwd: root, timeout: 30_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  )
  const result = JSON.parse(out)
  t.equal(result.code, 'ERR_DGRAM_RING_PEER_MISSING')
  t.match(result.message, /npm install @nats-io\/transport-node @nats-io\/jetstream/)
  t.same(result.loaded, [], 'require("dgram-ring") loads no NATS module')
})

t.test('with a server', async (t) => {
  if (!requireTool(t, 'nats-server')) return
  const server = await natsServer(t)
  await addStream(server.url, { name: 'LOGS', subjects: ['logs.>'] })

  t.test('a server that is not there, a stream that does not exist: ERR_DGRAM_RING_JETSTREAM, as ready() and as error', async (t) => {
    const nowhere = createJetStreamSink({ servers: `nats://127.0.0.1:${await freePort()}`, subject: 'logs.a' })
    const [error] = await once(nowhere, 'error')
    t.equal(error.code, 'ERR_DGRAM_RING_JETSTREAM')
    await t.rejects(nowhere.ready(), { code: 'ERR_DGRAM_RING_JETSTREAM' })
    const noStream = createJetStreamSink({ servers: server.url, subject: 'other.a' }).on('error', () => {})
    await t.rejects(noStream.ready(), { code: 'ERR_DGRAM_RING_JETSTREAM', message: /other\.a/ })
    const wrongStream = createJetStreamSink({ servers: server.url, subject: 'logs.a', stream: 'NOPE' }).on('error', () => {})
    await t.rejects(wrongStream.ready(), { code: 'ERR_DGRAM_RING_JETSTREAM', message: /NOPE/ })
    await new Promise((resolve) => wrongStream.on('close', resolve))
  })

  t.test('destroyed while connecting: the connection does not keep the process alive', async (t) => {
    const script = `
      const { createJetStreamSink } = require('dgram-ring/jetstream')
      const sink = createJetStreamSink({ servers: ${JSON.stringify(server.url)}, subject: 'logs.a' })
      sink.on('close', () => console.log(JSON.stringify(sink.stats())))
      sink.write({ a: 1 })
      setTimeout(() => sink.destroy(), ${0})`
    const started = Date.now()
    const out = await new Promise((resolve, reject) =>
      execFile(process.execPath, ['-e', script], { cwd: root, timeout: 20_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
    )
    t.ok(Date.now() - started < 10_000, 'the process exited by itself')
    t.match(JSON.parse(out), { acknowledged: 0, failed: 1 }, 'the record written is counted failed')
  })

  t.test('records: a Datagram as its payload with its sender, bytes and text as they are, objects as JSON; ids prefix-sequence', async (t) => {
    const sink = createJetStreamSink({ servers: server.url, subject: 'logs.kinds', msgId: 'kinds' })
    await sink.ready()
    t.equal(sink.stream, 'LOGS', 'the stream found for the subject')
    const stream = await ring.listen({ address: '127.0.0.1', port: 0 })
    t.teardown(() => stream.close())
    const socket = client(t)
    await sendAll(socket, [Buffer.from('hello')], stream.address().port, '127.0.0.1')
    const [datagram] = await new Promise((resolve) => stream.once('data', (d) => resolve([d])))
    sink.write(datagram)
    sink.write(Buffer.from('bytes'))
    sink.write('text')
    sink.write({ a: 1, b: 'two' })
    sink.end()
    await finish(sink)
    t.same(sink.stats(), { published: 4, acknowledged: 4, retried: 0, duplicates: 0, failed: 0, inFlight: 0 })
    const messages = (await readStream(server.url, 'LOGS')).filter((m) => m.id.startsWith('kinds-'))
    t.same(messages.map((m) => m.id), ['kinds-1', 'kinds-2', 'kinds-3', 'kinds-4'])
    t.same(messages.map(text), ['hello', 'bytes', 'text', '{"a":1,"b":"two"}'])
    t.equal(messages[0].headers.get('Dgram-Ring-Remote'), `127.0.0.1:${socket.address().port}`)
  })

  t.test('the same ids again are stored once: acknowledged, counted as duplicates', async (t) => {
    const ids = (record) => `dup-${record.n}`
    const first = createJetStreamSink({ servers: server.url, subject: 'logs.dup', msgId: ids })
    const second = createJetStreamSink({ servers: server.url, subject: 'logs.dup', msgId: ids, stream: 'LOGS' })
    const records = Array.from({ length: 50 }, (_, n) => ({ n }))
    await pipeline(Readable.from(records), first)
    await pipeline(Readable.from(records), second)
    t.match(first.stats(), { acknowledged: 50, duplicates: 0, failed: 0 })
    t.match(second.stats(), { acknowledged: 50, duplicates: 50, failed: 0 })
    const stored = (await readStream(server.url, 'LOGS')).filter((m) => m.id.startsWith('dup-'))
    t.equal(stored.length, 50)
  })

  t.test('listen → parser → sink: every datagram stored once, in order of arrival', async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', port: 0 })
    const sink = createJetStreamSink({ servers: server.url, subject: 'logs.piped', msgId: 'piped', maxInFlight: 8 })
    const done = pipeline(stream, createSyslogParser(), sink)
    const socket = client(t)
    const count = 500
    const lines = Array.from({ length: count }, (_, i) => Buffer.from(`<14>1 2026-11-27T12:00:00Z host app - - - n=${i}`))
    await sendAll(socket, lines, stream.address().port, '127.0.0.1')
    // Those the ring had no buffer for while the sink held back are kernel drops, counted.
    for (let waited = 0; waited < 10_000 && stream.stats().received + stream.stats().kernelDrops < count; waited += 10) await sleep(10)
    await stream.close()
    await done
    const stats = stream.stats()
    t.equal(stats.received + stats.discarded + stats.kernelDrops, count)
    t.match(sink.stats(), { acknowledged: stats.received, failed: 0 })
    const stored = (await readStream(server.url, 'LOGS')).filter((m) => m.id.startsWith('piped-'))
    t.equal(stored.length, stats.received)
    t.same(JSON.parse(text(stored[0])).message, 'n=0')
    t.equal(JSON.parse(text(stored[0])).remoteAddress, '127.0.0.1')
  })

  t.test('a full stream (discard new): writes stop at maxInFlight + highWaterMark; end() gives up after closeTimeout, counted failed', async (t) => {
    await addStream(server.url, { name: 'FULL', subjects: ['full.>'], max_msgs: 5, discard: 'new' })
    const sink = createJetStreamSink({ servers: server.url, subject: 'full.a', maxInFlight: 4, highWaterMark: 2, closeTimeout: 1500 })
    await sink.ready()
    let accepted = 0
    let stuck = false
    while (accepted < 100 && !stuck) {
      accepted++
      if (!sink.write({ accepted })) stuck = (await Promise.race([once(sink, 'drain'), sleep(500).then(() => 'stuck')])) === 'stuck'
    }
    t.ok(stuck, `write() held back after ${accepted} records`)
    t.ok(accepted <= 5 + 4 + 2, 'at most the stored ones, maxInFlight and highWaterMark')
    t.equal(sink.stats().inFlight, 4, 'maxInFlight publishes outstanding')
    t.ok(sink.stats().retried > 0, 'refused publishes are retried')
    const started = Date.now()
    sink.end()
    await finish(sink)
    t.ok(Date.now() - started < 5000, 'end() waited about closeTimeout')
    const stats = sink.stats()
    t.equal(stats.acknowledged, 5)
    t.equal(stats.acknowledged + stats.failed, accepted, 'every record written is acknowledged or failed')
  })

  t.test('a msgId function that throws fails the sink: its error, and every record written counted', async (t) => {
    const sink = createJetStreamSink({ servers: server.url, subject: 'logs.throws', msgId: (record) => { if (record.bad) throw new Error('no id'); return `throws-${record.n}` } })
    sink.write({ n: 1 })
    sink.write({ bad: true })
    sink.write({ n: 3 })
    const [error] = await once(sink, 'error')
    t.equal(error.message, 'no id')
    const stats = sink.stats()
    t.equal(stats.acknowledged + stats.failed, 3, `acknowledged ${stats.acknowledged} + failed ${stats.failed}`)
  })

  t.test('destroy(): what is in flight or buffered is counted failed', async (t) => {
    await addStream(server.url, { name: 'FULL2', subjects: ['full2.>'], max_msgs: 1, discard: 'new' })
    const sink = createJetStreamSink({ servers: server.url, subject: 'full2.a', maxInFlight: 2, highWaterMark: 4 })
    await sink.ready()
    for (let i = 0; i < 6; i++) sink.write({ i })
    await sleep(300)
    sink.destroy()
    await once(sink, 'close')
    const stats = sink.stats()
    t.equal(stats.acknowledged, 1)
    t.equal(stats.acknowledged + stats.failed, 6)
    t.equal(stats.inFlight, 0)
  })

  t.test('a server killed and restarted mid-stream: no acknowledged message lost, none stored twice', async (t) => {
    const own = await natsServer(t, { name: 'restart' })
    await addStream(own.url, { name: 'R', subjects: ['r.>'] })
    const sink = createJetStreamSink({ servers: own.url, subject: 'r.a', msgId: 'r', maxInFlight: 64, timeout: 1000 })
    await sink.ready()
    const count = 3000
    let n = 0
    const source = new Readable({
      objectMode: true,
      read() {
        // Paced, so that the kill lands mid-stream.
        if (n === count) this.push(null)
        else setTimeout(() => this.push({ n: n++ }), n % 100 === 0 ? 5 : 0)
      },
    })
    const done = pipeline(source, sink)
    while (sink.stats().acknowledged < 1000) await sleep(10)
    await own.stop('SIGKILL')
    await sleep(500)
    await own.start()
    await done
    const stats = sink.stats()
    t.equal(stats.acknowledged, count)
    t.equal(stats.failed, 0)
    t.ok(stats.retried > 0, `retried ${stats.retried}`)
    const info = await withNats(own.url, (nc, jsm) => jsm.streams.info('R'))
    t.equal(info.state.messages, count, 'every record stored once')
  })
})
