#!/usr/bin/env bash
# The packed tarball, installed as a user installs it: into a new consumer
# project, with no compiler, make or Python on PATH (only node, npm, npx and
# basic utilities), so `npm install` must load the prebuild. Then the consumer
# uses it: ESM import, CommonJS require, dgram-ring/rx, dgram-ring/parsers,
# receiving a datagram; a TypeScript consumer compiled with moduleResolution
# node16, bundler and the classic node; and `npx dgram-ring listen --count 1`
# receiving one datagram on loopback.
#
#   bash scripts/pack-smoke.sh [dgram-ring-X.Y.Z.tgz]
#
# Without an argument it runs `npm pack` (whose prepack builds the prebuilds
# when missing). typescript, @types/node and rxjs come from the registry (or
# npm's cache) at the versions package-lock.json pins. Everything happens in a
# new temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
if (($#)); then
  TARBALL=$(realpath "$1")
else
  mkdir -p "$SCRATCH/pack"
  npm pack --pack-destination "$SCRATCH/pack"
  TARBALL=$(echo "$SCRATCH"/pack/dgram-ring-*.tgz)
fi
[ -f "$TARBALL" ] || { echo "pack-smoke: no tarball $TARBALL" >&2; exit 1; }
locked() { node -p "require('./package-lock.json').packages['node_modules/$1'].version"; }
DEV_DEPS=("typescript@$(locked typescript)" "@types/node@$(locked @types/node)" "rxjs@$(locked rxjs)")
step() { echo "pack-smoke: $*"; }

# A PATH of links to node, npm, npx and a few utilities (npm runs scripts
# with sh), and nothing that could compile the addon.
BIN=$SCRATCH/bin
mkdir -p "$BIN"
for command in node npm npx sh bash env cat cp mv rm ls mkdir chmod ln dirname basename uname sed grep head tail tr sort true false sleep; do
  found=$(command -v "$command") || continue
  ln -sf "$found" "$BIN/$command"
done
for tool in cc gcc g++ c++ clang make gmake python python3 node-gyp; do
  if PATH=$BIN command -v "$tool" >/dev/null 2>&1; then echo "pack-smoke: $tool is on the consumer's PATH" >&2; exit 1; fi
done
export PATH=$BIN
unset CI_NODE_GYP npm_config_node_gyp npm_config_python

APP=$SCRATCH/consumer
rm -rf "$APP"
mkdir -p "$APP/src"
cd "$APP"
cat >package.json <<'EOF'
{ "name": "dgram-ring-consumer", "version": "1.0.0", "private": true }
EOF

step "npm install $(basename "$TARBALL") ${DEV_DEPS[*]}"
npm install --no-audit --no-fund --prefer-offline "$TARBALL" "${DEV_DEPS[@]}"
[ -f node_modules/dgram-ring/prebuilds/linux-x64/dgram-ring.node ] || { echo "pack-smoke: the tarball has no linux-x64 prebuild" >&2; exit 1; }
[ -f node_modules/dgram-ring/prebuilds/win32-x64/dgram-ring.node ] || { echo "pack-smoke: the tarball has no win32-x64 prebuild" >&2; exit 1; }
[ ! -e node_modules/dgram-ring/build ] || { echo "pack-smoke: npm install compiled the addon instead of loading the prebuild" >&2; exit 1; }

# Receives one datagram through the API: the addon loads and works.
cat >src/receive.cjs <<'EOF'
module.exports = async function receive(listen) {
  const dgram = require('node:dgram')
  const stream = await listen({ address: '127.0.0.1', port: 0, signal: AbortSignal.timeout(10_000) })
  const client = dgram.createSocket('udp4')
  client.send('ping', stream.address().port, '127.0.0.1', () => client.close())
  for await (const d of stream) {
    await stream.close()
    return d.data.toString()
  }
  throw new Error('the stream ended without a datagram')
}
EOF
cat >src/esm.mjs <<'EOF'
import { listen, backends, DatagramStream } from 'dgram-ring'
import { fromDatagrams, mergeMapWithBackpressure } from 'dgram-ring/rx'
import { parseSyslog, parseStatsd } from 'dgram-ring/parsers'
import receive from './receive.cjs'
if (typeof DatagramStream !== 'function' || typeof fromDatagrams !== 'function' || typeof mergeMapWithBackpressure !== 'function') throw new Error('missing exports')
if (!backends.length) throw new Error('no backend')
if (parseStatsd('a:1|c')[0].name !== 'a') throw new Error('parseStatsd')
if (parseSyslog('<13>Nov 25 01:18:58 host app: hi').message !== 'hi') throw new Error('parseSyslog')
const data = await receive(listen)
if (data !== 'ping') throw new Error(`received ${data}`)
console.log(`ESM: received ${data} (${backends.join(', ')})`)
EOF
cat >src/cjs.cjs <<'EOF'
const { listen, backends } = require('dgram-ring')
const { fromDatagrams } = require('dgram-ring/rx')
const { parseStatsd } = require('dgram-ring/parsers')
const { version } = require('dgram-ring/package.json')
if (typeof fromDatagrams !== 'function' || parseStatsd('a:1|c').length !== 1) throw new Error('missing exports')
// dgram-ring/jetstream without its optional peers (not installed here): a coded error that names them.
try {
  require('dgram-ring/jetstream').createJetStreamSink({ servers: 'nats://127.0.0.1:4222', subject: 'logs.a' })
  throw new Error('dgram-ring/jetstream worked without @nats-io/*')
} catch (error) {
  if (error.code !== 'ERR_DGRAM_RING_PEER_MISSING') throw error
}
require('./receive.cjs')(listen).then((data) => {
  if (data !== 'ping') throw new Error(`received ${data}`)
  console.log(`CommonJS: received ${data} (dgram-ring ${version}, ${backends.join(', ')})`)
})
EOF
step "ESM import"
node src/esm.mjs
step "CommonJS require"
node src/cjs.cjs

# TypeScript: the same consumer source type-checked under each resolution.
cat >src/consumer.ts <<'EOF'
import { listen, DatagramStream, backends, type Datagram, type ListenOptions, type RingStats } from 'dgram-ring'
import { fromDatagrams, mergeMapWithBackpressure } from 'dgram-ring/rx'
import { parseStatsd, parseSyslog, type StatsdRecord, type SyslogRecord } from 'dgram-ring/parsers'
import { map } from 'rxjs'

export async function main(): Promise<number> {
  const options: ListenOptions = { address: '127.0.0.1', port: 0, ringSize: 64 }
  const stream: DatagramStream = await listen(options)
  const stats: RingStats = stream.stats()
  const first: Datagram | null = stream.read()
  const records: StatsdRecord[] = parseStatsd('a:1|c')
  const log: SyslogRecord = parseSyslog('<13>Nov 25 01:18:58 host app: hi')
  const lengths = fromDatagrams(options).pipe(
    mergeMapWithBackpressure(async (d: Datagram) => d.data.length, 4),
    map((n: number) => n * 2),
  )
  void [stats, first, records, log, lengths, backends]
  // @ts-expect-error a port is a number: the types are real, not any
  await listen({ port: 'x' })
  await stream.close()
  return stats.received
}
EOF
tsconfig() { # name, module, moduleResolution
  cat >"tsconfig.$1.json" <<EOF
{
  "compilerOptions": {
    "target": "ES2022", "lib": ["ES2022"], "types": ["node"],
    "module": "$2", "moduleResolution": "$3",
    "strict": true, "noEmit": true, "skipLibCheck": false, "esModuleInterop": true
  },
  "files": ["src/consumer.ts"]
}
EOF
}
tsconfig node16 node16 node16
tsconfig bundler esnext bundler
tsconfig node commonjs node
for resolution in node16 bundler node; do
  step "TypeScript, moduleResolution $resolution"
  npx --no-install tsc -p "tsconfig.$resolution.json"
done

step "npx dgram-ring listen --count 1"
cat >src/cli.mjs <<'EOF'
// Starts the command, reads where it listens from stderr, sends one datagram,
// expects one JSON line and a clean exit; everything within 30 s.
import { spawn } from 'node:child_process'
import dgram from 'node:dgram'
const child = spawn('npx', ['--no-install', 'dgram-ring', 'listen', '--address', '127.0.0.1', '--port', '0', '--count', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
const timer = setTimeout(() => { child.kill('SIGKILL'); console.error(`timed out; stderr: ${stderr}`); process.exit(1) }, 30_000)
let stdout = ''
let stderr = ''
let sent = false
child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk))
child.stderr.setEncoding('utf8').on('data', (chunk) => {
  stderr += chunk
  const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr)
  if (match && !sent) {
    sent = true
    const client = dgram.createSocket('udp4')
    client.send('hello from the consumer', Number(match[1]), '127.0.0.1', () => client.close())
  }
})
child.on('close', (code, signal) => {
  clearTimeout(timer)
  const lines = stdout.split('\n').filter((line) => line !== '')
  const record = lines.length === 1 ? JSON.parse(lines[0]) : undefined
  if (code !== 0 || record?.data !== 'hello from the consumer' || record.remoteAddress !== '127.0.0.1') {
    console.error(`dgram-ring listen: exit ${code} ${signal ?? ''}\nstdout: ${stdout}\nstderr: ${stderr}`)
    process.exit(1)
  }
  console.log(`npx dgram-ring: ${lines[0]}`)
})
EOF
node src/cli.mjs
step "all passed ($(basename "$TARBALL"))"
