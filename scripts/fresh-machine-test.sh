#!/usr/bin/env bash
# The tests that need optional system tools, as on a fresh machine with Node
# and a C++ toolchain and nothing else: none of the tools listed in
# test/lib/optional-tools.json on PATH, CI unset, and the checkout under a
# directory that other users (nobody) cannot read, as a home directory or
# `mktemp -d` is. They must pass, skipping what they cannot run. Then the
# tests that hand files to another user (readableCopy) run again from there
# with every tool, so that what they skipped for want of setpriv runs too.
#
#   bash scripts/fresh-machine-test.sh [test files...]
#
# With no arguments: every test file that names one of the tools or states a
# requirement (skipUnless, requireTool from test/lib/helpers.mjs). Run after
# `npm install` (it copies dist/, the addon's build or prebuilds, and links
# node_modules/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

mapfile -t hidden < <(node -e '
  for (const tool of Object.keys(require("./test/lib/optional-tools.json"))) console.log(tool)')
if (($#)); then
  files=("$@")
else
  names=$(printf '%s|' "${hidden[@]}" | sed 's/[.+]/\\&/g')
  mapfile -t files < <(grep -l -E "\b(skipUnless|requireTool)\(|['\"](${names%|})['\"]" test/*.test.mjs)
fi
hidden+=(ping4 ping6 wine64 wineserver) # installed with the tools above

SCRATCH=$(mktemp -d) # mode 0700: nobody cannot read anything under it
trap 'rm -rf "$SCRATCH"' EXIT

# PATH: a directory of links to every command on PATH but the optional tools.
mkdir "$SCRATCH/bin"
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for file in "$dir"/*; do
    name=${file##*/}
    [ -x "$file" ] && [ ! -d "$file" ] && [ ! -e "$SCRATCH/bin/$name" ] || continue
    case " ${hidden[*]} " in *" $name "*) continue ;; esac
    case $name in x86_64-w64-mingw32-*) continue ;; esac
    ln -s "$file" "$SCRATCH/bin/$name"
  done
done
for tool in "${hidden[@]}"; do
  if PATH=$SCRATCH/bin command -v "$tool" >/dev/null; then echo "fresh-machine: $tool is still on PATH" >&2; exit 1; fi
done

# The checkout: tracked and untracked files, the build, and node_modules linked.
mkdir "$SCRATCH/checkout"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$SCRATCH/checkout"
cp -a dist "$SCRATCH/checkout/dist"
[ ! -d prebuilds ] || cp -a prebuilds "$SCRATCH/checkout/"
if [ -d build/Release ]; then
  mkdir -p "$SCRATCH/checkout/build"
  cp -a build/Release "$SCRATCH/checkout/build/Release"
fi
ln -s "$ROOT/node_modules" "$SCRATCH/checkout/node_modules"

echo "fresh-machine: ${files[*]} without ${hidden[*]}, from $SCRATCH/checkout (mode 0700 above it)"
cd "$SCRATCH/checkout"
env -u CI -u PREBUILDS_ONLY PATH="$SCRATCH/bin" npx --no-install tap "${files[@]}"
mapfile -t others < <(grep -l 'readableCopy(' test/*.test.mjs)
if ((${#others[@]})); then
  echo "fresh-machine: ${others[*]} with every tool, from $SCRATCH/checkout"
  env -u PREBUILDS_ONLY npx --no-install tap "${others[@]}"
fi
