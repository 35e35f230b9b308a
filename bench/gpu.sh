#!/usr/bin/env bash
# GPU speed check for issue 7 ("Speed to the limit"), on a machine without network.
#
# Run from the repository root with the git-ignored folder .whl/ beside it (the
# wheels the machine lacks: diffusers and the huggingface_hub stack it was
# tested with here, and librosa's stack for the worker's loop prep). Writes
# $OUT/gpu.md (generation), $OUT/worker.md (the live worker) and $OUT/gpu.log;
# OUT defaults to bench/results. Budget: GPU_BUDGET seconds for the generation
# rows (default 210), then about 4 minutes for the worker's (WORKER_SECONDS=0 skips them).
#
#     OUT=/tmp/out bash bench/gpu.sh
#     OUT=/tmp/out GPU_BUDGET=100 bash bench/gpu.sh --focus default   # the shipped default model only
#
# (.whl/ and how to fill it: scripts/gpu-env.sh.)
set -uo pipefail
OUT="${OUT:-$PWD/bench/results}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
: > "$LOG"
source scripts/gpu-env.sh

# 1. Batched generation (bench/gpu.py; arguments pass through). Rows past the budget are
#    skipped (and say so); the table is rewritten after every row.
budget="${GPU_BUDGET:-210}"
status=0
if [ "$budget" != 0 ]; then  # GPU_BUDGET=0: the worker's rows only
  timeout --kill-after=15 $((budget + 60)) python3 bench/gpu.py --budget "$budget" --output "$OUT/gpu.md" "$@" \
    2>&1 | tee -a "$LOG"
  status=${PIPESTATUS[0]}
  say "== bench/gpu.py exit $status, $(date -u '+%H:%M:%S UTC')"
fi

# 2. The live worker as the engine runs it: finished, tempo-locked loops per second, loop prep
#    included, eager and compiled (bench/worker.py; needs the librosa wheels). WORKER_SECONDS=0 skips it.
if [ "${WORKER_SECONDS:-15}" != 0 ]; then
  timeout --kill-after=15 "${WORKER_TIMEOUT:-300}" python3 bench/worker.py --device cuda \
    --threads $(( $(nproc) - 1 )) --batches ${WORKER_BATCHES:-64} --compile-too \
    --prep-processes ${WORKER_PREP:-0 $(( $(nproc) / 2 ))} \
    --seconds "${WORKER_SECONDS:-15}" --output "$OUT/worker.md" 2>&1 | tee -a "$LOG"
  worker_status=${PIPESTATUS[0]}
  say "== bench/worker.py exit $worker_status, $(date -u '+%H:%M:%S UTC')"
  [ "$status" = 0 ] && status=$worker_status
fi
exit "$status"
