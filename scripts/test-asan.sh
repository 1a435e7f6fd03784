#!/usr/bin/env bash
# npm run test:asan: the native-facing tests against the addon built with
# AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer (gcc).
#
#  1. Builds native/ with -fsanitize=address,undefined into build-asan/ (NOT
#     build/: the normal build/Release and prebuilds/ stay as they are).
#     Sources, defines, include dirs and C++ flags are read from binding.gyp
#     (the section for this OS), plus the defines and flags node-gyp itself
#     adds to every addon, so the two builds stay in step.
#  2. Runs each test file under plain `node` (one process a file, as tap
#     would) with gcc's ASan and UBSan runtimes in LD_PRELOAD (Node itself is
#     not instrumented, so the runtime has to be there before anything else).
#     The environment carries the preload, the sanitizer options and
#     DGRAM_RING_PREBUILD to every child: node children spawned by the tests
#     load the same sanitized addon, workers load it in-process.
#     DGRAM_RING_PREBUILD is node-gyp-build's <PACKAGE_NAME>_PREBUILD: it
#     makes node-gyp-build look for build/Release/*.node under that directory
#     instead of the package's own. A preflight checks, in a child process and
#     a worker too, that the addon actually mapped is the sanitized one.
#  3. Fails (exit 1) if a test fails or any process wrote a sanitizer report.
#     Reports go to per-process files (log_path) so that none is lost in a
#     child whose stderr nobody reads; they are printed at the end.
#
# Env: ASAN_BUILD_DIR (default build-asan), ASAN_TESTS (space-separated test
# files, default: the native-facing ones below), ASAN_THREAD_TESTS and
# ASAN_URING_TESTS (the files run again with the receive thread, and against
# io_uring; empty: none), ASAN_TEST_TIMEOUT (seconds a file, default 300),
# ASAN_SKIP_TSC=1 (dist/ is already built).
# Linux + gcc only. Installs g++ and gcc's sanitizer runtimes with apt-get if
# they are missing (as root, on Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${ASAN_BUILD_DIR:-$ROOT/build-asan}")
RELEASE=$OUT/build/Release  # the layout node-gyp-build looks for
OBJ=$OUT/build/obj
LOGS=$OUT/build/logs
SUPP=$ROOT/scripts/lsan.supp
TIMEOUT=${ASAN_TEST_TIMEOUT:-300}
DEFAULT_TESTS="test/receive.test.mjs test/options.test.mjs test/lifetime.test.mjs test/teardown.test.mjs test/backpressure.test.mjs test/raw.test.mjs test/accounting.test.mjs test/faults.test.mjs test/crossing.test.mjs test/coalesce.test.mjs test/payload-memory.test.mjs test/send.test.mjs"
DEFAULT_TESTS+=" test/metadata.test.mjs test/multicast.test.mjs test/linger.test.mjs"  # per-datagram metadata, multicast joins, the receive thread's linger
start=$(date +%s)
log() { echo "== test:asan [$(($(date +%s) - start))s] $*"; }

if [[ $(uname -s) != Linux ]]; then
  echo "test:asan: Linux only (gcc's ASan/UBSan runtimes, LD_PRELOAD)" >&2
  exit 1
fi

