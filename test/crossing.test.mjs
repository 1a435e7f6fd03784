// One native→JS crossing carries at most 64 MiB: a larger batch is split, so
// no ArrayBuffer nears an engine's limit and no payload offset can wrap
// (test/native/batch_test.cc splits one at the cap). The receive thread fills
// far more than that while JS is busy; dense payloads like these go to JS a
// slab at a time, lent (4 MiB at most), where one copied batch of them used to
// reach the cap.
import t from 'tap'
import fs from 'node:fs'
import { backends, client, ring, sendAll, sleep } from './lib/helpers.mjs'

/** Bytes the kernel still queues for the IPv4 socket on 127.0.0.1:`port` (/proc/net/udp's rx_queue). */
function queuedBytes(port) {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  for (const line of fs.readFileSync('/proc/net/udp', 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/)
    if (fields[1] === local) return parseInt(fields[4].split(':')[1], 16)
  }
  return 0
}

const LIMIT = 64 * 1024 * 1024 + 65535 + 1024 * 64 // the cap, plus at most one datagram and its table rows
const SLAB = 4 * 1024 * 1024 // native/slab.h's kMaxSlabBytes: 64 buffers of 64 KiB
const COUNT = 1100
const SIZE = 65000

for (const backend of backends) {
  t.test(`${backend}: a batch of ${COUNT} × ${SIZE} bytes filled while JS is busy crosses lent, a slab at a time, intact`, {
    // The kernel must queue ~140 MB for this socket: SO_RCVBUFFORCE, which needs CAP_NET_ADMIN.
    skip: process.getuid?.() === 0 ? false : 'needs root (SO_RCVBUFFORCE past net.core.rmem_max)',
  }, async (t) => {
    const sizes = []
    const lent = []
    const sequence = []
    let resolveAll
    const all = new Promise((resolve) => (resolveAll = resolve))
    const socket = new ring.RingSocket(
      { address: '127.0.0.1', backend, ringSize: 2048, bufferSize: 65535, recvBufferSize: 512 * 1024 * 1024, thread: true },
      (batch) => {
        sizes.push(batch.buffer.byteLength)
        lent.push(batch.at(0).data.byteOffset === 0) // copied payloads follow the table
        for (const d of batch) {
          const n = d.data.readUInt32BE(0)
          if (d.data.length !== SIZE || d.data[SIZE - 1] !== (n & 0xff)) t.fail(`datagram ${n} damaged`)
          sequence.push(n)
        }
        if (sequence.length >= COUNT) resolveAll()
      },
      (error) => t.fail(error.message),
    )
    t.teardown(() => socket.close({ discard: true }))
    const payloads = Array.from({ length: COUNT }, (_, i) => {
      const b = Buffer.alloc(SIZE, i & 0xff)
      b.writeUInt32BE(i, 0)
      return b
    })
    await sendAll(client(t), payloads, socket.address().port, '127.0.0.1')
    await sleep(100)
    socket.grant(COUNT) // all queued: the receive thread fills the ring while this thread is busy
    // Busy until the receive thread has taken the whole queue (on a loaded
    // machine it may take longer than a second), at most 10 s.
    const port = socket.address().port
    const busyUntil = Date.now() + 10_000
    let spunUntilEmpty = false
    while (Date.now() < busyUntil) if ((spunUntilEmpty = queuedBytes(port) === 0)) break
    t.ok(spunUntilEmpty, 'the receive thread took the whole queue while JavaScript was busy')
    const timer = setTimeout(resolveAll, 20_000)
    await all
    clearTimeout(timer)
    t.equal(sequence.length, COUNT, `received ${sequence.length}, kernel drops ${socket.stats().kernelDrops}`)
    t.ok(sequence.every((n, i) => n === i), 'in order')
    t.ok(sizes.every((size) => size <= LIMIT), `largest crossing ${Math.max(...sizes)} bytes`)
    t.ok(lent.every(Boolean), `every one of ${sizes.length} crossings lent`)
    t.ok(sizes.every((size) => size <= SLAB), 'none larger than a slab')
  })
}
