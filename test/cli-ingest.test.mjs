// The command as a log receiver: a receive thread and a large receive buffer
// by default, said in the listening line, and a warning naming the sysctl
// when the system gives less than asked.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { cli, LIMIT_MS, startListen, stderrLines, until } from './lib/cli.mjs'
import { isRoot, machine, ring, skipUnless, tool } from './lib/helpers.mjs'

const linux = process.platform === 'linux'
const rootOnLinux = machine(linux && isRoot, 'needs root on Linux (SO_RCVBUFFORCE; dropping CAP_NET_ADMIN alone)')

t.test('by default: a receive thread lingering 10 ms and a 16 MiB receive buffer (where granted), in the listening line', { skip: skipUnless(rootOnLinux) }, async (t) => {
  const listener = await startListen(t, ['--count', '1'])
  listener.child.kill('SIGINT')
  const result = await listener.exited
  t.match(stderrLines(result)[0], /^dgram-ring: listening on 127\.0\.0\.1:\d+ \(recvmmsg, receive thread, linger 10 ms, receive buffer 16 MiB\)$/)
  t.notMatch(result.stderr, /warning/)
})

t.test('--thread off and --recv-buffer-size: said as asked', { skip: skipUnless(rootOnLinux) }, async (t) => {
  const listener = await startListen(t, ['--thread', 'off', '--recv-buffer-size', '1048576'])
  listener.child.kill('SIGINT')
  const result = await listener.exited
  t.match(stderrLines(result)[0], /\(recvmmsg, receive buffer 1 MiB\)$/)
})

t.test('--linger: said as asked; 0 writes at once', { skip: skipUnless(rootOnLinux) }, async (t) => {
  for (const [linger, said] of [['2.5', ', linger 2.5 ms'], ['0', '']]) {
    const listener = await startListen(t, ['--linger', linger])
    listener.child.kill('SIGINT')
    const result = await listener.exited
    t.match(stderrLines(result)[0], new RegExp(`\\(recvmmsg, receive thread${said}, receive buffer 16 MiB\\)$`), `--linger ${linger}`)
  }
})

t.test('io_uring: no receive thread and no linger said, since it has neither', { skip: skipUnless(rootOnLinux, machine(ring.backends.includes('io_uring'), 'io_uring cannot run here')) }, async (t) => {
  const listener = await startListen(t, ['--backend', 'io_uring'])
  listener.child.kill('SIGINT')
  const result = await listener.exited
  t.match(stderrLines(result)[0], /\(io_uring, receive buffer 16 MiB\)$/)
})

t.test('without CAP_NET_ADMIN the buffer is capped: a warning names net.core.rmem_max', { skip: skipUnless(rootOnLinux, tool('setpriv')) }, async (t) => {
  const rmemMax = Number(execFileSync('cat', ['/proc/sys/net/core/rmem_max'], { encoding: 'utf8' }))
  if (rmemMax >= 16 * 1024 * 1024) return t.skip(`net.core.rmem_max is ${rmemMax}: nothing caps the default here`)
  // Root without CAP_NET_ADMIN: SO_RCVBUFFORCE is refused, SO_RCVBUF is capped.
  const child = spawn('setpriv', ['--bounding-set', '-net_admin', '--inh-caps', '-net_admin', process.execPath, cli, 'listen', '--address', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('close', resolve))
  t.teardown(() => child.kill('SIGKILL'))
  await until(() => /warning/.test(stderr) || child.exitCode !== null, 'the warning')
  child.kill('SIGINT')
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, LIMIT_MS).unref())])
  const lines = stderr.split('\n')
  t.match(lines[0], /receive buffer \d+ [KM]iB\)$/, 'the listening line says what it got')
  t.match(lines[1], /^dgram-ring: warning: the receive buffer is \d+ [KM]iB, not the 16 MiB asked for: the system caps it at net\.core\.rmem_max \(sysctl -w net\.core\.rmem_max=16777216, or run with CAP_NET_ADMIN\)$/)
})
