#!/usr/bin/env bash
# Issue 21, part 4: decompose the bundled suite from three teachers of different architectures, at
# the demo's budget, and print one table: each teacher's own test accuracy and its LoRKD experts'.
#   1. resnet18 foundation in safetensors (the demo's: 28 px, up to 8 epochs, patience 4);
#   2. the same resnet18 exported to ONNX (lorkd export --format onnx), run by onnxruntime-node;
#   3. a small ViT foundation (vit_tiny_p8 at 64 px, the same epochs).
# Each teacher is decomposed as the demo does: shufflenet_v2_x1_0 + rank-8 experts, feature KD
# (alpha 10, beta 1), EKS strategy fused, 12 epochs at 64 px. The ONNX teacher's own accuracy is that of the
# safetensors file it was exported from (the same weights; test/teacher-onnx.test.ts checks the
# two fill equal teacher caches within 1e-4).
#
#   bash bench/teachers.sh [OUT]            the full run (OUT default runs/teachers; estimated under an hour on
#                                           2 idle cores, not measured at this budget)
#   TINY=1 bash bench/teachers.sh OUT       a smoke run: 1 epoch each, breastmnist only, the ViT at 32 px
# Resumable: a step whose output exists is skipped, an interrupted one continues (--resume).
# Prints a markdown table and writes OUT/teachers.json; records os.loadavg() before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/teachers}
mkdir -p "$out"
lorkd() { node dist/src/cli/main.js "$@"; }
if [ "${TINY:-0}" = 1 ]; then
  F_EPOCHS=1 EPOCHS=1 TASKS=${TASKS:-breastmnist} VIT_INPUT=32
else
  F_EPOCHS=${F_EPOCHS:-8} EPOCHS=${EPOCHS:-12} TASKS=${TASKS:-breastmnist,pneumoniamnist,retinamnist} VIT_INPUT=${VIT_INPUT:-64}
fi
VIT_LR=${VIT_LR:-0.01}
load() { node -e 'console.log(JSON.stringify(require("os").loadavg().map((x) => +x.toFixed(2))))'; }
load_before=$(load)
# resume FLAG DIR: --resume when DIR holds an unfinished run.
resume() { [ -d "$1" ] && echo --resume || true; }
say() { echo "[teachers] $*" >&2; }

foundation() { # NAME ARCH INPUT LR
  local dir="$out/$1"
  if [ ! -f "$dir/foundation.safetensors" ]; then
    say "foundation $1: $2 at $3 px, up to $F_EPOCHS epochs"
    lorkd foundation --arch "$2" --tasks "$TASKS" --input "$3" --epochs "$F_EPOCHS" --patience 4 --lr "$4" --out "$dir" $(resume "$dir") >&2
  fi
}
decompose() { # NAME TEACHER_FILE FOUNDATION_SAFETENSORS
  local dir="$out/decompose-$1"
  if [ ! -f "$dir/decomposition.safetensors" ]; then
    say "decompose from $1 ($2): $EPOCHS epochs"
    lorkd decompose --foundation "$2" --tasks "$TASKS" --model shufflenet_v2_x1_0 --rank 8 --alpha 10 --beta 1 --kd feature --strategy fused \
      --input 64 --epochs "$EPOCHS" --lr 0.05 --out "$dir" $(resume "$dir") >&2
  fi
  [ -f "$dir/eval.json" ] || lorkd eval --foundation "$3" --decomposition "$dir/decomposition.safetensors" --tasks "$TASKS" --input 64 --json > "$dir/eval.json"
}

foundation resnet18 resnet18 28 0.05
foundation vit vit_tiny_p8 "$VIT_INPUT" "$VIT_LR"
[ -f "$out/resnet18/foundation.onnx" ] || lorkd export --format onnx --model "$out/resnet18/foundation.safetensors" --out "$out/resnet18/foundation.onnx" >&2
decompose resnet18-safetensors "$out/resnet18/foundation.safetensors" "$out/resnet18/foundation.safetensors"
decompose resnet18-onnx "$out/resnet18/foundation.onnx" "$out/resnet18/foundation.safetensors"
decompose vit "$out/vit/foundation.safetensors" "$out/vit/foundation.safetensors"
load_after=$(load)

OUT="$out" LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" F_EPOCHS="$F_EPOCHS" EPOCHS="$EPOCHS" TASKS="$TASKS" node -e '
const fs = require("fs"), path = require("path");
const out = process.env.OUT;
const rows = [["resnet18-safetensors", "resnet18 (safetensors)"], ["resnet18-onnx", "resnet18 (ONNX, onnxruntime-node)"], ["vit", "vit_tiny_p8 (safetensors)"]].map(([dir, label]) => {
  const r = JSON.parse(fs.readFileSync(path.join(out, `decompose-${dir}`, "eval.json"), "utf8"));
  return { teacher: label, foundation_model: r.foundation.model, foundation_input: r.foundation.input, teacher_accuracy: r.foundation.mean_accuracy, teacher_accuracy_restricted: r.foundation.mean_accuracy_restricted, lorkd_accuracy: r.lorkd.mean_accuracy, tasks: r.tasks, per_task: r.tasks.map((t, i) => ({ task: t, teacher: r.foundation.unified[i].accuracy, lorkd: r.lorkd.per_task[i].accuracy })) };
});
const pct = (x) => (100 * x).toFixed(1);
const summary = { budget: { foundation_epochs: +process.env.F_EPOCHS, decompose_epochs: +process.env.EPOCHS, tasks: process.env.TASKS }, loadavg_before: JSON.parse(process.env.LOAD_BEFORE), loadavg_after: JSON.parse(process.env.LOAD_AFTER), rows };
fs.writeFileSync(path.join(out, "teachers.json"), JSON.stringify(summary, null, 2) + "\n");
console.log("| teacher | input | teacher accuracy (unified head) | teacher accuracy (restricted) | LoRKD experts accuracy |");
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.teacher} | ${r.foundation_input} | ${pct(r.teacher_accuracy)} | ${pct(r.teacher_accuracy_restricted)} | ${pct(r.lorkd_accuracy)} |`);
console.log(`\nmean test accuracy (%) over ${rows[0].tasks.join(", ")}; foundation epochs <= ${process.env.F_EPOCHS}, decomposition epochs ${process.env.EPOCHS}; load average before ${process.env.LOAD_BEFORE}, after ${process.env.LOAD_AFTER}`);
'
