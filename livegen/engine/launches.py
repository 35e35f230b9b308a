"""When a launch happens: arithmetic on the output's sample clock and the transport's grid.

The engine's control thread asks, with the clock it has just read ("now", the callback's
output sample count) and what the mixer publishes (the loop on stage, the end of a running
crossfade); nothing here reads a process, a pipe or the wall clock. So quantise, auto launch,
nudge, the tempo hand-over and the resume after an audio fault are tested with a made-up clock
(tests/engine/test_launches.py), in milliseconds.

A launch names ``at``, the output sample where the new loop's first (or ``offset``-th) sample
plays, its crossfade ending there; the callback must have it two blocks before its fade begins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .transport import Transport


class OnStage(NamedTuple):
    """A loop as the mixer plays it: its sample 0 plays (or played) at output sample ``start``,
    and it repeats every ``frames``."""

    loop_id: int
    start: int
    frames: int


class Relaunch(NamedTuple):
    at: int  # output sample where it takes over
    offset: int  # the loop's sample that plays there


@dataclass(frozen=True)
class LaunchTiming:
    blocksize: int  # the output's block: a launch is handed over this far ahead, twice
    sample_rate: int

    def earliest(self, now: int, fade_frames: int = 0) -> int:
        """The first output sample a launch handed over at ``now`` can still start on, after its fade."""
        return now + 2 * self.blocksize + fade_frames

    def next_line(self, now: int, transport: Transport, quantise: str, fade_frames: int) -> int:
        """The earliest grid line (``quantise``: beat, 1, 2 or 4 bars) a launch handed over now can make."""
        return transport.next_boundary(self.earliest(now, fade_frames), quantise)

    def launch_at(self, now: int, transport: Transport, quantise: str, fade_frames: int,
                  asked: int | None = None, outgoing_end: int | None = None) -> int | None:
        """Where a launch into a playing set lands: ``asked`` if given, else the next ``quantise`` line
        (None with quantise off: as soon as the callback takes it). A running crossfade is never cut
        short: the new one begins when it ends."""
        at = asked
        if at is None and quantise != "off":
            at = self.next_line(now, transport, quantise, fade_frames)
        if outgoing_end is not None:
            at = max(self.earliest(now, fade_frames) if at is None else at, outgoing_end + fade_frames)
        return at

    def auto_line(self, now: int, transport: Transport, beat: float, fade_frames: int) -> str:
        """What auto launch does about the line at ``beat``: "wait" (not yet: handed over at most
        0.1 s ahead, so a trigger or a tempo change in between is not pre-empted), "launch" (now is
        the time), or "missed" (too late for it: the next bar's line is the one to aim for)."""
        at = round(transport.sample_of_beat(beat))
        lead = 2 * self.blocksize + fade_frames + int(0.1 * self.sample_rate)
        if at - now > lead:
            return "wait"
        return "launch" if at - fade_frames > now + 2 * self.blocksize else "missed"

    def nudge(self, now: int, stage: OnStage, shift: int, fade_frames: int,
              outgoing_end: int | None = None) -> Relaunch:
        """The playing loop relaunched ``shift`` samples further on (back when negative), through a
        fade of its own, after any running crossfade."""
        at = self.earliest(now, fade_frames)
        if outgoing_end is not None:
            at = max(at, outgoing_end + fade_frames)
        return Relaunch(at, (at - stage.start + shift) % stage.frames)

    def resume(self, now: int, stage: OnStage, fade_frames: int) -> Relaunch:
        """The loop that was on stage, again from where the grid has got to (after an audio fault)."""
        return self.nudge(now, stage, 0, fade_frames)

    @staticmethod
    def bar_reached(at: int, stage: OnStage, bars: int, new_frames: int) -> int:
        """Offset into a re-stretched copy (``new_frames`` long, ``bars`` bars) of the loop on stage,
        taking over at ``at``, a bar line: the bar the old copy will have reached there."""
        bars = max(bars, 1)
        bar = round(((at - stage.start) % stage.frames) / (stage.frames / bars)) % bars
        return round(bar * new_frames / bars)
