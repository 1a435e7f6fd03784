// What arrives: payloads, order, source, destination address and interface,
// IPv6 and dual stack, truncation. Runs against every backend this build has.
import t from 'tap'
import util from 'node:util'
import { backends, client, listenFor, ring, sendAll, take } from './lib/helpers.mjs'

const payload = (i, size) => {
  const b = Buffer.alloc(size)
  b.writeUInt32BE(i, 0)
  for (let j = 4; j < size; j++) b[j] = (i + j) & 0xff
  return b
}

for (const backend of backends) {
  t.test(`${backend}: 2000 datagrams of mixed sizes arrive whole, in order, with their source`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend, recvBufferSize: 4 << 20 })
    t.equal(stream.backend, backend)
    const { port } = stream.address()
    const sender = client(t)
    await new Promise((resolve) => sender.bind(0, '127.0.0.1', resolve))
    const sizes = [4, 5, 64, 100, 512, 1400, 2000, 2048]
    const sent = Array.from({ length: 2000 }, (_, i) => payload(i, sizes[i % sizes.length]))
    // Send in chunks the receiver keeps up with: this test is about content, not drops.
    const got = []
    const reading = (async () => {
      for await (const d of stream) {
        got.push({ data: Buffer.from(d.data), remoteAddress: d.remoteAddress, remotePort: d.remotePort, family: d.family, truncated: d.truncated })
        if (got.length === sent.length) break
      }
    })()
    for (let i = 0; i < sent.length; i += 100) {
      await sendAll(sender, sent.slice(i, i + 100), port, '127.0.0.1')
      while (got.length < Math.min(i + 100, sent.length) && !stream.destroyed) await new Promise((r) => setImmediate(r))
    }
    await reading
    t.equal(got.length, sent.length, 'every datagram arrived')
    const mismatch = got.findIndex((d, i) => !d.data.equals(sent[i]))
    t.equal(mismatch, -1, 'payloads equal and in order')
    t.ok(got.every((d) => d.remoteAddress === '127.0.0.1' && d.remotePort === sender.address().port && d.family === 'IPv4'), 'source address and port')
    t.ok(got.every((d) => !d.truncated), 'none truncated')
    const stats = stream.stats()
    t.equal(stats.received, 2000)
    t.equal(stats.bytes, sent.reduce((n, b) => n + b.length, 0))
    t.ok(stats.batches >= 1 && stats.batches <= stats.received, 'batches counted')
    t.ok(stats.peakPosted <= 256 && stats.posted <= 256, 'posted within ringSize')
  })

  t.test(`${backend}: pktinfo on a wildcard bind says which address and interface`, async (t) => {
    const stream = await listenFor(t, { backend })
    const { port, address, family } = stream.address()
    t.same({ address, family }, { address: '0.0.0.0', family: 'IPv4' })
    const sender = client(t)
    await sendAll(sender, [Buffer.from('to-1')], port, '127.0.0.1')
    await sendAll(sender, [Buffer.from('to-2')], port, '127.0.0.2')
    const [a, b] = await take(stream, 2)
    t.equal(a.data.toString(), 'to-1')
    t.equal(a.localAddress, '127.0.0.1')
    t.equal(b.data.toString(), 'to-2')
    t.equal(b.localAddress, '127.0.0.2')
    t.ok(a.interfaceIndex > 0, 'interface index of loopback')
    t.equal(a.interfaceIndex, b.interfaceIndex)
    t.equal(a.broadcast, false)
    t.equal(a.multicast, false)
    t.equal(a.controlTruncated, false)
  })

  t.test(`${backend}: IPv6 on ::1`, async (t) => {
    const stream = await listenFor(t, { address: '::1', backend })
    const { port, address, family } = stream.address()
    t.same({ address, family }, { address: '::1', family: 'IPv6' })
    const sender = client(t, 'udp6')
    await sendAll(sender, [Buffer.from('six')], port, '::1')
    const [d] = await take(stream, 1)
    t.equal(d.data.toString(), 'six')
    t.equal(d.family, 'IPv6')
    t.equal(d.remoteAddress, '::1')
    t.equal(d.localAddress, '::1')
    t.ok(d.interfaceIndex > 0)
    t.equal(d.remotePort, sender.address().port)
  })

  t.test(`${backend}: a dual-stack socket receives IPv4, v4-mapped`, async (t) => {
    const stream = await listenFor(t, { type: 'udp6', backend })
    t.equal(stream.address().address, '::')
    const { port } = stream.address()
    const v4 = client(t, 'udp4')
    const v6 = client(t, 'udp6')
    await sendAll(v4, [Buffer.from('four')], port, '127.0.0.2')
    await sendAll(v6, [Buffer.from('six')], port, '::1')
    const [a, b] = await take(stream, 2)
    t.equal(a.data.toString(), 'four')
    t.equal(a.family, 'IPv6')
    t.equal(a.remoteAddress, '::ffff:127.0.0.1')
    t.equal(a.localAddress, '::ffff:127.0.0.2', 'IPv4 destination from pktinfo, in the socket family')
    t.ok(a.interfaceIndex > 0)
    t.equal(b.data.toString(), 'six')
    t.equal(b.remoteAddress, '::1')
    t.equal(b.localAddress, '::1')
  })

  t.test(`${backend}: ipv6Only refuses IPv4`, async (t) => {
    const stream = await listenFor(t, { type: 'udp6', ipv6Only: true, backend })
    const { port } = stream.address()
    // With ipv6Only the IPv4 port is free: binding it proves the socket does not hold it.
    const other = await listenFor(t, { address: '127.0.0.1', port, backend })
    t.equal(other.address().port, port)
  })

  t.test(`${backend}: a datagram longer than bufferSize arrives truncated and flagged`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', bufferSize: 100, backend })
    const { port } = stream.address()
    const sender = client(t)
    const long = payload(7, 1000)
    await sendAll(sender, [long, Buffer.from('short')], port, '127.0.0.1')
    const [a, b] = await take(stream, 2)
    t.equal(a.truncated, true)
    t.equal(a.data.length, 100)
    t.ok(a.data.equals(long.subarray(0, 100)), 'the first bufferSize bytes')
    t.equal(b.truncated, false)
    t.equal(b.data.toString(), 'short')
    t.equal(stream.stats().truncated, 1)
  })

  t.test(`${backend}: an empty datagram is a datagram`, async (t) => {
    const stream = await listenFor(t, { address: '127.0.0.1', backend })
    const sender = client(t)
    await sendAll(sender, [Buffer.alloc(0), Buffer.from('x')], stream.address().port, '127.0.0.1')
    const [a, b] = await take(stream, 2)
    t.equal(a.data.length, 0)
    t.equal(b.data.toString(), 'x')
  })
}

