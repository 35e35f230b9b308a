"""What a set is started with: the engine's settings and their defaults (the CLI shows them from here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..loops.loudness import DEFAULT_TARGET_LUFS
from ..presets import PRESETS_DIR


def default_worker_threads() -> int:
    """All the cores this process may use but one, which stays free for the audio (1 on two cores)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass
class EngineSettings:
    genres: list[str]
    bpm: float = 128.0
    steps: int | None = None  # None: each genre preset's own
    sampler: str | None = None
    depth: int = 3  # finished loops kept ready per genre
    quantise: str = "1"  # off | beat | 1 | 2 | 4 (bars)
    crossfade_ms: float = 20.0
    auto_bars: int | None = None  # launch a new loop every N bars by itself
    bars: int = 4  # the longest loop to cut: 1, 2 or 4 bars (a slice too short for it gives fewer)
    sample_rate: int = 48000
    channels: int = 2
    gain: float = 0.8
    loudness: float | None = DEFAULT_TARGET_LUFS  # every loop levelled to this integrated LUFS; None: peak only
    key: str | None = None  # the set's key: "auto" (the first loop with one), a key ("8A", "Am"), None: off
    key_mode: str = "pick"  # how launches keep to it: pick | shift | off (setkey.py)
    device: str = "auto"  # torch device of the worker
    precision: str = "auto"
    worker_threads: int | None = None  # torch threads in the worker; None: all cores but one (default_worker_threads)
    batch_size: int = 4
    compile: str | None = None  # torch.compile backend for the worker's UNets ("inductor": pays on a GPU)
    prep_processes: int = 0  # processes for the worker's loop prep (for a GPU, where it bounds the worker)
    canvas: str = "fit"  # slices drawn wide enough for the loop length at the tempo ("fit"), or "native"
    seed: int | None = None  # first seed; None picks one at random
    sync_delay_ms: float = 0.0  # the clock's gear is heard this much after its clock: our beats follow
    blocksize: int = 256  # the output's block: how far ahead of the callback a launch must be handed over
    max_block: int = 4096  # the largest block the mixer can render
    status_path: Path | None = None
    presets_dir: Path = PRESETS_DIR