# --- tools ---------------------------------------------------------------
runtime() { # absolute path of gcc's runtime library $1, or nothing
  local p
  p=$(gcc -print-file-name="$1" 2>/dev/null || true)
  [[ $p == /* && -e $p ]] && echo "$p"
}
if ! command -v g++ >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1; then
  log "installing g++"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
if [[ -z $(runtime libasan.so) || -z $(runtime libubsan.so) ]]; then
  # libasan.so/libubsan.so (the link-time names) come with libgcc-N-dev,
  # the runtimes (libasanX, libubsanY) with it.
  log "installing gcc's sanitizer runtimes"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "libgcc-$(gcc -dumpversion | cut -d. -f1)-dev" >/dev/null
fi
ASAN_RT=$(runtime libasan.so)
UBSAN_RT=$(runtime libubsan.so)
[[ -n $ASAN_RT && -n $UBSAN_RT ]] || { echo "test:asan: gcc has no libasan/libubsan" >&2; exit 1; }
# Preload the runtimes themselves (libasan.so.8, libubsan.so.1), not the dev symlinks.
ASAN_RT=$(realpath "$ASAN_RT")
UBSAN_RT=$(realpath "$UBSAN_RT")

# Node's headers (node_api.h, uv.h): those installed beside the executable
# (official tarballs, NodeSource, Debian's nodejs-dev), else node-gyp's copy.
NODE_INCLUDE=$(node -p "require('path').resolve(process.execPath, '..', '..', 'include', 'node')")
if [[ ! -f $NODE_INCLUDE/node_api.h || ! -f $NODE_INCLUDE/uv.h ]]; then
  log "no headers at $NODE_INCLUDE: fetching them with node-gyp"
  node "$(node -p "require.resolve('node-gyp/bin/node-gyp.js')")" install --devdir "$OUT/headers" >/dev/null
  NODE_INCLUDE=$OUT/headers/$(node -p 'process.versions.node')/include/node
fi
[[ -f $NODE_INCLUDE/node_api.h ]] || { echo "test:asan: no Node headers" >&2; exit 1; }

# --- the sanitized addon -------------------------------------------------
# binding.gyp, read as JSON: the target's sources, defines, include_dirs and
# cflags_cc, merged with those of every condition that holds for OS=linux.
mapfile -t GYP < <(node -e '
  const fs = require("fs"), { execSync } = require("child_process")
  // gyp is a Python literal: JSON once its comment lines are dropped.
  const target = JSON.parse(fs.readFileSync("binding.gyp", "utf8").replace(/^\s*#.*$/gm, "")).targets[0]
  const OS = "linux"
  const holds = (cond) => {
    const js = cond.replace(/\bOS\b/g, JSON.stringify(OS)).replace(/\band\b/g, "&&").replace(/\bor\b/g, "||").replace(/\bnot\b/g, "!")
    if (!/^[\s"'"'"'a-z0-9_=!&|()]*$/i.test(js)) throw new Error("binding.gyp: cannot evaluate condition " + cond)
    return Function(`return (${js})`)()
  }
  const parts = [target]
  for (const [cond, then, otherwise] of target.conditions || []) {
    if (holds(cond)) parts.push(then)
    else if (otherwise) parts.push(otherwise)
  }
  const take = (key) => parts.flatMap((p) => p[key] || [])
  const expand = (s) => s.replace(/<!\((.*)\)/, (_, cmd) => execSync(cmd, { encoding: "utf8" }).trim())
  for (const s of take("sources")) console.log("src " + s)
  for (const d of take("defines")) console.log("def " + d)
  for (const i of take("include_dirs")) { const e = expand(i); if (e.includes("<")) throw new Error("binding.gyp: " + i); console.log("inc " + e) }
  for (const f of take("cflags_cc").concat(take("cflags"))) console.log("flag " + f)
')
SOURCES=() FLAGS=()
for line in "${GYP[@]}"; do
  case $line in
    src\ *) SOURCES+=("${line#src }") ;;
    def\ *) FLAGS+=("-D${line#def }") ;;
    inc\ *) FLAGS+=("-I${line#inc }") ;;
    flag\ *) FLAGS+=("${line#flag }") ;;
  esac
done
((${#SOURCES[@]})) || { echo "test:asan: binding.gyp lists no sources" >&2; exit 1; }
# The test double test/teardown.test.mjs uses (DGRAM_RING_FAULTS, below, names it).
SOURCES+=(test/native/backend_sync_close.cc)
# What node-gyp adds to every addon on Linux (see build/*.target.mk), and the
# sanitizers. -O1 keeps reports readable and the run fast; frame pointers give
# the fast unwinder whole stacks; -fno-sanitize-recover makes any UB fatal.
FLAGS+=(
  -DNODE_GYP_MODULE_NAME=dgram_ring -DUSING_UV_SHARED=1 -DUSING_V8_SHARED=1 -DV8_DEPRECATION_WARNINGS=1
  -D_GLIBCXX_USE_CXX11_ABI=1 -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE -D__STDC_FORMAT_MACROS
  -DBUILDING_NODE_EXTENSION -I"$NODE_INCLUDE"
  -fPIC -pthread -m64 -fno-rtti -fno-exceptions
  -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  # native/faults.h: failures the tests cannot provoke from outside (test/faults.test.mjs)
  -DDGRAM_RING_FAULTS
)
log "building $RELEASE/dgram_ring.node from ${SOURCES[*]}"
rm -rf "$OBJ" "$RELEASE"
mkdir -p "$OBJ" "$RELEASE"
pids=() objs=()
for src in "${SOURCES[@]}"; do
  obj=$OBJ/$(basename "${src%.*}").o
  objs+=("$obj")
  g++ "${FLAGS[@]}" -c "$src" -o "$obj" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
g++ -shared -pthread -rdynamic -m64 -fsanitize=address,undefined -Wl,-soname=dgram_ring.node \
  -o "$RELEASE/dgram_ring.node" "${objs[@]}"

# --- what the tests need besides the addon -------------------------------
if [[ ${ASAN_SKIP_TSC:-} != 1 ]]; then
  log "compiling lib/ (tsc)"
  npx --no-install tsc -p tsconfig.json
fi
# The flood senders, compiled now, before the preload: the compiler must not
# run under the sanitizers.
node -e 'import(process.argv[1]).then((m) => m.blastBinary())' "$ROOT/bench/blast.mjs"
node -e 'import(process.argv[1]).then((m) => m.toolBinary("gso_send", process.argv[2]))' "$ROOT/bench/blast.mjs" "$ROOT/test/tools/gso_send.c"
node -e 'import(process.argv[1]).then((m) => m.toolBinary("tos_send", process.argv[2]))' "$ROOT/bench/blast.mjs" "$ROOT/test/tools/tos_send.c"

# --- the sanitized environment -------------------------------------------
rm -rf "$LOGS"
mkdir -p "$LOGS"
# halt_on_error/exitcode: the first report ends the process with a status no
# test expects. log_path: one file a process, so a report in a child cannot
# go unseen. detect_leaks: LSan at every exit, with Node's own allocations
# suppressed (scripts/lsan.supp). detect_stack_use_after_return: the addon's
# frames only (Node is not instrumented).
ASAN_ENV=(
  LD_PRELOAD="$ASAN_RT $UBSAN_RT"
  DGRAM_RING_PREBUILD="$OUT"
  TAP_TIMEOUT="$TIMEOUT"  # tap run as `node file` would otherwise stop a file after 30 s
  ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:exitcode=86:detect_leaks=1:detect_stack_use_after_return=1:detect_odr_violation=2:print_summary=1:log_path=$LOGS/asan"
  LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=1:exitcode=86"
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:print_summary=1:exitcode=87:log_path=$LOGS/ubsan"
)

# gcc 12's ASan cannot map its shadow with more than 28 bits of mmap
# randomness (newer kernels default to 32 on some distributions).
rnd=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if ((rnd > 28)); then
  echo "test:asan: warning: vm.mmap_rnd_bits=$rnd; if ASan dies at startup, run: sysctl -w vm.mmap_rnd_bits=28" >&2
fi

log "preflight: the sanitized addon in this process, a child process and a worker"
PREFLIGHT='
  const fs = require("fs"), { execFileSync } = require("child_process"), { Worker } = require("worker_threads")
  const mapped = () => [...new Set(fs.readFileSync("/proc/self/maps", "utf8").split("\n").map((l) => l.split(/\s+/)[5]).filter((p) => p && /dgram_ring|dgram-ring|libasan|libubsan/.test(p)))]
  require(process.env.ROOT_DIR)
  if (process.argv[1] === "child") { console.log(JSON.stringify(mapped())); process.exit(0) }
  const own = mapped()
  const child = JSON.parse(execFileSync(process.execPath, ["-e", process.env.PREFLIGHT, "child"], { encoding: "utf8" }))
  const worker = new Worker(`require(process.env.ROOT_DIR); require("worker_threads").parentPort.postMessage(1)`, { eval: true })
  worker.once("message", async () => {
    const inWorker = mapped()
    await worker.terminate()
    const want = fs.realpathSync(process.env.DGRAM_RING_PREBUILD + "/build/Release/dgram_ring.node")
    for (const [who, maps] of [["main", own], ["child", child], ["worker", inWorker]]) {
      const addons = maps.filter((p) => /dgram/.test(p))
      if (addons.length !== 1 || addons[0] !== want || !maps.some((p) => /libasan/.test(p)))
        throw new Error(`${who}: expected only ${want} with libasan mapped, got ${JSON.stringify(maps)}`)
    }
    console.log("addon:", want)
  })
'
preflight=0
env "${ASAN_ENV[@]}" ROOT_DIR="$ROOT" PREFLIGHT="$PREFLIGHT" node -e "$PREFLIGHT" || preflight=$?

# --- the tests -----------------------------------------------------------
failed=()
passed=()
tests=${ASAN_TESTS:-$DEFAULT_TESTS}
if ((preflight != 0)); then
  failed+=("preflight (exit $preflight)")
  tests=""
fi
# Each run forces one backend (DGRAM_RING_BACKEND, which test/lib/helpers.mjs
# honours): the files above against recvmmsg; the lifetime, teardown and
# accounting tests (closes in the middle of a flood, exit, workers, collection) a
# second time with the receive thread forced on (DGRAM_RING_THREAD=1: its
# start, join and teardown), and a third time against io_uring (its
# cancellation, the last completion reaped before any buffer is freed), with
# faults.test.mjs (a batch that cannot reach JS) and uring.test.mjs.
THREAD_TESTS=${ASAN_THREAD_TESTS-test/lifetime.test.mjs test/teardown.test.mjs test/accounting.test.mjs test/coalesce.test.mjs}
URING_TESTS=${ASAN_URING_TESTS-test/lifetime.test.mjs test/teardown.test.mjs test/accounting.test.mjs test/faults.test.mjs test/uring.test.mjs test/coalesce.test.mjs}
uring_reason=$(env "${ASAN_ENV[@]}" ROOT_DIR="$ROOT" node -e '
  const { binding } = require(process.env.ROOT_DIR + "/dist/binding.js")
  console.log(binding.backendUnavailable("io_uring") ?? "")' || echo "the addon did not load")
if [[ -n $uring_reason && -n $URING_TESTS ]]; then
  if [[ ${CI:-} == true ]]; then
    failed+=("io_uring cannot run here ($uring_reason): CI=true requires it")
  fi
  log "io_uring cannot run here ($uring_reason): its runs are skipped"
  URING_TESTS=""
fi
runs=()
for file in $tests; do runs+=("$file|recvmmsg"); done
for file in $THREAD_TESTS; do [[ -f $file ]] && runs+=("$file|thread"); done
for file in $URING_TESTS; do [[ -f $file ]] && runs+=("$file|io_uring"); done
for run in "${runs[@]}"; do
  file=${run%|*}
  mode=${run#*|}
  if [[ ! -f $file ]]; then
    [[ -n ${ASAN_TESTS:-} ]] && { echo "test:asan: no such test $file" >&2; exit 1; }
    continue  # a default that this tree does not have (yet)
  fi
  t0=$(date +%s)
  rc=0
  # `timeout` and `env` run outside the preload; only node (and its children) inside.
  tap=$LOGS/$(basename "$file").$mode.tap
  case $mode in
    recvmmsg) label=$file run=(DGRAM_RING_BACKEND=recvmmsg DGRAM_RING_THREAD=0) ;;
    thread) label="$file (receive thread)" run=(DGRAM_RING_BACKEND=recvmmsg DGRAM_RING_THREAD=1) ;;
    io_uring) label="$file (io_uring)" run=(DGRAM_RING_BACKEND=io_uring DGRAM_RING_THREAD=0) ;;
  esac
  timeout -k 10 "$TIMEOUT" env "${ASAN_ENV[@]}" "${run[@]}" node "$file" >"$tap" 2>&1 || rc=$?
  summary=$(grep -E '^# \{ total' "$tap" | tail -1 || true)
  log "$label: exit $rc in $(($(date +%s) - t0))s ${summary:-(no summary)}"
  if ((rc != 0)); then
    failed+=("$label (exit $rc)")
    if grep -qE '^ *not ok' "$tap"; then grep -nE -B2 -A30 '^ *not ok' "$tap" | head -120; else tail -15 "$tap"; fi
  else
    passed+=("$label")
  fi
done

# --- sanitizer reports ---------------------------------------------------
reports=()
suppressed=()
shopt -s nullglob
for f in "$LOGS"/asan.* "$LOGS"/ubsan.*; do
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)' "$f"; then
    reports+=("$f")
  else
    suppressed+=("$f")  # only LSan's "Suppressions used" table
  fi
done
if ((${#suppressed[@]})); then
  log "leaks suppressed by scripts/lsan.supp, in ${#suppressed[@]} process(es):"
  cat "${suppressed[@]}" | awk '/^ *[0-9]+ +[0-9]+ +[^ ]+$/ { n[$3] += $1; b[$3] += $2 } END { for (s in n) printf "   %6d allocations %9d bytes  %s\n", n[s], b[s], s }'
fi
for f in "${reports[@]}"; do
  echo "=============== sanitizer report: $f"
  cat "$f"
done

log "done: ${#passed[@]} file(s) passed, ${#failed[@]} failed, ${#reports[@]} sanitizer report(s)"
if ((${#failed[@]} || ${#reports[@]})); then
  for f in "${failed[@]}"; do echo "FAILED: $f"; done
  for f in "${reports[@]}"; do echo "REPORT: $f"; done
  exit 1
fi
