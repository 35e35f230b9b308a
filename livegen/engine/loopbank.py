"""Shared memory for finished loops: a fixed set of slots the worker writes and the mixer reads.

The engine (main process) creates the block and decides which slot each
request may fill; the worker attaches by name and writes only the slot it was
given. A loop then travels as a small descriptor (``LoopReady``) while its
audio stays put: nothing is pickled per loop, and a killed worker leaves every
finished loop intact because the main process owns the memory.
"""

from __future__ import annotations

import math
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

import numpy as np

MAX_LOOP_BEATS = 16  # 4 bars of 4: the longest loop prep cuts (loops.prep bar_choices)


def slot_frames_for(sample_rate: int, min_bpm: float) -> int:
    """Frames a slot needs to hold the longest loop at the slowest tempo the set allows."""
    return int(math.ceil(MAX_LOOP_BEATS * 60.0 / min_bpm * sample_rate)) + 1


def shared_block(size: int, name: str | None = None) -> SharedMemory:
    """A new shared memory block of ``size`` bytes, or (``name``) an existing one, attached."""
    if name is None:
        return SharedMemory(create=True, size=size)
    # Only the creator may track the block: an attaching process that registers it
    # would have it unlinked when that process exits (CPython bpo-39959).
    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return SharedMemory(name=name)
    finally:
        resource_tracker.register = register


class LoopBank:
    """``slots`` x ``slot_frames`` float32 mono audio in one shared block."""

    def __init__(self, slots: int, slot_frames: int, name: str | None = None):
        self.slots, self.slot_frames = slots, slot_frames
        size = slots * slot_frames * 4
        self._shm = shared_block(size, name)
        self.owner = name is None
        self.name = self._shm.name
        self.audio = np.ndarray((slots, slot_frames), dtype=np.float32, buffer=self._shm.buf)
        self._free = list(range(slots)) if self.owner else []

    # -- slot bookkeeping (owner side only) --
    def take(self) -> int | None:
        return self._free.pop(0) if self._free else None

    def give_back(self, slot: int) -> None:
        if slot in self._free:
            raise ValueError(f"slot {slot} is already free")
        self._free.append(slot)

    @property
    def free(self) -> int:
        return len(self._free)

    def write(self, slot: int, audio: np.ndarray) -> None:
        if len(audio) > self.slot_frames:
            raise ValueError(f"loop of {len(audio)} frames does not fit a slot of {self.slot_frames}")
        self.audio[slot, :len(audio)] = audio

    def view(self, slot: int, frames: int) -> np.ndarray:
        """The loop's audio in place (no copy): what the mixer plays."""
        return self.audio[slot, :frames]

    def close(self) -> None:
        self.audio = None
        self._shm.close()
        if self.owner:
            self._shm.unlink()
