// Raw sockets: whole IP packets with the same metadata, and a clear error
// without privilege. CI runs as root: the unprivileged case drops to nobody.
import t from 'tap'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { backends, isRoot, listenFor, machine, readableCopy, root, skipUnless, systemUser, take, tool } from './lib/helpers.mjs'

const nobody = systemUser('nobody')
const run = (file, args, options) =>
  new Promise((resolve) => execFile(file, args, { timeout: 30_000, ...options }, (error, stdout, stderr) => resolve({ error, stdout, stderr })))

const unprivileged = [
  machine(process.platform === 'linux', 'needs Linux'),
  machine(isRoot, 'needs root to drop privileges'),
  machine(nobody !== undefined, 'needs the user nobody'),
  tool('setpriv'),
]
t.test('without CAP_NET_RAW, opening a raw socket rejects with EPERM and says why', { skip: skipUnless(...unprivileged) }, async (t) => {
  // nobody may not read the checkout (a home directory, `mktemp -d`): it runs a copy.
  const copy = readableCopy(t, [path.join(root, 'test', 'fixtures', 'raw-open.mjs')])
  for (const type of ['raw4', 'raw6']) {
    // `env -i`: the test runner's loaders (NODE_OPTIONS) are not for nobody.
    const { stdout, stderr } = await run('setpriv', [
      `--reuid=${nobody.uid}`, `--regid=${nobody.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
      'env', '-i', `PATH=${process.env.PATH}`, process.execPath, copy.files['raw-open.mjs'], copy.root, type,
    ], { cwd: copy.root })
    t.equal(stderr, '', stderr)
    const result = JSON.parse(stdout)
    t.equal(result.opened, false, `${type} refused`)
    t.ok(result.code === 'EPERM' || result.code === 'EACCES', `code ${result.code}`)
    t.equal(result.syscall, 'socket')
    t.match(result.message, /raw sockets need privilege \(CAP_NET_RAW/)
  }
})

const rawSockets = machine(isRoot, 'raw sockets need root (CAP_NET_RAW)')
/**
 * A raw ICMP socket sees all the host's ICMP (other pings, port-unreachable
 * replies to UDP tests): `ping -p` fills this test's echoes with a pattern of
 * its own, and the test counts only packets that carry it. The ring is read
 * while ping runs, so other ICMP cannot fill the socket's queue meanwhile.
 */
function pingPattern() {
  const bytes = randomBytes(8)
  return { hex: bytes.toString('hex'), in: (data) => data.includes(bytes) }
}
for (const backend of backends) {
  t.test(`${backend}: a raw ICMP ring receives ping's echo requests as whole IPv4 packets`, { skip: skipUnless(rawSockets, tool('ping')) }, async (t) => {
    const stream = await listenFor(t, { type: 'raw4', protocol: 1, backend })
    t.equal(stream.backend, backend)
    const ours = pingPattern()
    // Loopback carries requests and replies: both reach a raw ICMP socket.
    const taken = take(stream, 6, 15_000, (d) => ours.in(d.data))
    const ping = await run('ping', ['-c', '3', '-i', '0.2', '-W', '1', '-p', ours.hex, '127.0.0.1'])
    t.error(ping.error, 'ping')
    const packets = await taken
    const requests = packets.filter((d) => {
      const ihl = (d.data[0] & 0x0f) * 4
      return d.data[0] >> 4 === 4 && d.data[9] === 1 && d.data[ihl] === 8
    })
    t.equal(requests.length, 3, 'three echo requests (IPv4 header, protocol 1, ICMP type 8)')
    for (const d of requests) {
      t.equal(d.remoteAddress, '127.0.0.1')
      t.equal(d.family, 'IPv4')
      t.equal(d.localAddress, '127.0.0.1')
      t.ok(d.interfaceIndex > 0)
      t.equal(d.data.readUInt16BE(2), d.data.length, 'the IPv4 total length is the whole packet')
    }
  })

  t.test(`${backend}: a raw ICMPv6 ring receives ping -6's echo requests`, { skip: skipUnless(rawSockets, tool('ping')) }, async (t) => {
    const stream = await listenFor(t, { type: 'raw6', protocol: 58, backend })
    const ours = pingPattern()
    const taken = take(stream, 4, 15_000, (d) => ours.in(d.data))
    const ping = await run('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', '-p', ours.hex, '::1'])
    t.error(ping.error, 'ping -6')
    const packets = await taken
    // Linux delivers ICMPv6 without the IPv6 header: type 128 is an echo request.
    const requests = packets.filter((d) => d.data[0] === 128)
    t.equal(requests.length, 2)
    t.equal(requests[0].remoteAddress, '::1')
    t.equal(requests[0].localAddress, '::1')
  })
}