t.test('a Datagram serialises to plain data', async (t) => {
  const stream = await listenFor(t, { address: '127.0.0.1' })
  const sender = client(t)
  await sendAll(sender, [Buffer.from('json')], stream.address().port, '127.0.0.1')
  const [d] = await take(stream, 1)
  const json = JSON.parse(JSON.stringify(d))
  t.same(json, {
    data: Buffer.from('json').toString('base64'),
    remoteAddress: '127.0.0.1',
    remotePort: sender.address().port,
    family: 'IPv4',
    truncated: false,
    controlTruncated: false,
    localAddress: '127.0.0.1',
    interfaceIndex: d.interfaceIndex,
    broadcast: false,
    multicast: false,
    receivedAt: d.receivedAt,
  })
  t.ok(Math.abs(d.receivedAt - Date.now()) < 60_000, 'receivedAt is a time')
  t.match(util.inspect(d), /Datagram \{[^]*remoteAddress: '127.0.0.1'/)
  // data is a real Buffer, whatever it is made from
  t.ok(Buffer.isBuffer(d.data) && d.data instanceof Buffer)
  t.equal(d.data.toString('utf8'), 'json')
  t.ok(Buffer.isBuffer(d.data.subarray(1)) && d.data.subarray(1).toString() === 'son')
  t.equal(d.data.readUInt8(0), 0x6a)
  t.same(Buffer.concat([d.data, Buffer.from('!')]), Buffer.from('json!'))
})

t.test('backends lists what this build can run here, fastest first', async (t) => {
  t.ok(Array.isArray(ring.backends) && ring.backends.length > 0)
  // io_uring where the kernel and its policy allow it (test/uring.test.mjs says why not, where not).
  if (process.platform === 'linux') t.same(ring.backends.filter((b) => b !== 'io_uring'), ['recvmmsg'])
  if (process.platform === 'win32') t.same(ring.backends, ['iocp'])
})
