#!/usr/bin/env bash
# How presets/models/lite-genres-distilled was made: the shipped lite-genres model
# (the teacher, DDIM 8 steps) distilled into a student that samples in 1, 2 or 4
# steps (training/distill.py). Made on one H100 in about 7 minutes; on a CPU the
# same command works but takes hours (the teacher's 32768 loops alone ~4 h on 2 cores).
#
#     OUT=/tmp/out bash training/recipes/lite-genres-distilled.sh     # student in $OUT
#
# On a machine without network, .whl/ supplies diffusers (scripts/gpu-env.sh).
# Then, here: eval beside the teacher, and ship it (see the end).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/work/models}
mkdir -p "$OUT"
LOG="$OUT/distill.log"
: > "$LOG"
if ! python3 -c "import diffusers" 2>/dev/null; then source scripts/gpu-env.sh; fi

timeout --kill-after=15 "${DISTILL_TIMEOUT:-480}" python3 -m training distill presets/models/lite-genres \
    "$OUT/lite-genres-distilled" --teacher-steps 8 --student-steps 1 2 4 --pairs 32768 --heldout 256 \
    --batch 128 --teacher-batch 1024 --lr 2e-4 --max-steps 4000 --minutes "${DISTILL_MINUTES:-5.5}" \
    --mixed-precision bf16 --save-every 500 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
echo "== exit $status, $(date -u '+%H:%M:%S UTC')" | tee -a "$LOG"
[ "$status" = 0 ] && rm -rf "$OUT/lite-genres-distilled/checkpoints"  # the student is saved; its optimiser state is not shipped
exit "$status"

# Eval (here, on the CPU), the teacher at its 8 steps beside the student at 1 and 2:
#   .venv/bin/python -m training eval presets/models/lite-genres /work/data-lite --count 64 --steps 8 --fidelity-steps
#   .venv/bin/python -m training eval $OUT/lite-genres-distilled /work/data-lite --count 64 --steps 1 --fidelity-steps
# Ship: cp -r $OUT/lite-genres-distilled/{model_index.json,livegen.json,unet,scheduler,mel} presets/models/lite-genres-distilled/
