"""What the engine holds of its loops: each finished loop's record, and each genre's buffer of ready ones."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .worker import LoopRequest


@dataclass
class LoopInfo:
    """A finished loop in the bank: the request that made it, and what loop prep made of it."""

    request: LoopRequest
    bpm: float
    bars: int
    frames: int
    mode: str  # how it was made: a re-stretched copy keeps its original's mode
    source_id: int | None = None
    width: int | None = None  # model-space columns its slice was drawn at (a remake draws it the same)
    loudness: float | None = None  # integrated LUFS as it plays (None: not levelled)
    gain_db: float = 0.0  # what levelling gave it
    key: str | None = None  # Camelot code of its estimated key; None: no key
    key_confidence: float | None = None  # None: not estimated
    pitch_shift: int = 0  # semitones the worker moved it to fit the set's key

    # Where it is and its recipe are the request's.
    loop_id = property(lambda self: self.request.loop_id)
    slot = property(lambda self: self.request.slot)
    genre = property(lambda self: self.request.genre)
    seed = property(lambda self: self.request.seed)
    steps = property(lambda self: self.request.steps)
    sampler = property(lambda self: self.request.sampler)
    eta = property(lambda self: self.request.eta)
    asked_key = property(lambda self: self.request.asked_key)

    def describe(self) -> dict:
        return {"id": self.loop_id, "genre": self.genre, "seed": self.seed, "mode": self.mode,
                "bpm": round(self.bpm, 3), "bars": self.bars, "steps": self.steps, "sampler": self.sampler,
                "eta": self.eta, "width": self.width, "slot": self.slot, "frames": self.frames,
                "loudness": None if self.loudness is None else round(self.loudness, 2), "gain_db": round(self.gain_db, 2),
                "key": self.key, "key_confidence": self.key_confidence, "pitch_shift": self.pitch_shift,
                "asked_key": self.asked_key}


@dataclass
class GenreState:
    preset: object  # GenrePreset, or the PresetError that stopped it loading
    ready: deque = field(default_factory=deque)  # LoopInfo, oldest first
    generated: int = 0
    dropped: int = 0
    off_key: int = 0  # loops let go because their key did not fit the set's
    error: str | None = None
