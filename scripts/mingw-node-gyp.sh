#!/usr/bin/env bash
# A stand-in for node-gyp that `prebuildify --node-gyp` can call: it ignores
# node-gyp's arguments and cross-compiles the win32-x64 addon with mingw-w64
# into build/Release/dgram_ring.node, under the current directory (where
# prebuildify looks for it). Sources, defines and libraries follow
# binding.gyp's win section; keep the two in step.
#
# Node-API comes from a delay-import library made from node-api-headers'
# node_api.def (and the few libuv functions from scripts/node_uv.def) plus
# scripts/win_delay_hook.c, so the addon binds to whichever
# executable loads it. -static links libgcc, libstdc++ and winpthread in: the
# only DLLs imported are then KERNEL32, msvcrt, WS2_32 (and node.exe).
#
# Env: NODE_API_HEADERS_DIR (default: the node-api-headers package resolved
# from here), CROSS (default: x86_64-w64-mingw32).
set -euo pipefail
CROSS=${CROSS:-x86_64-w64-mingw32}
HEADERS=${NODE_API_HEADERS_DIR:-$(node -p "require('path').dirname(require.resolve('node-api-headers/package.json'))")}
ADDON_API=$(node -p "require('node-addon-api').include_dir")
# uv.h (the iocp backend owns a uv_async_t): the host node's headers, which
# are those of the node.exe under test (same version), or NODE_INCLUDE_DIR.
NODE_INCLUDE=${NODE_INCLUDE_DIR:-$(node -p "require('path').resolve(process.execPath, '../../include/node')")}
if [ ! -f "$NODE_INCLUDE/uv.h" ]; then
  npx --no-install node-gyp install >/dev/null
  NODE_INCLUDE=$(node -p "require('path').join(require('os').homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node')")
fi
OUT=build/Release
# A fixed scratch path: dlltool records it, and a reproducible build needs it stable.
TMP=build/mingw-scratch
rm -rf "$TMP"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

"$CROSS-dlltool" -d "$HEADERS/def/node_api.def" -y "$TMP/node_delay.lib" -D node.exe
"$CROSS-dlltool" -d scripts/node_uv.def -y "$TMP/node_uv_delay.lib" -D node.exe
"$CROSS-gcc-posix" -O2 -Wall -c scripts/win_delay_hook.c -o "$TMP/win_delay_hook.o"
# The posix thread model: gcc 12's default (win32) has no std::mutex, which
# node-addon-api uses. -fno-exceptions/-fno-rtti as node-gyp builds addons.
"$CROSS-g++-posix" -O2 -std=c++17 -Wall -Wextra -Wno-unused-parameter -fno-exceptions -fno-rtti \
  -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS \
  -D_WIN32_WINNT=0x0A00 -DWIN32_LEAN_AND_MEAN -DNOMINMAX \
  -I"$HEADERS/include" -I"$ADDON_API" -idirafter "$NODE_INCLUDE" \
  -shared -static -Wl,--no-undefined -Wl,--no-insert-timestamp -o "$OUT/dgram_ring.node" \
  native/addon.cc native/batch.cc native/recycle.cc native/backend_iocp.cc native/iocp_port.cc native/send_win.cc native/win_errors.cc native/win_socket.cc native/cmsg.cc native/coalesce.cc native/multicast.cc native/slab.cc native/sockaddr.cc "$TMP/win_delay_hook.o" \
  "$TMP/node_delay.lib" "$TMP/node_uv_delay.lib" -lws2_32 -lmswsock
