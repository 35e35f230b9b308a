#!/usr/bin/env bash
# How presets/models/lite-genres-distilled was made: the shipped lite-genres model
# (the teacher, DDIM 8 steps) distilled into a student that samples in 1, 2 or 4
# steps (training/distill.py). Made on one H100 in two parts of about 7 and 4 minutes
# (the session's GPU time came in one 15-minute lot, so part 2 ran from part 1's saved student); on a CPU the
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

distill() {  # the common settings; then teacher dir, student dir and the part's own options
    timeout --kill-after=15 "${DISTILL_TIMEOUT:-480}" python3 -m training distill "$@" --teacher-steps 8 \
        --student-steps 1 2 4 --pairs 32768 --heldout 256 --batch 128 --teacher-batch 1024 --max-steps 4000 \
        --mixed-precision bf16 --save-every 500 2>&1 | tee -a "$LOG"
    status=${PIPESTATUS[0]}
    echo "== exit $status, $(date -u '+%H:%M:%S UTC')" | tee -a "$LOG"
    return "$status"
}
# Part 1: squared error to the teacher's loops, 5.5 minutes from the teacher's weights (837 steps on an H100).
if [ -z "${SKIP_PART1:-}" ]; then
    distill presets/models/lite-genres "$OUT/lite-genres-distilled-mse" --lr 2e-4 --minutes 5.5 || exit
fi
# Part 2: from part 1, with the texture term against the smoothing part 1 leaves (see training/distill.py), 3 minutes.
distill presets/models/lite-genres "$OUT/lite-genres-distilled" --init "${PART1:-$OUT/lite-genres-distilled-mse}" \
    --texture-weight 10 --lr 1e-4 --minutes "${PART2_MINUTES:-3}"
status=$?
[ "$status" = 0 ] && rm -rf "$OUT"/lite-genres-distilled*/checkpoints  # optimiser state is not shipped
exit "$status"

# Eval (here, on the CPU), the teacher at its 8 steps beside the student at 1 and 2:
#   .venv/bin/python -m training eval presets/models/lite-genres /work/data-lite --count 64 --steps 8 --fidelity-steps
#   .venv/bin/python -m training eval $OUT/lite-genres-distilled /work/data-lite --count 64 --steps 1 --fidelity-steps
# Ship: cp -r $OUT/lite-genres-distilled/{model_index.json,livegen.json,unet,scheduler,mel} presets/models/lite-genres-distilled/
