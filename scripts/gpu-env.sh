# Sourced by the GPU scripts (bench/gpu.sh, training/recipes/*-gpu.sh) on a machine without network:
# installs the git-ignored wheels in .whl/ (diffusers and the huggingface_hub stack it was tested
# with) into /tmp/site and puts them on PYTHONPATH, then checks that diffusers and livegen import.
# Needs LOG (a file) set by the caller.
#
# Filling .whl/ (here, where pip can reach the index; pure-python wheels):
#
#     pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#         diffusers==0.42.1 huggingface_hub accelerate
#
# and, for the live worker's loop prep (bench/worker.py), librosa's stack (two have
# compiled parts: add --implementation cp and the manylinux --platform tags):
#
#     librosa==0.11.0 audioread pooch platformdirs decorator soxr soundfile cffi pycparser
#
# and, for training there (training/recipes/lite-genres-gpu.sh; the image has pyarrow):
#
#     datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
#
# (plus, if the machine's huggingface_hub is older than diffusers needs, the
# httpx/requests stack the .venv uses with it: `.venv/bin/pip show` lists it).
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
say() { echo "$@" | tee -a "$LOG"; }

rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD \
  || { PIP_FAILED=1; export PYTHONPATH="$(printf '%s:' "$PWD"/.whl/*.whl)$PWD"; }  # no pip: pure wheels import as zips
[ -n "${PIP_FAILED:-}" ] && say "== pip install failed: the wheels are on PYTHONPATH as zip files"
say "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(hostname), $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1 | tee -a "$LOG"

# diffusers and the livegen modules the GPU scripts need; versions. With all the shipped
# wheels first; if that mix fails, diffusers alone over the machine's own packages.
probe() {
  python3 - <<'PY'
import sys, torch, numpy
import diffusers, huggingface_hub
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel  # noqa: F401 (lazy imports: force them)
from diffusers.training_utils import EMAModel  # noqa: F401
import livegen.diffusion.sampling, livegen.diffusion.architectures  # noqa: F401
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
      f"GPU {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}), numpy {numpy.__version__}, "
      f"diffusers {diffusers.__version__}, huggingface_hub {huggingface_hub.__version__}")
PY
}
if ! probe >> "$LOG" 2>&1; then
  # (The H100 image's transformers, which diffusers' hooks import through peft, refuses huggingface_hub 2.x.)
  say "== the shipped wheels together do not import (above); retrying without the huggingface_hub stack"
  rm -rf /tmp/site
  wheels=$(ls .whl/*.whl | grep -v -E '/(huggingface_hub|httpx2|httpcore2|h11|anyio|truststore)-')
  if [ -n "${PIP_FAILED:-}" ]; then
    export PYTHONPATH="$(printf '%s:' $wheels)$PWD"
  else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $wheels
  fi
  probe >> "$LOG" 2>&1 || { say "== imports failed both ways: see $LOG"; cat "$LOG"; exit 1; }
fi
tail -n 1 "$LOG"
python3 -c "import librosa, soxr, soundfile; print('librosa', librosa.__version__, 'for the worker bench')" 2>&1 \
  | tail -n 1 | tee -a "$LOG"
