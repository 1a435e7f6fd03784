// The io_uring backend's own behaviour (the backend-neutral files run against
// it too, as against every backend): whether it can run here and what `auto`
// and `backend: 'io_uring'` do where it cannot, the multishot receive ending
// when credits run out and armed again when they return, the kernel's limit
// on a provided-buffer ring, and `thread` being ignored.
import t from 'tap'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { createRequire } from 'node:module'
import { blast, client, inCI, ring, root, sendAll, sleep } from './lib/helpers.mjs'

const { binding } = createRequire(import.meta.url)(path.join(root, 'dist', 'binding.js'))

// Where io_uring cannot run (a kernel before 6.0, seccomp, kernel.io_uring_disabled,
// DGRAM_RING_IO_URING=0) its tests skip saying why; under CI=true that is a failure.
const reason = process.platform !== 'linux' ? 'io_uring is Linux only' : binding.backendUnavailable('io_uring')
const skip = reason === undefined ? false : `io_uring cannot run here: ${reason}`
if (skip && inCI && process.platform === 'linux') t.fail(`${skip}: CI=true requires it`)

/** Runs `code` (an ES module) in a child process with `env` added; resolves with its JSON output. */
function child(code, env) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      error ? reject(Object.assign(error, { stderr })) : resolve(JSON.parse(stdout)),
    )
  })
}

/** Polls `predicate` every 10 ms until it holds or `ms` passed; returns its last value. */
async function eventually(predicate, ms = 3000) {
  const deadline = Date.now() + ms
  while (!predicate() && Date.now() < deadline) await sleep(10)
  return predicate()
}

t.test('DGRAM_RING_IO_URING=0: auto falls back to recvmmsg, io_uring by name rejects with the reason', { skip: process.platform === 'linux' ? false : 'Linux only' }, async (t) => {
  const result = await child(`
    import { createRequire } from 'node:module'
    const ring = createRequire(import.meta.url)(${JSON.stringify(root)})
    const auto = await ring.listen({ address: '127.0.0.1' })
    const backend = auto.backend
    await auto.close()
    const error = await ring.listen({ address: '127.0.0.1', backend: 'io_uring' }).then(() => null, (e) => ({ code: e.code, message: e.message }))
    console.log(JSON.stringify({ backends: ring.backends, backend, error }))
  `, { DGRAM_RING_IO_URING: '0', DGRAM_RING_BACKEND: '' })
  t.same(result.backends, ['recvmmsg'], 'io_uring is not listed')
  t.equal(result.backend, 'recvmmsg', 'auto skipped io_uring')
  t.equal(result.error?.code, 'ERR_DGRAM_RING_BACKEND_UNAVAILABLE')
  t.match(result.error?.message, /"io_uring" backend is not available here: disabled by DGRAM_RING_IO_URING=0/)
})

t.test('DGRAM_RING_BACKEND is the default backend, validated as the option is', async (t) => {
  const saved = process.env.DGRAM_RING_BACKEND
  t.teardown(() => {
    if (saved === undefined) delete process.env.DGRAM_RING_BACKEND
    else process.env.DGRAM_RING_BACKEND = saved
  })
  process.env.DGRAM_RING_BACKEND = 'nonesuch'
  await t.rejects(ring.listen({ address: '127.0.0.1' }), { code: 'ERR_INVALID_ARG_VALUE', message: /DGRAM_RING_BACKEND/ })
  const name = ring.backends.at(-1)
  process.env.DGRAM_RING_BACKEND = name
  const stream = await ring.listen({ address: '127.0.0.1' })
  t.equal(stream.backend, name, `the environment picked ${name}`)
  await stream.close()
  const explicit = await ring.listen({ address: '127.0.0.1', backend: ring.backends[0] })
  t.equal(explicit.backend, ring.backends[0], 'the option wins over the environment')
  await explicit.close()
})

t.test('io_uring', { skip }, async (t) => {
  t.test('credits run out: the multishot ends, the kernel queues; credits return: it is armed again', async (t) => {
    const got = []
    const socket = new ring.RingSocket({ address: '127.0.0.1', backend: 'io_uring', ringSize: 16 }, (batch) => {
      for (const d of batch) got.push(d.data.toString())
    }, (error) => t.fail(error.message))
    t.teardown(() => socket.close())
    socket.grant(4)
    const sent = Array.from({ length: 20 }, (_, i) => `${i}`)
    await sendAll(client(t), sent.map((s) => Buffer.from(s)), socket.address().port, '127.0.0.1')
    t.ok(await eventually(() => got.length === 4), 'four credits, four datagrams')
    await sleep(50)
    t.equal(got.length, 4, 'no more without credits')
    t.equal(socket.stats().posted, 0, 'nothing posted')
    socket.grant(100)
    t.ok(await eventually(() => got.length === sent.length), 'the rest arrives once credits return')
    t.same(got, sent, 'in order')
    t.equal(socket.stats().posted, 16, 'the whole ring posted again')
  })

  t.test('a flood with no credits for a while: received + kernelDrops === sent', async (t) => {
    let received = 0
    const socket = new ring.RingSocket({ address: '127.0.0.1', backend: 'io_uring', ringSize: 64, recvBufferSize: 16 * 1024 }, (batch) => {
      received += batch.length
    }, (error) => t.fail(error.message))
    socket.grant(64)
    const flood = blast({ port: socket.address().port, size: 200, seconds: 0.5, rate: 100_000 })
    await sleep(100)
    socket.grant(0)
    await sleep(200)
    socket.grant(2 ** 31)
    const { sent } = await flood
    await socket.close()
    const stats = socket.stats()
    t.equal(stats.received, received)
    t.ok(stats.kernelDrops > 0, `the kernel dropped ${stats.kernelDrops} while nothing was posted`)
    t.equal(stats.received + stats.kernelDrops + stats.discarded, sent, `received ${stats.received} + kernelDrops ${stats.kernelDrops} + discarded ${stats.discarded} === sent ${sent}`)
  })

  t.test('a ring above the kernel\'s 32768 provided buffers posts 32768 at most', async (t) => {
    const socket = new ring.RingSocket({ address: '127.0.0.1', backend: 'io_uring', ringSize: 65536, bufferSize: 16 }, () => {}, (error) => t.fail(error.message))
    t.teardown(() => socket.close())
    socket.grant(65536)
    t.ok(await eventually(() => socket.stats().posted === 32768), `posted ${socket.stats().posted}`)
  })

  t.test('thread: true is accepted and ignored: the kernel fills the ring itself', async (t) => {
    const stream = await ring.listen({ address: '127.0.0.1', backend: 'io_uring', thread: true })
    t.teardown(() => stream.close())
    t.equal(stream.backend, 'io_uring')
    await sendAll(client(t), [Buffer.from('a'), Buffer.from('b')], stream.address().port, '127.0.0.1')
    const got = []
    for await (const d of stream) if (got.push(d.data.toString()) === 2) break
    t.same(got, ['a', 'b'])
  })
})
