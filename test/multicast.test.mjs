// Multicast joins (`multicast: { group, interface?, source? }`): validation,
// IPv4 on loopback (any-source and source-specific), and IPv4 and IPv6 across
// a veth pair into a network namespace this test creates and removes (root only).
import t from 'tap'
import fs from 'node:fs'
import { execFileSync, execFile } from 'node:child_process'
import { client, isRoot, listenFor, ring, sendAll, skipUnless, take, tool, machine } from './lib/helpers.mjs'

// Wine, measured: it refuses MCAST_JOIN_GROUP (ENOPROTOOPT), lets other
// sources through a source-specific join, and never sets MSG_MCAST.
const wine = process.env.DGRAM_RING_WINE === '1'

const open = (options) => new ring.RingSocket(options, () => {}, () => {})

t.test('the multicast option is validated', async (t) => {
  const cases = [
    [{ group: '10.0.0.1' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'a unicast group'],
    [{ group: 'ff02::1' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'an IPv6 group on a udp4 socket'],
    [{ group: 'not an address' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'not an address'],
    [{ group: 239 }, 'TypeError', 'ERR_INVALID_ARG_TYPE', 'a number'],
    [{}, 'TypeError', 'ERR_INVALID_ARG_TYPE', 'no group'],
    ['239.1.1.1', 'TypeError', 'ERR_INVALID_ARG_TYPE', 'a string, not an object'],
    [[{ group: '239.1.1.1' }, null], 'TypeError', 'ERR_INVALID_ARG_TYPE', 'null in an array'],
    [{ group: '239.1.1.1', source: '239.1.1.2' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'a multicast source'],
    [{ group: '239.1.1.1', source: '::1' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'a source of the other family'],
    [{ group: '239.1.1.1', source: 7 }, 'TypeError', 'ERR_INVALID_ARG_TYPE', 'a numeric source'],
    [{ group: '239.1.1.1', interface: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE', 'a negative index'],
    [{ group: '239.1.1.1', interface: 1.5 }, 'RangeError', 'ERR_OUT_OF_RANGE', 'a fractional index'],
    [{ group: '239.1.1.1', interface: '::1' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'an interface address of the other family'],
    [{ group: '239.1.1.1', interface: '' }, 'RangeError', 'ERR_INVALID_ARG_VALUE', 'an empty interface name'],
    [{ group: '239.1.1.1', interface: true }, 'TypeError', 'ERR_INVALID_ARG_TYPE', 'a boolean interface'],
  ]
  for (const [multicast, name, code, what] of cases) t.throws(() => open({ address: '127.0.0.1', multicast }), { name, code }, what)
  t.throws(() => open({ type: 'udp6', multicast: { group: '239.1.1.1' } }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, 'an IPv4 group on a udp6 socket')
  t.throws(() => open({ type: 'udp6', multicast: { group: 'ff15::1', interface: 'fd00:dead:beef::1' } }),
    process.platform === 'win32' ? { code: 'ERR_DGRAM_RING_UNSUPPORTED' } : { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, 'an address no interface has')
})

t.test('joining on an interface that does not exist fails with the system error, and the socket is not left open', { skip: process.platform === 'win32' ? 'interface names are refused on Windows' : false }, async (t) => {
  t.throws(() => open({ address: '0.0.0.0', multicast: { group: '239.1.1.1', interface: 'no-such-if0' } }), { code: 'ENODEV', syscall: 'if_nametoindex' })
  t.throws(() => open({ address: '0.0.0.0', multicast: { group: '239.1.1.1', interface: 4242 } }), { code: 'ENODEV', syscall: 'setsockopt' })
})

// A node:dgram sender on loopback whose multicast leaves through 127.0.0.1.
async function loopbackSender(t, address = '127.0.0.1') {
  const sender = client(t)
  await new Promise((resolve) => sender.bind(0, address, resolve))
  sender.setMulticastInterface('127.0.0.1')
  sender.setMulticastTTL(3)
  return sender
}

t.test('IPv4 on loopback: datagrams sent to the group arrive, flagged multicast, with the group as localAddress', async (t) => {
  const group = '239.255.42.1'
  // By interface index too, except under wine, which refuses MCAST_JOIN_GROUP.
  const byIndex = wine ? [] : [{ group: '239.255.42.2', interface: 1 }]
  const stream = await listenFor(t, { address: '0.0.0.0', ttl: true, multicast: [{ group, interface: '127.0.0.1' }, ...byIndex] })
  const { port } = stream.address()
  const sender = await loopbackSender(t)
  await sendAll(sender, [Buffer.from('one')], port, group)
  if (!wine) await sendAll(sender, [Buffer.from('two')], port, '239.255.42.2')
  const [a, b] = await take(stream, wine ? 1 : 2)
  t.same({ data: a.data.toString(), localAddress: a.localAddress, ttl: a.ttl, remoteAddress: a.remoteAddress },
    { data: 'one', localAddress: group, ttl: 3, remoteAddress: '127.0.0.1' })
  // Windows says multicast with MSG_MCAST, which wine never sets.
  if (!wine) t.equal(a.multicast, true, 'flagged multicast')
  if (!wine) t.same({ data: b.data.toString(), multicast: b.multicast, localAddress: b.localAddress }, { data: 'two', multicast: true, localAddress: '239.255.42.2' }, 'joined by interface index')
})

t.test('IPv4 on loopback, source-specific: only the source joined arrives', { skip: wine ? 'wine lets other sources through a source-specific join' : false }, async (t) => {
  const group = '232.1.42.1'
  // Two sockets on one port (both SO_REUSEADDR): one joined source-specifically, one for any source.
  const specific = await listenFor(t, { address: '0.0.0.0', reuseAddr: true, multicast: { group, source: '127.0.0.1', interface: '127.0.0.1' } })
  const { port } = specific.address()
  const any = await listenFor(t, { address: '0.0.0.0', port, reuseAddr: true, multicast: { group, interface: '127.0.0.1' } })
  const fromJoined = await loopbackSender(t, '127.0.0.1')
  const fromOther = await loopbackSender(t, '127.0.0.2')
  await sendAll(fromOther, [Buffer.from('other')], port, group)
  await sendAll(fromJoined, [Buffer.from('joined')], port, group)
  const got = (await take(any, 2)).map((x) => x.data.toString())
  t.same(got, ['other', 'joined'], 'the any-source member got both')
  const [d] = await take(specific, 1)
  t.same({ data: d.data.toString(), remoteAddress: d.remoteAddress, multicast: d.multicast }, { data: 'joined', remoteAddress: '127.0.0.1', multicast: true }, 'the other source was filtered out')
})

// The namespace test: a veth pair between this host and a namespace, a sender inside.
const netnsSkip = skipUnless(
  machine(process.platform === 'linux', 'network namespaces are Linux'),
  machine(isRoot, 'creating a network namespace and a veth pair needs root (CI runs as root)'),
  tool('ip'),
)

t.test('IPv4 and IPv6 groups across a veth pair from a network namespace', { skip: netnsSkip }, async (t) => {
  const id = process.pid % 1_000_000
  const ns = `dgr-mc-${id}`
  const host = `dgrm${id}a`
  const peer = `dgrm${id}b`
  // Without a sanitizer runtime preloaded (npm run test:asan): ip is not ours, and its leaks fail it there.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'LD_PRELOAD'))
  const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], env })
  // Registered first: whatever fails below, the namespace (and the veth pair in it) goes.
  t.teardown(() => {
    try { ip('link', 'del', host) } catch {}
    try { ip('netns', 'del', ns) } catch {}
  })
  ip('netns', 'add', ns)
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer, 'netns', ns)
  ip('addr', 'add', '10.213.77.1/24', 'dev', host)
  ip('-6', 'addr', 'add', 'fd00:213:77::1/64', 'dev', host, 'nodad')
  ip('link', 'set', host, 'up')
  ip('-n', ns, 'addr', 'add', '10.213.77.2/24', 'dev', peer)
  ip('-n', ns, '-6', 'addr', 'add', 'fd00:213:77::2/64', 'dev', peer, 'nodad')
  ip('-n', ns, 'link', 'set', peer, 'up')
  ip('-n', ns, 'link', 'set', 'lo', 'up')
  const index = Number(fs.readFileSync(`/sys/class/net/${host}/ifindex`, 'utf8'))

  const v4 = await listenFor(t, { type: 'udp4', ttl: true, multicast: { group: '239.77.1.1', interface: '10.213.77.1' } })
  const v6 = await listenFor(t, { type: 'udp6', ipv6Only: true, ttl: true, multicast: { group: 'ff15::77:1', interface: host } })
  const v6ssm = await listenFor(t, { type: 'udp6', ipv6Only: true, multicast: { group: 'ff35::77:2', source: 'fd00:213:77::2', interface: index } })
  const v6byAddress = await listenFor(t, { type: 'udp6', ipv6Only: true, multicast: { group: 'ff15::77:3', interface: 'fd00:213:77::1' } })

  // The sender, inside the namespace: each message to its group, out of the veth.
  const script = `
    const dgram = require('node:dgram')
    const [v4port, v6port, ssmPort, addrPort, peer] = process.argv.slice(1)
    const send = (type, bind, iface, group, port, text) => new Promise((resolve, reject) => {
      const s = dgram.createSocket(type)
      s.bind(0, bind, () => {
        s.setMulticastInterface(iface)
        s.setMulticastTTL(4)
        s.send(text, Number(port), group, (e) => { s.close(); e ? reject(e) : resolve() })
      })
    })
    ;(async () => {
      await send('udp4', '10.213.77.2', '10.213.77.2', '239.77.1.1', v4port, 'v4')
      await send('udp6', 'fd00:213:77::2', '::%' + peer, 'ff15::77:1', v6port, 'v6')
      await send('udp6', 'fd00:213:77::2', '::%' + peer, 'ff35::77:2', ssmPort, 'ssm')
      await send('udp6', 'fd00:213:77::2', '::%' + peer, 'ff15::77:3', addrPort, 'by-address')
    })().catch((e) => { console.error(e); process.exit(1) })`
  const ports = [v4, v6, v6ssm, v6byAddress].map((s) => String(s.address().port))
  await new Promise((resolve, reject) =>
    execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...ports, peer], { timeout: 30_000, env }, (error, stdout, stderr) =>
      error ? reject(Object.assign(error, { stderr })) : resolve()))

  const [a] = await take(v4, 1, 5000)
  t.same({ data: a.data.toString(), remoteAddress: a.remoteAddress, localAddress: a.localAddress, interfaceIndex: a.interfaceIndex, multicast: a.multicast, ttl: a.ttl },
    { data: 'v4', remoteAddress: '10.213.77.2', localAddress: '239.77.1.1', interfaceIndex: index, multicast: true, ttl: 4 }, 'IPv4 group, interface by address')
  const [b] = await take(v6, 1, 5000)
  t.same({ data: b.data.toString(), remoteAddress: b.remoteAddress, localAddress: b.localAddress, interfaceIndex: b.interfaceIndex, multicast: b.multicast, ttl: b.ttl },
    { data: 'v6', remoteAddress: 'fd00:213:77::2', localAddress: 'ff15::77:1', interfaceIndex: index, multicast: true, ttl: 4 }, 'IPv6 group, interface by name')
  const [c] = await take(v6ssm, 1, 5000)
  t.same({ data: c.data.toString(), localAddress: c.localAddress, multicast: c.multicast }, { data: 'ssm', localAddress: 'ff35::77:2', multicast: true }, 'IPv6 source-specific, interface by index')
  const [d] = await take(v6byAddress, 1, 5000)
  t.same({ data: d.data.toString(), interfaceIndex: d.interfaceIndex }, { data: 'by-address', interfaceIndex: index }, 'IPv6 group, interface by address')
})
