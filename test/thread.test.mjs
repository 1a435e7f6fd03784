// The receive thread (`thread: true`, POSIX backends), or io_uring's
// kernel-filled buffers: the ring fills while JavaScript runs. A consumer
// that stalls the loop thread for 50 ms at a time, against a paced sender in
// another process, loses nothing that fits in the ring. (The whole backend-neutral suite also runs with the thread
// forced on: DGRAM_RING_THREAD=1, a CI phase and the sanitizer run.)
import t from 'tap'
import { backends, blast, listenFor } from './lib/helpers.mjs'

// io_uring ignores `thread` and needs none: the kernel fills its provided
// buffers while JavaScript runs, and the same tests hold for it.
const filling = backends.filter((b) => b === 'recvmmsg' || b === 'recvmsg' || b === 'io_uring')
const how = (backend) => (backend === 'io_uring' ? 'with the kernel filling the ring' : 'with the thread')

function stallEvery(ms, stall) {
  const timer = setInterval(() => {
    const end = Date.now() + stall
    while (Date.now() < end) {} // the loop thread is busy: no callback runs, no socket is read from it
  }, ms)
  return () => clearInterval(timer)
}

for (const backend of filling) {
  t.test(`${backend}: ${how(backend)}, 50 ms stalls of the loop lose nothing that fits in the ring`, async (t) => {
    // 5k/s: a 50 ms stall is 250 datagrams, well within a 4096-buffer ring;
    // a small receive buffer (64 KiB: the kernel holds about 130 such
    // datagrams) shows that the ring, not the kernel's queue, absorbed the
    // stall: without the thread this loses hundreds.
    const stream = await listenFor(t, { address: '127.0.0.1', backend, thread: true, ringSize: 4096, recvBufferSize: 65536 })
    let got = 0
    stream.on('data', () => got++)
    const stop = stallEvery(200, 50)
    const { sent } = await blast({ port: stream.address().port, size: 200, seconds: 1, rate: 5000, batch: 4 })
    stop()
    await stream.close()
    const stats = stream.stats()
    t.equal(stats.kernelDrops, 0, `kernel drops ${how(backend)} (sent ${sent}, received ${stats.received})`)
    t.equal(stats.received, sent)
    t.equal(got, sent)
  })

  t.test(`${backend}: thread mode honours credits: no credits, nothing taken off the socket`, async (t) => {
    const { RingSocket } = await import('dgram-ring')
    let delivered = 0
    const socket = new RingSocket({ address: '127.0.0.1', backend, thread: true, ringSize: 64 }, (batch) => (delivered += batch.length), (e) => t.fail(e.message))
    t.teardown(() => socket.close({ discard: true }))
    socket.grant(10)
    const { sent } = await blast({ port: socket.address().port, size: 100, seconds: 0.2, rate: 5000, batch: 8 })
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.equal(delivered, 10, 'exactly the credits')
    t.equal(socket.stats().posted, 0, 'nothing posted without credits')
    socket.grant(0)
    await socket.close()
    const stats = socket.stats()
    t.equal(stats.received + stats.kernelDrops + stats.discarded, sent, 'every datagram accounted for')
  })
}
