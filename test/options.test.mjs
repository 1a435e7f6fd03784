// Bad input gets a clear error with a stable code; system failures reject
// with the OS's error name. Nothing crashes or hangs.
import t from 'tap'
import { backends, listenFor, ring } from './lib/helpers.mjs'

const invalid = [
  [42, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['udp4', TypeError, 'ERR_INVALID_ARG_TYPE'],
  [null, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [[], TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ type: 'udp5' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ type: 4 }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ address: 7 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ address: 'not an address' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ address: '' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ address: 'fe80::1%' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ address: '127.0.0.1%lo' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ address: '::1', type: 'udp4' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ address: '127.0.0.1', type: 'udp6' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ port: -1 }, RangeError, 'ERR_SOCKET_BAD_PORT'],
  [{ port: 65536 }, RangeError, 'ERR_SOCKET_BAD_PORT'],
  [{ port: 1.5 }, RangeError, 'ERR_SOCKET_BAD_PORT'],
  [{ port: NaN }, RangeError, 'ERR_SOCKET_BAD_PORT'],
  [{ port: '80' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ port: new Number(80) }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ port: { valueOf: () => 80 } }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ ringSize: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ ringSize: 65537 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ ringSize: 2.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ ringSize: Infinity }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ ringSize: '256' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ bufferSize: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ bufferSize: 65536 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ bufferSize: 2048n }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ highWaterMark: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ highWaterMark: -5 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ highWaterMark: {} }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ recvBufferSize: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ recvBufferSize: 2 ** 31 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ reuseAddr: 'yes' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ reusePort: 1 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ ipv6Only: null }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ backend: 'fastest' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ backend: 3 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ signal: {} }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ signal: 'abort' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ type: 'raw4' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ type: 'raw6', protocol: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ type: 'raw4', protocol: 256 }, RangeError, 'ERR_OUT_OF_RANGE'],
  [{ type: 'raw4', protocol: '1' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  [{ type: 'raw4', protocol: 255 }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ type: 'raw6', protocol: 255 }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ type: 'raw4', protocol: 1, port: 7 }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ type: 'raw4', protocol: 1, address: '::1' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [{ type: 'udp4', protocol: 17 }, TypeError, 'ERR_INVALID_ARG_VALUE'],
]

t.test('every invalid option rejects with a coded TypeError/RangeError', async (t) => {
  for (const [options, type, code] of invalid) {
    const label = `listen(${typeof options === 'bigint' ? options : JSON.stringify(options, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))})`
    await t.rejects(ring.listen(options), { constructor: type, code }, label)
    t.throws(() => new ring.DatagramStream(options), { constructor: type, code }, `new DatagramStream: ${label}`)
  }
})

t.test('a raw socket of protocol IPPROTO_RAW (255) is refused: it could only send', async (t) => {
  t.throws(() => new ring.DatagramStream({ type: 'raw4', protocol: 255 }), { code: 'ERR_INVALID_ARG_VALUE', message: /IPPROTO_RAW.*only send/ })
})

t.test('an empty address is refused, not taken as the wildcard', async (t) => {
  t.throws(() => new ring.DatagramStream({ address: '' }), { code: 'ERR_INVALID_ARG_VALUE', message: /omit it for the wildcard/ })
})

t.test('a backend this platform does not have is a coded error', async (t) => {
  const missing = ['recvmmsg', 'recvmsg', 'iocp', 'io_uring'].filter((name) => !ring.backends.includes(name))
  t.ok(missing.length > 0)
  for (const backend of missing) {
    await t.rejects(ring.listen({ backend }), { code: 'ERR_DGRAM_RING_BACKEND_UNAVAILABLE', message: new RegExp(backend) })
  }
})

for (const backend of backends) {
  t.test(`${backend}: EADDRINUSE rejects listen() and emits 'error' then 'close'`, async (t) => {
    const first = await listenFor(t, { address: '127.0.0.1', backend })
    const { port } = first.address()
    const error = await ring.listen({ address: '127.0.0.1', port, backend }).then(
      () => null,
      (e) => e,
    )
    t.ok(error instanceof Error)
    t.equal(error.code, 'EADDRINUSE')
    t.equal(error.syscall, 'bind')
    t.equal(typeof error.errno, 'number')
    t.equal(error.address, '127.0.0.1')
    t.equal(error.port, port)
    t.match(error.message, /bind EADDRINUSE 127\.0\.0\.1:\d+/)

    const stream = new ring.DatagramStream({ address: '127.0.0.1', port, backend })
    const events = []
    for (const name of ['listening', 'error', 'close']) stream.on(name, (e) => events.push(e?.code ? `${name}:${e.code}` : name))
    await new Promise((resolve) => stream.on('close', resolve))
    t.same(events, ['error:EADDRINUSE', 'close'])
    t.equal(stream.backend, undefined)
    t.same(stream.stats(), { received: 0, bytes: 0, truncated: 0, batches: 0, discarded: 0, transientErrors: 0, posted: 0, peakPosted: 0, coalesced: 0 })
    t.throws(() => stream.address(), { code: 'ERR_DGRAM_RING_CLOSED' })
    await stream.close()
  })

  // Wine binds any address (node:dgram too); real Windows and Linux refuse.
  t.test(`${backend}: binding an address this host does not have is EADDRNOTAVAIL`, { skip: process.env.DGRAM_RING_WINE ? 'wine binds non-local addresses' : false }, async (t) => {
    // 192.0.2.1 is TEST-NET-1: never a local address. Nothing is sent.
    await t.rejects(ring.listen({ address: '192.0.2.1', backend }), { code: 'EADDRNOTAVAIL', syscall: 'bind' })
  })

  t.test(`${backend}: reuseAddr lets two sockets bind one port`, async (t) => {
    const a = await listenFor(t, { address: '127.0.0.1', reuseAddr: true, backend })
    const b = await listenFor(t, { address: '127.0.0.1', port: a.address().port, reuseAddr: true, backend })
    t.equal(a.address().port, b.address().port)
  })
}

t.test('listen() accepts localhost and defaults the type from the address', async (t) => {
  const four = await listenFor(t, { address: 'localhost' })
  t.equal(four.address().address, '127.0.0.1')
  const six = await listenFor(t, { address: 'localhost', type: 'udp6' })
  t.equal(six.address().address, '::1')
  const fromAddress = await listenFor(t, { address: '::1' })
  t.equal(fromAddress.address().family, 'IPv6')
})

t.test('an aborted signal rejects listen() with an AbortError', async (t) => {
  const controller = new AbortController()
  controller.abort()
  await t.rejects(ring.listen({ signal: controller.signal }), { name: 'AbortError', code: 'ABORT_ERR' })
})
