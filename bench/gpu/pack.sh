#!/usr/bin/env bash
# Builds .gpu-pack/ (git-ignored through .git/info/exclude) for bench/gpu/run.sh on a device machine:
#   node.xz            this machine's Node binary, xz-compressed (the device machine has no Node)
#   dawn.node.xz       Dawn for Node (node_modules/webgpu, linux-x64), xz-compressed, + its index.js / package.json
#   app/               the project bundled by esbuild (cli/main.ts and the bench entries; 'webgpu' external)
#   shared/models/stories260K   the real tiny Llama the benches use
#   gl/*.deb           libvulkan1 & co. (amd64) for the Vulkan loader; the NVIDIA ICD comes with the driver there
# Run it in the checkout that the device tool sends, from anywhere:  bash bench/gpu/pack.sh
# Then, with the device tool:  run(command: "bash bench/gpu/run.sh", carry: [".gpu-pack"], timeout_s: 540)
# and locally against SwiftShader:  bash bench/gpu/run.sh --local
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PACK=.gpu-pack
STORIES=${STORIES:-$ROOT/../shared/models/stories260K}
NODE_BIN=${NODE_BIN:-$(command -v node)}
DAWN=${DAWN:-$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node}
[ -f "$DAWN" ] || { echo "pack: no dawn.node at $DAWN" >&2; exit 1; }
[ -f "$STORIES/config.json" ] || { echo "pack: no stories260K at $STORIES" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "pack: the device machine is x86-64; this is $(uname -m)" >&2; exit 1; }
grep -qxF "/$PACK/" .git/info/exclude 2>/dev/null || echo "/$PACK/" >> "$(git rev-parse --git-path info/exclude)"

rm -rf "$PACK.tmp" && mkdir -p "$PACK.tmp"
T=$PACK.tmp
echo "pack: bundling the project (esbuild)"
npx esbuild bench/gpu/lorafleet.ts bench/kernels/run.ts bench/decode/run.ts bench/multi-lora/run.ts \
  --bundle --platform=node --format=esm --target=node20 --splitting --outbase=. --outdir="$T/app" \
  --out-extension:.js=.mjs --external:webgpu --log-level=warning \
  --banner:js="import { createRequire as __lfRequire } from 'node:module'; const require = __lfRequire(import.meta.url);"
mkdir -p "$T/app/node_modules/webgpu"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$T/app/node_modules/webgpu/"
echo "pack: compressing node ($(du -h "$NODE_BIN" | cut -f1)) and dawn.node ($(du -h "$DAWN" | cut -f1))"
if [ -f "$PACK/node.xz" ] && [ "$(cat "$PACK/node.src" 2>/dev/null)" = "$(stat -c '%n %s %Y' "$NODE_BIN")" ]; then
  cp "$PACK/node.xz" "$PACK/node.src" "$T/"   # unchanged binary: reuse (xz of ~100 MB takes a minute)
else
  xz -6 -T1 -c "$NODE_BIN" > "$T/node.xz"
  stat -c '%n %s %Y' "$NODE_BIN" > "$T/node.src"
fi
"$NODE_BIN" --version > "$T/node.version"
xz -6 -T1 -c "$DAWN" > "$T/dawn.node.xz"
mkdir -p "$T/shared/models"
cp -r "$STORIES" "$T/shared/models/stories260K"
mkdir -p "$T/gl"
if [ -n "$(ls "$PACK"/gl/*.deb 2>/dev/null)" ]; then
  cp "$PACK"/gl/*.deb "$T/gl/"
else
  echo "pack: downloading libvulkan1 & co. (amd64 .debs)"
  mkdir -p /tmp/lf-amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/lf-amd64'
  apt-get $o update -qq >/dev/null
  (cd "$T/gl" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
fi
rm -rf "$PACK" && mv "$T" "$PACK"
BYTES=$(du -sb "$PACK" | cut -f1)
TREE=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "pack: $PACK is $((BYTES / 1024 / 1024)) MiB ($BYTES B); tracked tree $((TREE / 1024 / 1024)) MiB; device carry limit 64 MiB in all"
[ $((BYTES + TREE)) -lt $((64 * 1024 * 1024)) ] || { echo "pack: over the 64 MiB carry limit" >&2; exit 1; }
