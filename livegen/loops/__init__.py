"""Loop preparation: beat grid, whole bars, tempo-stretch, seam, resample; loops on disk."""

from .crate import write_loop
from .fromimage import loops_from_images
from .prep import (BAR_LENGTHS, BeatGrid, Loop, LoopError, bar_choices, find_beat_grid, make_loop, raw_loop, resample,
                   slice_seconds)

__all__ = ["BAR_LENGTHS", "BeatGrid", "Loop", "LoopError", "bar_choices", "find_beat_grid", "loops_from_images",
           "make_loop", "raw_loop", "resample", "slice_seconds", "write_loop"]
