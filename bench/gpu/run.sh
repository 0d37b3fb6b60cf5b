#!/usr/bin/env bash
# One prepared GPU session: lorafleet doctor, bench kernels (--quick), bench decode, bench multi-lora --quick
# on the machine's hardware adapter (Vulkan through Dawn), results into $OUT named after the GPU.
#   device tool:  run(command: "bash bench/gpu/run.sh", carry: [".gpu-pack"], timeout_s: 540)   (after bench/gpu/pack.sh)
#   here:         bash bench/gpu/run.sh --local     (SwiftShader; writes /tmp/lorafleet-gpu-out/ unless OUT is set)
# Options: --local (no .debs, SwiftShader allowed), --only doctor,kernels,decode,multi-lora
# Budget: each step has its own timeout (LF_T_<STEP> seconds) so one slow step cannot eat the lease;
# LF_ARGS_<STEP> adds options to a bench (e.g. LF_ARGS_MULTI_LORA="--models stories260K").
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PACK=$ROOT/.gpu-pack
LOCAL=0
ONLY=doctor,kernels,decode,multi-lora
while [ $# -gt 0 ]; do
  case "$1" in
    --local) LOCAL=1 ;;
    --only) ONLY=$2; shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
OUT=${OUT:-/tmp/lorafleet-gpu-out}
mkdir -p "$OUT"
[ -d "$PACK/app" ] || { echo "run.sh: no $PACK (run bench/gpu/pack.sh first, and carry .gpu-pack)" >&2; exit 1; }
LOG=$OUT/run.log
: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }
T0=$(date +%s)

if [ $LOCAL = 0 ]; then
  for f in "$PACK"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  # The NVIDIA Vulkan ICD ships with the driver under /usr/local/nvidia on these machines.
  ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$ICD" ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD; fi
  export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
  NODE=/tmp/lorafleet-node
  xz -dc "$PACK/node.xz" > "$NODE" && chmod +x "$NODE"
else
  NODE=$(command -v node)
fi
# Work on a copy (the pack stays as carried; the benches write their results beside themselves).
RUN=${LF_RUN_DIR:-/tmp/lorafleet-gpu-run}
rm -rf "$RUN" && mkdir -p "$RUN" && cp -r "$PACK/app" "$PACK/shared" "$RUN/"
DAWN_DIR=$RUN/app/node_modules/webgpu/dist/linux-x64
mkdir -p "$DAWN_DIR" && xz -dc "$PACK/dawn.node.xz" > "$DAWN_DIR/dawn.node"
say "node $("$NODE" --version) · $(uname -m) · $(nproc) CPUs · load $(cut -d' ' -f1-3 /proc/loadavg)"

GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
[ -n "$GPU" ] && say "nvidia-smi: $GPU"
APP=$RUN/app
step() { # step NAME TIMEOUT cmd...
  local name=$1 t=$2; shift 2
  case ",$ONLY," in *",$name,"*) ;; *) return 0 ;; esac
  say "=== $name (timeout ${t}s, t+$(( $(date +%s) - T0 ))s)"
  timeout "$t" "$NODE" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  cat "$OUT/$name.txt" >> "$LOG"
  say "=== $name: exit $rc"
}
step doctor "${LF_T_DOCTOR:-60}" "$APP/bench/gpu/lorafleet.mjs" doctor
# The adapter's name (from doctor), for the file names.
ADAPTER=$(grep -m1 -i -E '^adapter' "$OUT/doctor.txt" 2>/dev/null | sed -E 's/^adapter: *//' | head -c 200)
say "adapter: ${ADAPTER:-unknown}"
SLUG=$(echo "${GPU:-$ADAPTER}" | cut -d, -f1 | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+|-+$//g' | cut -c1-40)
[ -n "$SLUG" ] || SLUG=unknown-gpu
[ $LOCAL = 1 ] && SLUG=$SLUG-local
# shellcheck disable=SC2086  # LF_ARGS_*: extra options, split on spaces
step kernels "${LF_T_KERNELS:-150}" "$APP/bench/kernels/run.mjs" --quick ${LF_ARGS_KERNELS:-}
step decode "${LF_T_DECODE:-150}" "$APP/bench/decode/run.mjs" ${LF_ARGS_DECODE:-}
step multi-lora "${LF_T_MULTI_LORA:-240}" "$APP/bench/multi-lora/run.mjs" --quick ${LF_ARGS_MULTI_LORA:-}

# Results named after the GPU: one summary (doctor + every results.md), the results.json of each bench, the log.
SUM=$OUT/$SLUG-summary.md
{
  echo "# bench/gpu on ${GPU:-$ADAPTER}"
  echo
  echo "$(date -u +%FT%TZ) · node $("$NODE" --version) · $(nproc) CPUs · total $(( $(date +%s) - T0 )) s"
  echo
  echo '## lorafleet doctor'
  echo; echo '```'; cat "$OUT/doctor.txt" 2>/dev/null; echo '```'
  for b in kernels decode multi-lora; do
    if [ -f "$APP/bench/$b/results.md" ]; then echo; echo "## bench $b"; echo; sed 's/^# /### /' "$APP/bench/$b/results.md"; fi
  done
} > "$SUM"
for b in kernels decode multi-lora; do
  [ -f "$APP/bench/$b/results.json" ] && cp "$APP/bench/$b/results.json" "$OUT/$SLUG-$b.json"
  rm -f "$OUT/$b.txt"
done
rm -f "$OUT/doctor.txt"
echo "run.sh: done in $(( $(date +%s) - T0 )) s" >> "$LOG"
mv "$LOG" "$OUT/$SLUG-run.log"
echo "run.sh: done in $(( $(date +%s) - T0 )) s; files: $(ls "$OUT" | tr '\n' ' ')"
