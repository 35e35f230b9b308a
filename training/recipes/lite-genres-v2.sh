#!/usr/bin/env bash
# The December run on the whole-slice data (the "A" arm of the side-by-side with lite-genres-grid.sh):
# the lite-genres teacher's weights trained on, with min-SNR weighting, on the same data.
# Run 2026-12-03 on this project's CI machine kind (2-core AMD EPYC with AVX-512 BF16, where bf16
# autocast trains the lite UNet 2x faster than fp32: 0.63 against 1.32 s a step at batch 16), side by
# side with the grid arm, one core each. As run: steps 1-750 in fp32 on 2 threads while other work shared
# the cores, then resumed from the step-750 checkpoint in bf16 on 1 thread until the wall-clock budget.
# The command below does the same in one go (bf16 throughout).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/work}
PY=.venv/bin/python

$PY -m training corpus "$WORK/corpus" --clips 400 --seed 0
[ -d "$WORK/data-lite/dataset" ] || $PY -m training prepare "$WORK/corpus" "$WORK/data-lite" --size lite
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $PY -m training train "$WORK/data-lite" "$WORK/models/lite-genres-v2" \
    --size lite --class-conditional --init presets/models/lite-genres --snr-gamma 5 --batch 16 --lr 3e-4 \
    --warmup-steps 50 --max-steps 6500 --minutes 115 --save-every 250 --sample-every 1000 --sample-steps 20 \
    --mixed-precision bf16
$PY -m training eval "$WORK/models/lite-genres-v2" "$WORK/data-lite" --steps 20 --sampler ddim --loops 12 \
    --fidelity-steps --json "$WORK/models/lite-genres-v2-eval.json" --report "$WORK/listen/lite-genres-v2"
