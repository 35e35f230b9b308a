"""The ranges a set's settings may take: one table that the controls, the engine and the transport read.

A knob sweeps its own range, which may be narrower than what the engine accepts from a typed
value, a preset or a sync source (a tempo knob over 60-300 BPM would move 2 BPM a step).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    low: float
    high: float
    unit: str = ""

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def clamp(self, value: float) -> float:
        return min(max(value, self.low), self.high)

    def sweep(self, amount: float) -> float:
        """Where a knob at ``amount`` (0..1) points in this range."""
        return self.low + min(max(amount, 0.0), 1.0) * (self.high - self.low)

    def outside(self, what: str, value: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} {value:g}{unit} is outside {self.low:g} to {self.high:g}{unit}"


# The loop bank's slots are sized to hold the longest loop at the slowest tempo.
TEMPO = Limit(60.0, 300.0, "BPM")
TEMPO_KNOB = Limit(60.0, 200.0, "BPM")  # DJ tempos, a knob's 128 positions about 1 BPM apart
STEPS = Limit(1, 1000, "steps")  # a scheduler takes at most its training steps (1000 in every shipped model)
STEPS_KNOB = Limit(1, 50, "steps")  # the knob's sweep and steps_up's top: past 50 no CPU keeps a buffer full
GAIN = Limit(0.0, 2.0)  # master gain, 1 is unity
FILTER = Limit(-1.0, 1.0)  # DJ filter: low-pass left of centre, high-pass right
LOUDNESS = Limit(-40.0, -5.0, "LUFS")  # a loop's levelling target: quieter is noise-floor, louder only clips
