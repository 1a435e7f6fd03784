#!/usr/bin/env bash
# The two prebuilds the package ships, so that `npm install` needs no compiler
# on Linux x64 and Windows x64:
#   prebuilds/linux-x64/dgram-ring.node  prebuildify --napi --strip (node-gyp)
#   prebuilds/win32-x64/dgram-ring.node  cross-built with mingw-w64 (scripts/prebuild-win32.sh)
#
#   bash scripts/prebuilds.sh            build both (npm run prebuilds)
#   bash scripts/prebuilds.sh --missing  build only those missing or older than
#                                        the native sources (npm's prepack: npm
#                                        pack and npm publish always carry both)
#
# When one cannot be built here it fails, saying what is missing and how to
# get it, before building anything.
set -euo pipefail
cd "$(dirname "$0")/.."

only_missing=false
case "${1:-}" in
  --missing) only_missing=true ;;
  '') ;;
  *) echo "usage: scripts/prebuilds.sh [--missing]" >&2; exit 2 ;;
esac

LINUX=prebuilds/linux-x64/dgram-ring.node
WIN32=prebuilds/win32-x64/dgram-ring.node
# What a prebuild is made from: newer than the prebuild means rebuild.
sources=(binding.gyp native scripts/mingw-node-gyp.sh scripts/win_delay_hook.c)
wanted() {
  ! $only_missing || [ ! -f "$1" ] || [ -n "$(find "${sources[@]}" -newer "$1" -print -quit)" ]
}
fail() {
  echo "dgram-ring prebuilds: $*" >&2
  exit 1
}
requireCommands() { # what for, then commands each as name:Debian package
  local what=$1 missing=() packages=()
  shift
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || { missing+=("${spec%%:*}"); packages+=("${spec#*:}"); }
  done
  ((${#missing[@]} == 0)) ||
    fail "$what needs ${missing[*]} (Debian: apt-get install $(printf '%s\n' "${packages[@]}" | sort -u | paste -sd ' '))"
}

build_linux=false
build_win32=false
wanted "$LINUX" && build_linux=true
wanted "$WIN32" && build_win32=true
if $only_missing && ! $build_linux && ! $build_win32; then
  echo "dgram-ring prebuilds: $LINUX and $WIN32 are up to date"
  exit 0
fi

# Every prerequisite first, so nothing is half built when one is missing.
if $build_linux; then
  [ "$(node -p 'process.platform + "-" + process.arch')" = linux-x64 ] ||
    fail "$LINUX is missing or older than native/, and is built on Linux x64 only (this is $(node -p 'process.platform + "-" + process.arch')): copy it from a Linux x64 build (CI) into prebuilds/linux-x64/"
  requireCommands "$LINUX" python3:python3 make:make g++:g++ strip:binutils
  [ -x node_modules/.bin/prebuildify ] || fail "$LINUX needs prebuildify: run npm install first"
fi
if $build_win32; then
  [ "$(uname -s)" = Linux ] || fail "$WIN32 is missing or older than native/, and is cross-built on Linux only: copy it from CI into prebuilds/win32-x64/"
  requireCommands "$WIN32 (cross-built)" \
    x86_64-w64-mingw32-g++-posix:g++-mingw-w64-x86-64 x86_64-w64-mingw32-gcc-posix:gcc-mingw-w64-x86-64 \
    x86_64-w64-mingw32-dlltool:binutils-mingw-w64-x86-64 x86_64-w64-mingw32-strip:binutils-mingw-w64-x86-64 \
    x86_64-w64-mingw32-objdump:binutils-mingw-w64-x86-64
fi

if $build_linux; then
  echo "dgram-ring prebuilds: building $LINUX"
  npx --no-install prebuildify --napi --strip
  [ -f "$LINUX" ] || fail "prebuildify did not write $LINUX"
fi
if $build_win32; then
  echo "dgram-ring prebuilds: building $WIN32"
  bash scripts/prebuild-win32.sh
  [ -f "$WIN32" ] || fail "scripts/prebuild-win32.sh did not write $WIN32"
fi
ls -l "$LINUX" "$WIN32"
