#!/usr/bin/env bash
# Device side of the batched job queue (tools/gpu/queue_job.sh): run with carry [".gpucuda", ".gpub"] and the
# command `bash tools/gpu/batch.sh`. Builds the checkpoints the jobs ask for (in parallel, before any job, so
# they do not disturb timings), then runs each .gpub/NAME/job.sh in a fresh copy of the tree overlaid with
# .gpub/NAME/tree (or tree.tgz), under `timeout` of its budget, one at a time; each job's $OUT comes back as NAME.tgz.
set -uo pipefail
OUT=${OUT:-/tmp/llmrt-out}
mkdir -p "$OUT"
root=$(pwd)
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
# shellcheck disable=SC1091
source .gpucuda/boot.sh
export LLMRT_CACHE_DIR=/tmp/llmrt-cache LLMRT_HF_MODELS=/tmp/hfmodels PYTHONUNBUFFERED=1 NO_COLOR=1 FORCE_COLOR=0
LLMRT_NCCL_LIB=${LLMRT_NCCL_LIB:-$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)}
export LLMRT_NCCL_LIB
H=/tmp/hfmodels
mkdir -p "$H" /tmp/jobs/shared
ln -sfn "$LLMRT_MODELS" /tmp/jobs/shared/models
need=$(cat .gpub/*/models 2> /dev/null | tr ' ,' '\n\n' | grep -v '^$' | sort -u)
grep -qx llama-3.1-8b-fp8 <<< "$need" && need=$(printf '%s\nllama-3.1-8b\n' "$need" | sort -u) # the FP8 pack is made from it
stamp "checkpoints: ${need//$'\n'/ }"
tok() { # DIR [--bytes]: the synthetic tokenizer sized to the checkpoint's vocabulary
  [ -f "$1/tokenizer.json" ] || python3 tools/gpu/synthetic_tokenizer.py "$1" "$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['vocab_size'])" "$1/config.json")" "${@:2}"
}
pids=()
if grep -qx hfrefs <<< "$need"; then
  (timeout 200 python3 tools/gpu/hf_models.py --hf-reference .gpucuda/hf_reference.py --out "$H" > "$OUT/hfrefs.log" 2>&1) &
  pids+=($!)
fi
for p in $need; do
  case $p in hfrefs | llama-1b-bytes | llama-3.1-8b-fp8) continue ;; esac
  grep -qx hfrefs <<< "$need" && [ "$p" = llama-3.2-1b ] && continue
  [ -f "$H/$p/config.json" ] || (timeout 300 python3 .gpucuda/hf_reference.py make-model --preset "$p" --out "$H/$p" > "$H/$p.log" 2>&1 || tail -3 "$H/$p.log") &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for p in $need; do
  case $p in hfrefs) p=llama-3.2-1b ;; llama-1b-bytes | llama-3.1-8b-fp8) continue ;; esac
  [ -f "$H/$p/config.json" ] && tok "$H/$p"
done
if grep -qx llama-3.1-8b-fp8 <<< "$need" && [ -f "$H/llama-3.1-8b/config.json" ] && [ ! -f "$H/llama-3.1-8b-fp8/config.json" ]; then
  stamp "packing llama-3.1-8b-fp8 (FP8 per-tensor, calibrated on 2 x 128 tokens)"
  timeout 90 python3 tools/quant-packers/pack_fp8_torch.py --model "$H/llama-3.1-8b" --out "$H/llama-3.1-8b-fp8" --calib-seqs 2 --calib-len 128 > "$OUT/pack8b.log" 2>&1 || tail -3 "$OUT/pack8b.log"
  [ -f "$H/llama-3.1-8b-fp8/tokenizer.json" ] || cp "$H/llama-3.1-8b/tokenizer.json" "$H/llama-3.1-8b-fp8/" 2> /dev/null
fi
if grep -qx llama-1b-bytes <<< "$need" && [ -f "$H/llama-3.2-1b/config.json" ]; then
  mkdir -p "$H/llama-1b-bytes"
  for f in "$H"/llama-3.2-1b/config.json "$H"/llama-3.2-1b/generation_config.json "$H"/llama-3.2-1b/*.safetensors*; do [ -e "$f" ] && ln -sf "$f" "$H/llama-1b-bytes/"; done
  tok "$H/llama-1b-bytes" --bytes
fi
ls "$H"
for j in "$root"/.gpub/*/; do
  name=$(basename "$j")
  budget=$(cat "$j/budget")
  d=/tmp/jobs/$name
  rm -rf "$d" && mkdir -p "$d" "$OUT/$name"
  tar -C "$root" --exclude=./.gpub --exclude=./.gpucuda --exclude=./node_modules --exclude=./.git -cf - . | tar -C "$d" -xf -
  ln -s "$root/.gpucuda" "$d/.gpucuda" && ln -s "$root/.gpucuda/node_modules" "$d/node_modules"
  if [ -f "$j/tree.tgz" ]; then tar -C "$d" -xzf "$j/tree.tgz"; else cp -a "$j/tree/." "$d/"; fi
  (cd "$d" && xargs -r rm -f < "$j/deleted")
  stamp "job $name (budget $budget s)"
  s=$SECONDS
  (cd "$d" && OUT="$OUT/$name" timeout -k 5 "$budget" bash "$j/job.sh") > "$OUT/$name/job.log" 2>&1
  rc=$?
  pkill -9 -x bun 2> /dev/null
  echo "   $name: rc $rc in $((SECONDS - s)) s"
  tail -5 "$OUT/$name/job.log" | cut -c1-200 | sed 's/^/   | /'
  tar -C "$OUT" -czf "$OUT/$name.tgz" "$name" && rm -rf "${OUT:?}/$name"
done
stamp done
