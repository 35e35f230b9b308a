"""What other threads ask of the engine: one typed command per change, carried by the command queue.

Actions (keys, MIDI, OSC, the clock followers, the CLI, tests) call the engine's public methods;
each puts one of these on the queue and wakes the control thread, which alone performs them
(``Engine._perform``). A command carries the values as the caller meant them; limits are applied
where it is performed, so a relative change (``relative=True``) starts from the value in force
then, not from what the caller last saw.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import NamedTuple


class Trigger(NamedTuple):
    genre: str | None  # None: the selected genre


class MakeFromPlaying(NamedTuple):
    """A variation, continuation or morph of the playing loop, launched when ready."""

    mode: str
    strength: float = 0.5
    target_seed: int | None = None


class SelectGenre(NamedTuple):
    genre: str


class ChangeSampling(NamedTuple):
    steps: int | None = None  # None: unchanged
    sampler: str | None = None


class ChangeTempo(NamedTuple):
    bpm: float
    follow: bool = False  # an outside clock leads: the grid turns at the next bar line at once


class ChangeBars(NamedTuple):
    bars: int


class ChangeQuantise(NamedTuple):
    quantise: str


class ChangeAutoBars(NamedTuple):
    bars: int | None


class ChangeGain(NamedTuple):
    value: float
    relative: bool = False


class ChangeFilter(NamedTuple):
    value: float  # -1..1: low-pass left of centre, high-pass right
    relative: bool = False


class ToggleCue(NamedTuple):
    pass


class StepKey(NamedTuple):
    """Key up / key down: the set's key, and the playing loop with it at the next bar."""

    semitones: int


class ToggleKeyLock(NamedTuple):
    pass


class ChooseKey(NamedTuple):
    key: str  # a key as parse_key reads it, or "auto"


class ChangeKeyMode(NamedTuple):
    mode: str | None = None  # None: the other of pick and shift


class AlignGrid(NamedTuple):
    """An outside clock says output sample ``sample`` is at ``beat``."""

    sample: int
    beat: float


class Nudge(NamedTuple):
    milliseconds: float


class ReportSync(NamedTuple):
    """What the set follows (internal, midi, link) and how it goes: shown, not acted on."""

    source: str
    detail: str = ""


class ReportController(NamedTuple):
    name: str | None


# Commands with an answer: the caller waits on ``reply`` for a path, or the exception that stopped it.
class SavePlaying(NamedTuple):
    crate: Path
    reply: queue.SimpleQueue


class StartRecording(NamedTuple):
    path: Path
    reply: queue.SimpleQueue


class StopRecording(NamedTuple):
    reply: queue.SimpleQueue  # gets None when nothing was recording
