// `dgram-ring listen --jetstream` into a 3-node nats-server cluster on
// loopback (routes between three processes, temp stores), an R3 stream fed by
// two receiving processes (two "hosts"): a node killed and restarted mid-run
// costs no acknowledged message, and whatever is not stored is counted.
import t from 'tap'
import { startListen } from './lib/cli.mjs'
import { requireTool, sleep } from './lib/helpers.mjs'
import { natsCluster, addStream, withNats, sendSyslog, stopReceiver as stop, addsUp, subjectCounts } from './lib/nats.mjs'

t.test('a 3-node cluster, an R3 stream, two receivers: a node killed and restarted mid-run costs nothing uncounted', async (t) => {
  if (!requireTool(t, 'nats-server')) return
  const nodes = await natsCluster(t, 3)
  const urls = nodes.map((node) => node.url)
  await addStream(urls, { name: 'CLUSTER', subjects: ['hosts.>'], num_replicas: 3 })
  const servers = urls.join(',')
  // Two "hosts": two receiving processes, each with its own subject and identity.
  const receivers = [
    await startListen(t, ['--parse', 'syslog', '--jetstream', servers, '--subject', 'hosts.a', '--stream', 'CLUSTER']),
    await startListen(t, ['--parse', 'syslog', '--jetstream', servers, '--subject', 'hosts.b', '--stream', 'CLUSTER']),
  ]
  const sending = receivers.map((receiver) => sendSyslog(receiver.port, 5000, 5))
  await sleep(1500)
  // The stream's leader: its death costs an election, and the publishes it had not answered.
  const leaderName = await withNats(urls, async (nc, jsm) => (await jsm.streams.info('CLUSTER')).cluster.leader)
  const leader = nodes.find((node) => node.name === leaderName)
  t.ok(leader, `the stream's leader is ${leaderName}`)
  await leader.stop('SIGKILL')
  await sleep(1000)
  await leader.start()
  const sent = await Promise.all(sending)
  await sleep(1000)
  const summaries = []
  for (const receiver of receivers) summaries.push(await stop(t, receiver))
  const counts = await subjectCounts(urls, 'CLUSTER')
  for (const [i, subject] of ['hosts.a', 'hosts.b'].entries()) {
    const summary = summaries[i]
    addsUp(t, summary, sent[i], `${subject}: `)
    const stored = counts[subject] ?? 0
    t.ok(
      stored >= summary.acknowledged && stored <= summary.acknowledged + summary.failed,
      `${subject}: stored ${stored}, acknowledged ${summary.acknowledged}, failed ${summary.failed} (retried ${summary.retried}, duplicates ${summary.duplicates})`,
    )
    t.ok(summary.acknowledged > 0, `${subject}: published into the cluster`)
  }
  t.ok(summaries[0].retried + summaries[1].retried > 0, 'publishes the dead leader left unanswered were retried')
})
