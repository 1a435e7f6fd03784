// `dgram-ring listen --jetstream` against real nats-servers (the Debian
// package, started here on loopback ports with temp stores): 100 000 syslog
// datagrams each stored once or counted; a stream that cannot take more makes
// the ring stop posting while memory stays flat (the cluster test is
// jetstream-cluster.test.mjs). The summary must add up to what was sent.
import t from 'tap'
import dgram from 'node:dgram'
import fs from 'node:fs'
import { run, startListen } from './lib/cli.mjs'
import { requireTool, sleep } from './lib/helpers.mjs'
import { natsServer, addStream, withNats, readStream, jetstreamSummaryOf, freePort, sendSyslog, stopReceiver as stop, addsUp, subjectCounts } from './lib/nats.mjs'

t.test('bad flags are usage errors (exit 2), naming the flag', async (t) => {
  const cases = [
    [['--subject', 'logs.a'], /--subject applies to --jetstream only/],
    [['--max-in-flight', '8'], /--max-in-flight applies to --jetstream only/],
    [['--jetstream', 'nats://127.0.0.1:4222'], /--jetstream needs --subject/],
    [['--jetstream', 'http://x/y', '--subject', 'a'], /--jetstream must be NATS server URLs/],
    [['--jetstream', 'nats://127.0.0.1:4222', '--subject', 'logs.*'], /--subject must be a NATS subject/],
    [['--jetstream', 'nats://127.0.0.1:4222', '--subject', 'a', '--stream', 'a.b'], /--stream must be a JetStream stream name/],
    [['--jetstream', 'nats://127.0.0.1:4222', '--subject', 'a', '--max-in-flight', '0'], /--max-in-flight must be an integer from 1 to 65536/],
  ]
  for (const [args, message] of cases) {
    const result = await run(['listen', ...args])
    t.equal(result.code, 2, args.join(' '))
    t.match(result.stderr, message)
  }
})

t.test('a server that is not there: exit 1 before binding, one line', async (t) => {
  const result = await run(['listen', '--jetstream', `nats://127.0.0.1:${await freePort()}`, '--subject', 'logs.a'])
  t.equal(result.code, 1)
  t.match(result.stderr, /^dgram-ring: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/)
  t.notMatch(result.stderr, /listening on/)
})

t.test('one server: 100 000 syslog datagrams, each in the stream once or counted', async (t) => {
  if (!requireTool(t, 'nats-server')) return
  const server = await natsServer(t)
  await addStream(server.url, { name: 'LOGS', subjects: ['logs.>'] })
  const receiver = await startListen(t, ['--parse', 'syslog', '--jetstream', server.url, '--subject', 'logs.syslog', '--stream', 'LOGS', '--max-in-flight', '1024'])
  // 20 100/s for 5 s: a little over 100 000.
  const sent = await sendSyslog(receiver.port, 20_100, 5)
  t.ok(sent >= 100_000, `sent ${sent}`)
  await sleep(500)
  const summary = await stop(t, receiver)
  addsUp(t, summary, sent)
  t.equal(summary.failed, 0, 'a server that stays up fails nothing')
  const counts = await subjectCounts(server.url, 'LOGS')
  t.equal(counts['logs.syslog'], summary.acknowledged, 'the stream holds exactly the acknowledged ones')
  t.comment(`sent ${sent}: acknowledged ${summary.acknowledged}, kernel drops ${summary.kernelDrops}`)
})

t.test('--count: N published, the rest received is "not published"; each message is the datagram\'s JSON line', async (t) => {
  if (!requireTool(t, 'nats-server')) return
  const server = await natsServer(t)
  await addStream(server.url, { name: 'COUNT', subjects: ['count.>'] })
  const receiver = await startListen(t, ['--parse', 'syslog', '--count', '3', '--jetstream', server.url, '--subject', 'count.a'])
  const socket = dgram.createSocket('udp4')
  t.teardown(() => socket.close())
  for (let i = 0; i < 5; i++) await new Promise((resolve) => socket.send(`<14>1 2026-11-27T12:00:00Z host app - - - n=${i}`, receiver.port, '127.0.0.1', resolve))
  const result = await receiver.exited
  t.equal(result.code, 0)
  const summary = jetstreamSummaryOf(result.stderr)
  t.match(summary, { acknowledged: 3, failed: 0, notPublished: summary.received - 3 }, result.stderr)
  const messages = await readStream(server.url, 'COUNT')
  t.same(messages.map((m) => JSON.parse(Buffer.from(m.data).toString()).message), ['n=0', 'n=1', 'n=2'])
  t.notOk(Buffer.from(messages[0].data).toString().endsWith('\n'), 'one line, without its newline')
})

t.test('a stream that cannot take more: the ring stops posting, the kernel drops (counted), memory stays flat', async (t) => {
  if (!requireTool(t, 'nats-server')) return
  const server = await natsServer(t)
  // A work queue nobody consumes, of 2000 messages at most, refusing new ones when full: a consumer that paused.
  await addStream(server.url, { name: 'WORK', subjects: ['work.>'], retention: 'workqueue', max_msgs: 2000, discard: 'new' })
  const receiver = await startListen(t, ['--parse', 'syslog', '--jetstream', server.url, '--subject', 'work.syslog', '--max-in-flight', '64', '--stats', '--recv-buffer-size', '262144'])
  const sending = sendSyslog(receiver.port, 10_000, 5)
  const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${receiver.child.pid}/status`, 'utf8'))[1])
  await sleep(1500)
  // The --stats lines from here on, while the sender still sends.
  let stderr = ''
  const collect = (chunk) => (stderr += chunk)
  receiver.child.stderr.on('data', collect)
  await sleep(500)
  const rssStalled = rss()
  await sleep(2000)
  const rssLater = rss()
  receiver.child.stderr.off('data', collect)
  const lines = stderr.split('\n').filter((line) => / pps, /.test(line))
  t.ok(lines.length >= 2, `stats lines: ${stderr}`)
  const drops = lines.map((line) => Number(/, (\d+) kernel drops?,/.exec(line)?.[1]))
  t.match(lines.at(-1), /, 0 buffers posted, \d+ acknowledged, 64 in flight$/, "the ring stopped posting; maxInFlight publishes wait for the stream")
  t.ok(drops.at(-1) > drops[0], `kernel drops grow: ${drops.join(' → ')}`)
  t.ok(rssLater - rssStalled < 16 * 1024, `memory flat while stalled: ${rssStalled} kB → ${rssLater} kB`)
  const sent = await sending
  // The consumer is back (the limit lifted): what the sink held goes in.
  await withNats(server.url, async (nc, jsm) => {
    const info = await jsm.streams.info('WORK')
    await jsm.streams.update('WORK', { ...info.config, max_msgs: -1 })
  })
  await sleep(1500)
  const summary = await stop(t, receiver)
  addsUp(t, summary, sent)
  t.ok(summary.retried > 0, `publishes refused by the full stream were retried (${summary.retried})`)
  t.ok(summary.kernelDrops > 0, 'the backpressure reached the kernel')
  t.equal(summary.failed, 0)
  const counts = await subjectCounts(server.url, 'WORK')
  t.equal(counts['work.syslog'], summary.acknowledged, 'the stream holds exactly the acknowledged ones')
})
