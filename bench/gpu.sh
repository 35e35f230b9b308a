#!/usr/bin/env bash
# GPU speed check for issue 7 ("Speed to the limit"), on a machine without network.
#
# Run from the repository root with the git-ignored folder .whl/ beside it (the
# wheels the machine lacks: diffusers and the huggingface_hub stack it was
# tested with here). Writes $OUT/gpu.md (the table) and $OUT/gpu.log;
# OUT defaults to bench/results. Budget: GPU_BUDGET seconds for the rows
# (default 210), the whole script well under 5 minutes.
#
#     OUT=/tmp/out bash bench/gpu.sh
#
# (.whl/ and how to fill it: scripts/gpu-env.sh.)
set -uo pipefail
OUT="${OUT:-$PWD/bench/results}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
: > "$LOG"
source scripts/gpu-env.sh

# Rows past the budget are skipped (and say so); the table is rewritten after every row.
timeout --kill-after=15 270 python3 bench/gpu.py --budget "${GPU_BUDGET:-210}" --output "$OUT/gpu.md" "$@" \
  2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
say "== exit $status, $(date -u '+%H:%M:%S UTC')"
exit "$status"
