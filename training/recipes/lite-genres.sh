#!/usr/bin/env bash
# How the shipped model presets/models/lite-genres was made, start to finish.
# On a 2-core CPU (AMD EPYC, AVX2) this takes about 5 + 1 + 55 + 10 minutes.
# On a GPU machine raise --batch and --max-steps and drop --minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/work}
PY=.venv/bin/python

# 1. 1600 clips of 12 s (400 per genre: techno, house, hiphop, breaks), seed 0.
$PY -m training corpus "$WORK/corpus" --clips 400 --seed 0
# 2. 3200 slices of 64 mel bands x 256 frames (5.94 s at 22050 Hz, hop 512).
$PY -m training prepare "$WORK/corpus" "$WORK/data-lite" --size lite
# 3. One class-conditional UNet for all four genres, 55 minutes of wall clock.
$PY -m training train "$WORK/data-lite" "$WORK/models/lite-genres" --size lite --class-conditional \
    --batch 16 --lr 5e-4 --warmup-steps 50 --max-steps 1500 --minutes 55 --save-every 200 \
    --sample-every 500 --sample-steps 20
# 4. The figures in the README.
$PY -m training eval "$WORK/models/lite-genres" "$WORK/data-lite" --count 32 --steps 8 --fidelity-steps 8 20 50 \
    --json "$WORK/models/lite-genres-eval.json"
# 5. Ship it (weights, configs and livegen.json; not the checkpoints or samples).
mkdir -p presets/models/lite-genres
cp -r "$WORK/models/lite-genres"/{model_index.json,livegen.json,unet,scheduler,mel} presets/models/lite-genres/
