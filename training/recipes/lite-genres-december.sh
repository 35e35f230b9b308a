#!/usr/bin/env bash
# How presets/models/lite-genres-grid and lite-genres-v2 were made: the two arms of one side-by-side,
# both started from the lite-genres teacher's weights and trained with min-SNR weighting in bf16:
#
#     ARM=grid bash training/recipes/lite-genres-december.sh   # 4-bar grid windows of 24 s clips (seed 1)
#     ARM=v2   bash training/recipes/lite-genres-december.sh   # the November whole slices (12 s clips, seed 0)
#
# Run 2026-12-03 on this project's CI machine kind (2-core AMD EPYC with AVX-512 BF16, where bf16
# autocast trains the lite UNet 2x faster than fp32: 0.63 against 1.32 s a step at batch 16), both arms
# at once, one core each. As run, the first steps (grid 250, v2 750) were fp32 while other work shared
# the cores; both then resumed from that checkpoint in bf16 for 100 minutes (grid to 5580 steps, v2 to
# 6101). The command below does the same in one go, bf16 throughout, then writes figures and a listening page.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/work}
PY=.venv/bin/python
case "${ARM:?set ARM=grid or ARM=v2}" in
    grid) CORPUS="$WORK/corpus-24" DATA="$WORK/data-grid"
          $PY -m training corpus "$CORPUS" --clips 400 --seed 1 --seconds 24
          [ -d "$DATA/dataset" ] || $PY -m training prepare "$CORPUS" "$DATA" --size lite --grid ;;
    v2)   CORPUS="$WORK/corpus" DATA="$WORK/data-lite"
          $PY -m training corpus "$CORPUS" --clips 400 --seed 0
          [ -d "$DATA/dataset" ] || $PY -m training prepare "$CORPUS" "$DATA" --size lite ;;
    *) echo "ARM must be grid or v2" >&2; exit 2 ;;
esac
MODEL="$WORK/models/lite-genres-$ARM"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $PY -m training train "$DATA" "$MODEL" \
    --size lite --class-conditional --init presets/models/lite-genres --snr-gamma 5 --batch 16 --lr 3e-4 \
    --warmup-steps 50 --max-steps 6500 --minutes 110 --save-every 250 --sample-every 1000 --sample-steps 20 \
    --mixed-precision bf16
$PY -m training eval "$MODEL" "$DATA" --steps 20 --sampler ddim --loops 12 --fidelity-steps \
    --json "$MODEL-eval.json" --report "$WORK/listen/lite-genres-$ARM"
# Ship: the UNet in fp16 (5 MB; it loads as fp32), with DDIM as the model's default: 8 steps for the grid
# model (the genre presets' default: 37x real time in the live worker here), 20 for v2.
$PY - "$MODEL" "presets/models/lite-genres-$ARM" <<'PYTHON'
import sys
from livegen.diffusion import load_model
model = load_model(sys.argv[1], "cpu", "fp32", winograd=False)
model.unet = model.unet.half()
model.extra.update(default_steps=8 if sys.argv[2].endswith("grid") else 20, default_sampler="ddim")
model.save(sys.argv[2])
PYTHON
