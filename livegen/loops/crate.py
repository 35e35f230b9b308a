"""Loops on disk: the audio and a JSON sidecar that says where it came from."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .loudness import fit_peak
from .prep import Loop


def write_loop(folder: Path, stem: str, loop: Loop, metadata: dict, audio_format: str = "wav") -> Path:
    """Write the audio and a JSON sidecar beside it; returns the audio path."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.{audio_format}"
    loop = fit_peak(loop)  # a levelled loop may peak past full scale, where PCM clips
    soundfile.write(path, loop.audio, loop.sample_rate, subtype="PCM_24")
    sidecar = {**metadata, **{k: v for k, v in asdict(loop).items() if k != "audio"},
               "seconds": round(loop.seconds, 6), "frames": len(loop.audio)}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return path
