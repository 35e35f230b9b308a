#!/usr/bin/env bash
# How presets/models/lite-keys-grid was made: the key-conditioned grid model of lite-keys.sh (its
# third CPU run, training/recipes/lite-keys.sh, 12.8k steps of 16 windows), trained on for 8 minutes
# on one H200: 6891 steps of 128 windows (4.3x the windows of all three CPU runs together).
# Run 2026-12-04. Key hits 0.50 -> 0.81 in a mixing key (docs/models.md).
#
# Here (where the data set is; WORK as in lite-keys.sh), pack the train split into two parts that
# each fit one device call (64 MiB with the working tree; move presets/models aside for the calls,
# `git checkout presets/models` after), and the pruned diffusers the device lacks:
#
#     bash training/recipes/lite-keys-gpu.sh pack
#
# Then two device calls, the second at once after the first (a warm machine keeps /tmp):
#   1. carry .gpu/site.tar.xz .gpu/init .gpu/data-a, run `bash training/recipes/lite-keys-gpu.sh park`
#      (it also checks the set-up with a 10-second run);
#   2. carry .gpu/site.tar.xz .gpu/init .gpu/data-b, run `bash training/recipes/lite-keys-gpu.sh train`
#      (about 9.5 minutes; writes $OUT/model.tar).
# If the machine went back between them, the second call trains on part b alone.
# Back here: `bash training/recipes/lite-keys-gpu.sh ship /path/to/model.tar`.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/work}
DATA="$WORK/data-keys24"
GPU=.gpu  # git-ignored (.gitignore), travels by carry
case "${1:-}" in
pack)
    PY=.venv/bin/python
    mkdir -p "$GPU"
    $PY training/recipes/gpu_strips.py pack "$DATA" "$GPU/data-a" 0 2
    $PY training/recipes/gpu_strips.py pack "$DATA" "$GPU/data-b" 1 2
    # diffusers without its pipelines (16 of its 30 MB; the training loop needs none of them)
    SITE=$($PY -c "import diffusers, pathlib; print(pathlib.Path(diffusers.__file__).parent.parent)")
    rm -rf "$GPU/site" && mkdir -p "$GPU/site/diffusers/pipelines"
    (cd "$SITE" && tar --exclude=__pycache__ --exclude=diffusers/pipelines --exclude=diffusers/modular_pipelines \
        -cf - diffusers) | tar -C "$GPU/site" -xf -
    cp "$SITE"/diffusers/pipelines/*.py "$GPU/site/diffusers/pipelines/"
    tar -C "$GPU/site" -cJf "$GPU/site.tar.xz" diffusers && rm -rf "$GPU/site"
    # the third CPU run's weights, from which the GPU run starts (fp16 in git history, loads as fp32)
    mkdir -p "$GPU/init"
    git archive 6585a00 training/weights/lite-keys-stage3 | tar -x -C "$GPU/init" --strip-components=3
    ;;
park|train)
    mkdir -p /tmp/site /tmp/keep
    [ -d /tmp/site/diffusers ] || tar -C /tmp/site -xJf "$GPU/site.tar.xz"
    export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
    if [ "$1" = park ]; then
        cp -r "$GPU/data-a" /tmp/keep/
        rm -rf /tmp/check
        PROBE_STEPS=100 python3 training/recipes/gpu_strips.py train /tmp/keep/data-a "$GPU/init" /tmp/check 10 128 3e-4
    else
        rm -rf /tmp/lite-keys-gpu
        # 490 s of training (+15% slack on the clock) after a 150-step probe; batch 128, lr 3e-4
        timeout 570 python3 training/recipes/gpu_strips.py train /tmp/keep/data-a,"$GPU/data-b" "$GPU/init" \
            /tmp/lite-keys-gpu 490 128 3e-4 2>&1 | grep --line-buffered -v "━" | tee "$OUT/train.log"
        tar -C /tmp -cf "$OUT/model.tar" lite-keys-gpu/{model_index.json,livegen.json,unet,scheduler,mel}
    fi
    ;;
ship)
    rm -rf "$WORK/models/lite-keys-gpu" && mkdir -p "$WORK/models" && tar -C "$WORK/models" -xf "$2"
    .venv/bin/python training/recipes/ship_lite_keys.py "$WORK/models/lite-keys-gpu" presets/models/lite-keys-grid
    .venv/bin/python -m training key-eval presets/models/lite-keys-grid --data "$DATA"
    ;;
*)
    echo "usage: $0 pack | park | train | ship MODEL_TAR" >&2
    exit 2
    ;;
esac
