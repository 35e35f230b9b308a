"""Loop preparation: beat grid, whole bars, tempo-stretch, seam, resample; loops on disk."""

from .crate import write_loop
from .prep import BeatGrid, Loop, LoopError, find_beat_grid, make_loop, raw_loop, resample

__all__ = ["BeatGrid", "Loop", "LoopError", "find_beat_grid", "make_loop", "raw_loop", "resample", "write_loop"]
