#!/usr/bin/env bash
# The listening page of a model (default: the one the genre presets play), in one command:
#
#     bash training/recipes/listen.sh [MODEL_DIR]      # then open $WORK/listen/<model>/index.html
#
# Renders the demo corpus and prepares its data set the way the model was trained (grid
# windows on the semitone codec for a key-conditioned model, grid windows for a grid model,
# whole slices otherwise) where they are not there yet (5-10 minutes on 2 cores, once), then
# runs `training eval` with 16 loops a genre: the figures table (loops beside the ceiling and
# the corpus) and, per genre, loops and ceiling slices to look at and listen to.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/work}
PY=${PY:-.venv/bin/python}
MODEL=${1:-$($PY -c "from livegen.presets import load_genre; print(load_genre('techno').model)")}
NAME=$(basename "$MODEL")

KIND=$($PY -c "from livegen.diffusion import load_model; m = load_model('$MODEL', 'cpu')
print('keys' if m.key_names else 'grid' if m.grid is not None else 'slices')")
if [ "$KIND" = keys ]; then  # as training/recipes/lite-keys.sh made it; the loops ask no key, as in a set without --key
    CORPUS="$WORK/corpus-keys24" DATA="$WORK/data-keys24"
    $PY -m training corpus "$CORPUS" --clips 600 --seed 0 --seconds 24
    [ -d "$DATA/dataset" ] || $PY -m training prepare "$CORPUS" "$DATA" --size lite-keys --grid
elif [ "$KIND" = grid ]; then
    CORPUS="$WORK/corpus-24" DATA="$WORK/data-grid"
    $PY -m training corpus "$CORPUS" --clips 400 --seed 1 --seconds 24
    [ -d "$DATA/dataset" ] || $PY -m training prepare "$CORPUS" "$DATA" --size lite --grid
else
    CORPUS="$WORK/corpus" DATA="$WORK/data-lite"
    $PY -m training corpus "$CORPUS" --clips 400 --seed 0
    [ -d "$DATA/dataset" ] || $PY -m training prepare "$CORPUS" "$DATA" --size lite
fi
$PY -m training eval "$MODEL" "$DATA" --loops 16 --count 32 --fidelity-steps \
    --json "$WORK/listen/$NAME.json" --report "$WORK/listen/$NAME"
