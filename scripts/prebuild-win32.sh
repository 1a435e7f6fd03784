#!/usr/bin/env bash
# The win32-x64 prebuild, cross-built on Debian with mingw-w64:
# prebuilds/win32-x64/dgram-ring.node. prebuildify drives
# scripts/mingw-node-gyp.sh in place of node-gyp. Installs the toolchain with
# apt-get when run as root and it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-/tmp/dgram-ring-win32}
mkdir -p "$WORK"
# strip stamps the PE header with the time unless told one: the last commit's,
# so that the same sources give the same bytes.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

PACKAGES="gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 mingw-w64-tools"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi

# The Node-API import definitions (node-api-headers' .def files): a
# devDependency, fetched into $WORK only if node_modules lacks it.
if ! node -e "require.resolve('node-api-headers/package.json')" >/dev/null 2>&1; then
  if [ ! -f "$WORK/npm/node_modules/node-api-headers/def/node_api.def" ]; then
    npm install --prefix "$WORK/npm" --no-save --no-audit --no-fund --silent node-api-headers@^1.5.0 >/dev/null
  fi
  export NODE_API_HEADERS_DIR=$WORK/npm/node_modules/node-api-headers
fi

# prebuildify moves the first .node it finds in <cwd>/build/Release into
# prebuilds/, so it builds in a staging directory: the repository's build/ (a
# Linux build) is left alone.
STAGE=$WORK/stage
rm -rf "$STAGE" prebuilds/win32-x64
mkdir -p "$STAGE"
for entry in package.json native scripts node_modules; do ln -s "$ROOT/$entry" "$STAGE/$entry"; done
npx --no-install prebuildify --napi --strip --platform win32 --arch x64 \
  --node-gyp "$ROOT/scripts/mingw-node-gyp.sh" --strip-bin x86_64-w64-mingw32-strip \
  --cwd "$STAGE" --out "$ROOT"
ls -l prebuilds/win32-x64/
x86_64-w64-mingw32-objdump -p prebuilds/win32-x64/*.node | grep 'DLL Name'
