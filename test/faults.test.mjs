// Failures that cannot be provoked from outside, injected into the sanitizer
// build (npm run test:asan compiles native/faults.h in): a batch whose memory
// cannot be allocated, a receive that fails for a passing reason (ENOBUFS),
// and a ring that failed for good.
import t from 'tap'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { createRequire } from 'node:module'
import { backends, root } from './lib/helpers.mjs'

const { binding } = createRequire(import.meta.url)(path.join(root, 'dist', 'binding.js'))

const skip = binding.faultInjection ? false : 'needs the fault-injection build: npm run test:asan runs this file'

function scenario(name, env) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'test', 'fixtures', 'fault.mjs'), root, name], { timeout: 20_000, env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code ?? error.signal : 0, lines: stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr }),
    )
  })
}

for (const backend of backends) {
  t.test(`${backend}: a batch that cannot reach JS fails the stream with a code and is counted as discarded, not received`, { skip }, async (t) => {
    const { code, lines, stderr } = await scenario('buffer', { DGRAM_RING_FAULT_BUFFER: '2=12', DGRAM_RING_BACKEND: backend })
    t.equal(code, 0, stderr)
    const [result] = lines
    t.same(result.errors, ['ENOMEM'], "the stream's 'error' carries a code")
    t.equal(result.received, result.got, 'received counts only what reached JS')
    t.ok(result.discarded >= 1, `discarded ${result.discarded}`)
    t.equal(result.received + result.discarded + result.kernelDrops, 10, 'every datagram accounted for')
    t.equal(result.later, 'ok', 'no exception left pending')
  })
}

t.test('ENOBUFS from a receive is a warning: counted, and the ring goes on', { skip: skip || (backends.includes('recvmmsg') ? false : 'the POSIX backend') }, async (t) => {
  const { code, lines, stderr } = await scenario('transient', { DGRAM_RING_FAULT_RECV: '1=105', DGRAM_RING_BACKEND: 'recvmmsg' })
  t.equal(code, 0, stderr)
  t.same(lines[0], { warnings: ['ENOBUFS'], got: 10, received: 10, transientErrors: 1 })
})

t.test('grant() after the ring failed does not keep the process alive', { skip: skip || (backends.includes('recvmmsg') ? false : 'the POSIX backend') }, async (t) => {
  const { code, lines, stderr } = await scenario('grant-after-failure', { DGRAM_RING_FAULT_RECV: '1=9', DGRAM_RING_BACKEND: 'recvmmsg' })
  t.equal(code, 0, `exited by itself: ${stderr}`)
  t.same(lines, [{ error: 'EBADF' }])
})
