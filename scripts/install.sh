#!/usr/bin/env bash
# Installs everything livegen needs into ./.venv: system packages (apt, when run
# as root on Debian/Ubuntu), then torch, then livegen with its test and training extras.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# hydrogen-drumkits, fluid-soundfont-gm and fluidsynth: the demo corpus (training/corpus.py).
# libportaudio2: sounddevice's output; jackd2: the dummy sound server the engine tests play into.
# chromium: the headless browser the listening page's test (tests/training/test_report.py) opens it in.
APT_PACKAGES=(libsndfile1 libportaudio2 jackd2 hydrogen-drumkits fluid-soundfont-gm fluidsynth chromium)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned: on our machines this is the CPU build on local disk, and
# it satisfies livegen's torch range so nothing pulls a multi-GB CUDA build.
# Elsewhere set TORCH_SPEC (e.g. TORCH_SPEC=torch) to take your platform's build.
.venv/bin/pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/pip install -q --disable-pip-version-check -e ".[test,train]"
echo "livegen installed in $(pwd)/.venv"
