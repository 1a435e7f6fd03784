// Native unit tests of the Windows backend's parts, cross-built with
// mingw-w64 and run under wine: the process's one completion port and thread
// (test/native/iocp_port_test.cc: the thread count stays flat with 64
// sockets, completions reach their own socket, closing, abandoning, restart,
// several threads at once) and the decoding and split of a coalesced buffer
// (test/native/win_coalesce_test.cc: wine has no receive coalescing, so a
// coalesced Windows buffer is tested here).
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { machine, root, skipUnless, tool } from './lib/helpers.mjs'

const CXX = 'x86_64-w64-mingw32-g++-posix'
const skip = skipUnless(machine(process.platform === 'linux', 'cross-built on Linux (Windows runs the backend-neutral suite itself)'), tool('wine'), tool(CXX))
// A wine prefix of its own (made on first use), so that no other wine user's
// wineserver is shared or stopped.
const WINEPREFIX = process.env.DGRAM_RING_TEST_WINEPREFIX || path.join(os.tmpdir(), `dgram-ring-unit-wine-${process.getuid?.() ?? 0}`)

/** Cross-builds test/native/NAME.cc with `sources` (under native/), runs it under wine, checks "N passed, 0 failed". */
function runUnderWine(t, name, sources) {
  const dir = path.join(root, 'build', 'tools')
  fs.mkdirSync(dir, { recursive: true })
  const exe = path.join(dir, `${name}.exe`)
  execFileSync(CXX, [
    '-std=c++17', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter',
    '-D_WIN32_WINNT=0x0A00', '-DWIN32_LEAN_AND_MEAN', '-DNOMINMAX', '-static', '-o', exe,
    path.join(root, 'test', 'native', `${name}.cc`), ...sources.map((s) => path.join(root, 'native', s)), '-lws2_32',
  ])
  // Wine's output goes to a file, not a pipe (see scripts/win-test.sh).
  const log = path.join(dir, `${name}.log`)
  const out = fs.openSync(log, 'w')
  const env = { PATH: process.env.PATH, HOME: process.env.HOME ?? os.homedir(), WINEPREFIX, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=;winemenubuilder.exe=d' }
  const run = spawnSync('wine', [exe], { env, stdio: ['ignore', out, out], timeout: 170_000 })
  fs.closeSync(out)
  const text = fs.readFileSync(log, 'utf8')
  t.equal(run.status, 0, text)
  t.match(text, /^\d+ passed, 0 failed\r?$/m, text)
}

t.test('the process shares one completion port and thread among all its sockets', { skip, timeout: 180_000 }, async (t) =>
  runUnderWine(t, 'iocp_port_test', ['iocp_port.cc', 'win_errors.cc']))

t.test('a coalesced Windows buffer: UDP_COALESCED_INFO decoded, split into datagrams', { skip, timeout: 180_000 }, async (t) =>
  runUnderWine(t, 'win_coalesce_test', ['cmsg.cc', 'coalesce.cc']))
