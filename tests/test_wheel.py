"""livegen installed from a wheel, outside the checkout: the presets and shipped models travel with it."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_generates_and_plays(tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: the build writes beside its sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, timeout=600, cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    *map(str, wheels.glob("livegen-*.whl"))], check=True, timeout=600)
    # The dependencies (torch, diffusers, ...) from this environment, as a plain path after the venv's own:
    # its editable install of the checkout is not on it, so livegen is the wheel's.
    (target / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {key: value for key, value in os.environ.items() if key not in ("LIVEGEN_PRESETS", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    work = tmp_path / "elsewhere"
    work.mkdir()

    def livegen(*args):
        result = subprocess.run([str(venv / "bin" / "python"), "-m", "livegen.cli", *args], cwd=work, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import livegen.presets as p; print(p.__file__); "
                            "print(p.PRESETS_DIR)"], cwd=work, env=env, capture_output=True, text=True, check=True)
    module, presets = where.stdout.split()
    assert module.startswith(str(target)) and presets.startswith(str(target)), where.stdout
    livegen("generate", "--model", "techno", "--count", "1", "--seed", "3", "--out", "loops")
    (loop,) = (work / "loops").glob("*.wav")
    assert json.loads(loop.with_suffix(".json").read_text())["genre"] == "techno"
    livegen("play", "--genre", "techno-fast", "--headless", "--output", "set.wav", "--duration", "4", "--seed", "2")
    audio, rate = soundfile.read(work / "set.wav")
    assert len(audio) >= 3 * rate and abs(audio).max() > 0.01
