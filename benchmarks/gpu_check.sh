#!/usr/bin/env bash
# The prepared GPU check (issue #23, docs/gpus.md). On a machine with one CUDA GPU, in under
# 10 minutes:
#   1. a short `torchrun --nproc_per_node 1` training of the micro pose network, then of gsdf
#      on CUDA (nccl process group), stopped by SIGTERM once it has a resumable checkpoint and
#      rerun with other runtime settings: it must resume (not restart) and finish;
#   2. benchmarks/bench_gpu.py (training samples/s per model and precision, data wait, meshing);
#   3. the tests marked `gpu`.
# Each part has a time limit. Logs and tables go to $OUT (default .gpucheck/out); the exit
# status is 0 only if 1 and 3 pass.
#
# Needs PyTorch (with CUDA) and gsdf's other packages: where they are missing (a machine without
# network), put their wheels in .whl/ (docs/gpus.md lists them); they are installed into a
# temporary folder. And a packed micro dataset (no synth / sample_sdf on the GPU machine):
#   snakemake --cores 2 --config preset=micro results=.gpucheck/results -- \
#     .gpucheck/results/synth/train/annotations.json .gpucheck/results/synth/test/annotations.json
# Without a GPU the script still runs (CPU, gloo) as a dry run; GSDF_BENCH_TINY=1 shrinks the
# benchmark for that.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/.gpucheck/out}
DATA=${GSDF_CHECK_DATA:-$ROOT/.gpucheck/results/synth}
BUDGET=${GSDF_BENCH_BUDGET:-240}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG=$OUT/gpu_check.log
status=0
say() { echo "== $(date -u +%T) $*" | tee -a "$LOG"; }
fail() { echo "FAIL: $*" | tee -a "$LOG"; status=1; }

if compgen -G ".whl/*.whl" >/dev/null; then
    say "installing the carried wheels (.whl/) into $WORK/site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" .whl/*.whl || fail "wheel install"
    export PYTHONPATH=$ROOT:$WORK/site
else
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'gpus', torch.cuda.device_count())" 2>&1 | tee -a "$LOG"
if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=cuda
else
    DEVICE=cpu
fi
[ -f "$DATA/train/annotations.json" ] || fail "no packed data in $DATA (see the header)"

say "1/3 torchrun training on $DEVICE: pose, then gsdf with SIGTERM and resume"
python3 - "$WORK" <<'EOF' || fail "params"
import json, sys
from gsdf.config import load_config, resolve_experiment
config = load_config(overrides={"preset": "micro"})
for name, epochs in (("pose", 1), ("gsdf", 12)):
    exp = resolve_experiment(config, name)
    exp["train"] = dict(exp.get("train") or {}, epochs=epochs)
    params = {"experiment": exp, "dataset": dict(config["datasets"]["synth"], name="synth"),
              "train": config["train"]}
    open(f"{sys.argv[1]}/{name}.json", "w").write(json.dumps(params))
EOF
if python3 -m gsdf train_sdf --help > /dev/null 2>&1; then  # stage-named subcommands
    POSE_CMD=train_pose; SDF_CMD=train_sdf
else
    POSE_CMD=train; SDF_CMD=train
fi
train() {  # train SUBCOMMAND NAME DIR [runtime flags...]; EXEC=1: replace the shell (`&`)
    local cmd=$1 name=$2 dir=$3
    shift 3
    local run=(timeout -s TERM 150 torchrun --standalone --nproc_per_node 1 -m gsdf "$cmd" --data "$DATA/train"
        --checkpoint "$dir/checkpoint.pt" --log-csv "$dir/train_log.csv"
        --curves "$dir/learning_curves.png" --config-out "$dir/config.yaml" --device "$DEVICE"
        --no-progress --params "$(cat "$WORK/$name.json")" "$@")
    if [ "${EXEC:-0}" = 1 ]; then exec "${run[@]}"; fi
    "${run[@]}"
}
TLOG=$OUT/train.log
train "$POSE_CMD" pose "$WORK/pose" --num-workers 2 > "$TLOG" 2>&1 || fail "pose training"
EXEC=1 train "$SDF_CMD" gsdf "$WORK/gsdf" --num-workers 2 \
    --pose-checkpoint "$WORK/pose/checkpoint.pt" >> "$TLOG" 2>&1 &
pid=$!  # torchrun itself (exec), which forwards SIGTERM to the trainer
for _ in $(seq 1500); do
    [ -f "$WORK/gsdf/checkpoint.last.pt" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
echo "first gsdf run: exit $rc after SIGTERM" | tee -a "$LOG"
[ "$rc" -ne 0 ] && grep -q "received SIGTERM" "$TLOG" || fail "SIGTERM did not stop gsdf cleanly"
[ -f "$WORK/gsdf/checkpoint.last.pt" ] || fail "no checkpoint.last.pt after SIGTERM"
[ ! -f "$WORK/gsdf/checkpoint.pt" ] || fail "checkpoint.pt exists before training finished"
if [ "$DEVICE" = cuda ]; then
    grep -q "process group: nccl" "$TLOG" || fail "no nccl process group"
fi
train "$SDF_CMD" gsdf "$WORK/gsdf" --num-workers 4 --checkpoint-every 2 \
    --pose-checkpoint "$WORK/pose/checkpoint.pt" >> "$TLOG" 2>&1 || fail "resumed gsdf run"
grep -q "resuming from" "$TLOG" || fail "the rerun did not resume"
[ -f "$WORK/gsdf/checkpoint.pt" ] || fail "no final checkpoint.pt"
grep -E "process group|received|resuming|epoch 12/12" "$TLOG" | tee -a "$LOG"

say "2/3 benchmarks/bench_gpu.py (budget ${BUDGET}s)"
OUT=$OUT timeout -s KILL "$((BUDGET + 120))" python3 benchmarks/bench_gpu.py --data "$DATA/train" --test-data "$DATA/test" \
    --extras channels_last compile --budget-s "$BUDGET" ${GSDF_BENCH_ARGS:-} \
    > "$OUT/bench_gpu.log" 2>&1 ||
    echo "bench_gpu.py failed (bench_gpu.log)" | tee -a "$LOG"
tail -n 25 "$OUT/bench_gpu.log"
say "3/3 tests marked gpu"
timeout -s KILL "${GSDF_TEST_TIMEOUT:-120}" python3 -m pytest -q -p no:cacheprovider -m gpu tests/train/test_train_gpu.py \
    tests/eval/test_reconstruct_gpu.py > "$OUT/pytest_gpu.log" 2>&1 ||
    fail "gpu tests (pytest_gpu.log)"
tail -n 3 "$OUT/pytest_gpu.log" | tee -a "$LOG"

rm -rf "$WORK"
say "done: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
