"""Loop preparation: beat grid, whole bars, tempo-stretch, seam, resample."""

from .prep import BeatGrid, Loop, LoopError, find_beat_grid, make_loop, raw_loop, resample

__all__ = ["BeatGrid", "Loop", "LoopError", "find_beat_grid", "make_loop", "raw_loop", "resample"]
