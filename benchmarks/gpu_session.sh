#!/usr/bin/env bash
# The one prepared script of a GPU session (issue #12, part 3): <= 9 minutes in all.
#
#   1. benchmarks/bench_cifar_epoch.py   the CIFAR KD epoch, kdlib vs a DataLoader loop   (<= 2 min)
#   2. kdlib run lm_divergences --profile paper                                          (<= 6 min)
#   3. kdlib run lm_data_sources --profile paper, with whatever time is left             (if >= 3 min)
#
# Run from the repository root, e.g. through the device tool (timeout_s 570):
#   PYTHONUNBUFFERED=1 bash benchmarks/gpu_session.sh
# Needs on the machine: torch with CUDA, transformers, papermill, pyyaml, pandas, seaborn, tqdm
# (the project's runtime); set PYTHON to another interpreter if `python3` is not the one.
# Logs, the results files (book/_results/<key>/paper.json, with the GPU in their provenance) and the
# executed notebooks go under $OUT (default: ./_gpu_session). A step cut by its timeout leaves its
# partial log; the steps after it still run if time remains.
set -u
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/_gpu_session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 KDLIB_THREADS=${KDLIB_THREADS:-4}
START=$SECONDS
TOTAL=540  # 9 minutes
left() { echo $((TOTAL - (SECONDS - START))); }
log() { echo "[gpu_session +$((SECONDS - START))s] $*" | tee -a "$OUT/session.log"; }

# ---- preflight (seconds): a GPU, the packages, and the chapters' paper-profile parameters
if ! "$PY" - >"$OUT/preflight.log" 2>&1 <<'EOF'
import sys
import torch, transformers, papermill, yaml  # noqa: F401
from kdlib import run
assert torch.cuda.is_available(), "no CUDA device"
print("gpu:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| transformers", transformers.__version__)
for key in ("lm_divergences", "lm_data_sources"):
    params = run.resolve_parameters(key, "paper")  # raises naming an undeclared parameter
    if not params.get("oracle_scale_concentration"):
        sys.exit(f"{key}: paper profile without oracle_scale_concentration: true (declare it, uncomment it)")
EOF
then
    cat "$OUT/preflight.log"; log "preflight failed: nothing run"; exit 2
fi
cat "$OUT/preflight.log" | tee -a "$OUT/session.log"

# ---- 1. CIFAR epoch benchmark (synthetic data; 25k images keep it near a minute)
log "bench_cifar_epoch start"
timeout -k 15 120 "$PY" benchmarks/bench_cifar_epoch.py --images 25000 --batch 64 --device cuda --workers 8 \
    >"$OUT/bench_cifar_epoch.log" 2>&1
log "bench_cifar_epoch rc=$?"; tail -n 4 "$OUT/bench_cifar_epoch.log" | tee -a "$OUT/session.log"

# ---- 2-3. the LM paper profiles
run_chapter() {  # key, seconds
    log "$1 start (timeout $2 s)"
    timeout -k 15 "$2" "$PY" -m kdlib run "$1" --profile paper --force >"$OUT/$1.log" 2>&1
    local rc=$?
    log "$1 rc=$rc (124: cut by its timeout)"
    mkdir -p "$OUT/results/$1" "$OUT/runs"
    cp -f "book/_results/$1/paper.json" "$OUT/results/$1/" 2>/dev/null && log "$1 paper.json saved"
    cp -f _runs/"$1"/paper-*/*.ipynb "$OUT/runs/" 2>/dev/null
    return 0
}
budget=$(left); run_chapter lm_divergences $((budget < 360 ? budget : 360))
budget=$(left)
if [ "$budget" -ge 180 ]; then
    run_chapter lm_data_sources "$budget"
else
    log "lm_data_sources skipped: only $budget s left"
fi
log "done; $(left) s of the 9 minutes left"
