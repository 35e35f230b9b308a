"""The transport: the set's clock, counting output samples and knowing bar and beat.

Beats are counted from the first sample the engine plays. A tempo change is
anchored at a sample (a bar line, where the playing loop's re-stretched copy
takes over, so loop and grid turn together); before that sample the old tempo
holds, after it the new one.
Only the engine's control thread changes it; the audio callback never reads it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from ..limits import TEMPO

# Launch quantise in beats, per name: "off" launches at the next block.
QUANTISE_BARS = {"off": 0.0, "beat": None, "1": 1.0, "2": 2.0, "4": 4.0}


@dataclass(frozen=True)
class Position:
    bar: int  # counted from 0
    beat: int  # within the bar, from 0
    phase: float  # 0..1 within the beat


class Transport:
    def __init__(self, sample_rate: int, bpm: float, beats_per_bar: int = 4):
        if bpm not in TEMPO:
            raise ValueError(TEMPO.outside("tempo", bpm))
        self.sample_rate = sample_rate
        self.beats_per_bar = beats_per_bar
        self._anchor_sample = 0  # where the current tempo segment starts
        self._anchor_beat = 0.0
        self._bpm = float(bpm)
        self._change: tuple[int, float] | None = None  # (sample, bpm) of a scheduled tempo change

    def copy(self) -> "Transport":
        """A copy to publish to other threads: they read it (beat_at, sample_of_beat, ...) while the
        control thread goes on changing the original."""
        return copy.copy(self)

    # ------------------------------------------------------------ tempo
    def bpm_at(self, sample: int) -> float:
        if self._change is not None and sample >= self._change[0]:
            return self._change[1]
        return self._bpm

    @property
    def bpm(self) -> float:
        """The tempo once the scheduled change (if any) has happened."""
        return self._change[1] if self._change is not None else self._bpm

    def set_bpm(self, bpm: float, at_sample: int) -> None:
        """Change tempo from ``at_sample`` on (now or later); the beat count stays continuous."""
        if bpm not in TEMPO:
            raise ValueError(TEMPO.outside("tempo", bpm))
        if self._change is not None:
            if at_sample >= self._change[0]:  # the earlier change happens first: make it the anchor
                self._apply_change()
            else:  # the new change comes first and replaces it
                self._change = None
        self._change = (int(at_sample), float(bpm))

    def start_at(self, sample: int) -> None:
        """Beat 0 is at ``sample``: the set's first launch."""
        self._anchor_sample, self._anchor_beat, self._change = int(sample), 0.0, None

    def realign(self, sample: int, beat: float) -> None:
        """Make ``sample`` fall on ``beat`` at the current tempo (following an outside clock)."""
        self._anchor_sample, self._anchor_beat = int(sample), float(beat)
        if self._change is not None and self._change[0] <= sample:
            self._bpm, self._change = self._change[1], None

    def advance(self, now: int) -> None:
        """Fold a tempo change that ``now`` has passed into the anchor."""
        if self._change is not None and now >= self._change[0]:
            self._apply_change()

    def _apply_change(self) -> None:
        sample, bpm = self._change
        self._anchor_beat = self._segment_beat(sample)
        self._anchor_sample = sample
        self._bpm = bpm
        self._change = None

    # ------------------------------------------------------------ sample <-> beat
    def _segment_beat(self, sample: float) -> float:
        return self._anchor_beat + (sample - self._anchor_sample) * self._bpm / (60.0 * self.sample_rate)

    def beat_at(self, sample: int) -> float:
        """Beats since the start (fractional) at an output sample."""
        if self._change is not None and sample >= self._change[0]:
            change_sample, bpm = self._change
            return self._segment_beat(change_sample) + (sample - change_sample) * bpm / (60.0 * self.sample_rate)
        return self._segment_beat(sample)

    def sample_of_beat(self, beat: float) -> float:
        if self._change is not None:
            change_sample, bpm = self._change
            change_beat = self._segment_beat(change_sample)
            if beat >= change_beat:
                return change_sample + (beat - change_beat) * 60.0 * self.sample_rate / bpm
        return self._anchor_sample + (beat - self._anchor_beat) * 60.0 * self.sample_rate / self._bpm

    def position(self, sample: int) -> Position:
        beat = self.beat_at(sample)
        # A grid line rounded to a whole sample still counts as on it: half a sample of slack.
        whole = math.floor(beat + 0.5 * self.bpm_at(sample) / (60.0 * self.sample_rate))
        return Position(bar=whole // self.beats_per_bar, beat=whole % self.beats_per_bar, phase=max(0.0, beat - whole))

    def quantum_beats(self, quantise: str) -> float:
        if quantise not in QUANTISE_BARS:
            raise ValueError(f"quantise must be one of {', '.join(QUANTISE_BARS)}, got {quantise!r}")
        bars = QUANTISE_BARS[quantise]
        return 1.0 if bars is None else bars * self.beats_per_bar

    def next_boundary(self, after_sample: int, quantise: str) -> int:
        """The first grid line (beat or bar multiple) at or after ``after_sample``, in whole samples."""
        quantum = self.quantum_beats(quantise)
        if quantum == 0:
            return int(after_sample)
        beat = self.beat_at(after_sample)
        line = math.ceil(beat / quantum - 1e-9) * quantum
        sample = round(self.sample_of_beat(line))
        if sample < after_sample:  # rounding put it a hair before: take the next line
            sample = round(self.sample_of_beat(line + quantum))
        return int(sample)

    def frames_per_bar(self, sample: int | None = None) -> float:
        bpm = self.bpm if sample is None else self.bpm_at(sample)
        return self.beats_per_bar * 60.0 * self.sample_rate / bpm
