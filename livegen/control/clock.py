"""Sync: follow a MIDI clock (tempo and bar phase), send one, or join an Ableton Link session.

All three map wall-clock time to output samples through the mixer's
``clock``/``clock_time`` pair (the sample count and perf_counter() of the
block being rendered), so "this tick came at t" becomes "beat b is at sample s".
A block is heard the output latency after it is rendered, and a clock tick
(or Link's beat for "now") marks when a beat is heard, so the sample that
belongs to it is the one reaching the speaker then, not the one being rendered;
the set's sync delay (``--sync-delay``) moves that for gear heard later than its
own clock.
"""

from __future__ import annotations

import threading
import time

import numpy as np

TICKS_PER_BEAT = 24
TEMPO_WINDOW = 48  # ticks (two beats) in the tempo estimate
TEMPO_TOLERANCE = 0.1  # BPM: closer than this, the set's tempo is left alone
PHASE_TOLERANCE = 0.06  # beats: further off than this, the grid is moved onto the clock


def sample_at(engine, t: float) -> int:
    """The output sample being rendered at perf_counter() time ``t``."""
    mixer = engine.mixer
    return int(mixer.clock + (t - mixer.clock_time) * mixer.sample_rate)


def sample_heard_at(engine, t: float) -> int:
    """The output sample reaching the speaker at perf_counter() time ``t``."""
    return sample_at(engine, t - engine.mixer.output_latency)


def sample_on_clock_beat(engine, t: float) -> int:
    """The output sample that belongs on a beat an outside clock places at time ``t``."""
    return sample_heard_at(engine, t + engine.sync_delay)


def bar_phase_error(theirs: float, ours: float, beats_per_bar: int) -> float:
    """Beats from our position to theirs within a bar, in (-bar/2, bar/2]."""
    half = beats_per_bar / 2
    return -((half - (theirs - ours)) % beats_per_bar - half)


class _SyncStatus:
    """What a clock follower last told the engine (the engine is told only of changes: a follower
    runs 24 times a beat, and each word to the engine is a command in its queue)."""

    def __init__(self):
        self._said: tuple[str, str] | None = None

    def tell(self, engine, source: str, detail: str) -> None:
        if (source, detail) != self._said:
            self._said = (source, detail)
            engine.set_sync(source, detail)


class MidiClockFollower:
    """Takes clock, start, stop, continue and song position messages; steers the engine's transport."""

    def __init__(self, engine):
        self.engine = engine
        self.running = False
        self.ticks = 0  # ticks since the clock's bar 1, beat 1 (song position included)
        self._times: list[float] = []
        self._ticks_at: list[int] = []
        self.bpm: float | None = None
        self._status = _SyncStatus()

    def receive(self, kind: str, t: float, position: int | None = None) -> None:
        if kind == "start":
            self.running, self.ticks = True, 0
            self._times, self._ticks_at = [], []
        elif kind == "continue":
            self.running = True
            self._times, self._ticks_at = [], []
        elif kind == "stop":
            self.running = False
        elif kind == "songpos" and position is not None:
            self.ticks = position * 6  # song position counts sixteenths
        elif kind == "clock" and self.running:
            self._tick(t)

    def _tick(self, t: float) -> None:
        self._times.append(t)
        self._ticks_at.append(self.ticks)
        del self._times[:-TEMPO_WINDOW], self._ticks_at[:-TEMPO_WINDOW]
        engine = self.engine
        if len(self._times) >= 12:  # half a beat of ticks: a first estimate
            slope = np.polyfit(self._ticks_at, self._times, 1)[0]  # seconds per tick
            self.bpm = 60.0 / (TICKS_PER_BEAT * slope)
            if abs(self.bpm - engine.snapshot()["target_bpm"]) > TEMPO_TOLERANCE:
                engine.set_bpm(round(self.bpm, 2), follow=True)
        if self.ticks % (TICKS_PER_BEAT // 2) == 0 and len(self._times) >= 12:
            # Every half beat: is our grid where the clock says? (Using the fitted line, not one
            # jittery tick.)
            fitted_t = float(np.polyval(np.polyfit(self._ticks_at, self._times, 1), self.ticks))
            sample = sample_on_clock_beat(engine, fitted_t)
            theirs = self.ticks / TICKS_PER_BEAT
            ours = engine.grid.beat_at(sample)
            error = bar_phase_error(theirs, ours, engine.grid.beats_per_bar)
            if abs(error) > PHASE_TOLERANCE:
                engine.align(sample, ours + error)
        self._status.tell(engine, "midi", f"{self.bpm:.2f} BPM" if self.bpm else "locking")
        self.ticks += 1


class MidiClockSender:
    """Sends 24 clock ticks a beat of the engine's transport (and start/stop) to a MIDI output."""

    def __init__(self, engine, send, lead: float = 0.002):
        self.engine, self.send, self.lead = engine, send, lead
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-clock-out", daemon=True)

    def start(self) -> "MidiClockSender":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import mido

        engine = self.engine
        rate = engine.mixer.sample_rate
        while not engine.started.is_set():
            if self._stop.wait(0.05):
                return
        self.send(mido.Message("start"))
        tick = int(np.ceil(engine.grid.beat_at(engine.mixer.clock) * TICKS_PER_BEAT))
        while not self._stop.is_set():
            sample = engine.grid.sample_of_beat(tick / TICKS_PER_BEAT)
            mixer = engine.mixer  # the tick goes out as its beat is heard (less the sync delay)
            due = mixer.clock_time + (sample - mixer.clock) / rate + mixer.output_latency - engine.sync_delay
            wait = due - time.perf_counter() - self.lead
            if wait > 0 and self._stop.wait(min(wait, 0.05)):
                break
            if wait > 0.05:
                continue
            self.send(mido.Message("clock"))
            tick += 1
        self.send(mido.Message("stop"))


class LinkSync:
    """Ableton Link (aalink): follow the session's tempo and bar phase (quantum 4).

    Joining adopts the session's tempo: Link starts with ours only when we are alone.
    aalink needs a running asyncio loop, so the session lives in a thread with its own.
    """

    def __init__(self, engine, poll: float = 0.05):
        self.engine = engine
        self.poll = poll
        self.link = None
        self._status = _SyncStatus()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="livegen-link", daemon=True)

    def start(self) -> "LinkSync":
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _thread_main(self) -> None:
        import asyncio

        asyncio.run(self._run())

    async def _run(self) -> None:
        import asyncio

        import aalink

        engine = self.engine
        self.link = aalink.Link(engine.snapshot()["target_bpm"])
        self.link.quantum = engine.grid.beats_per_bar
        self.link.enabled = True
        self._ready.set()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(self.poll)
                self._follow()
        finally:
            self.link.enabled = False

    def _follow(self) -> None:
        engine, link = self.engine, self.link
        peers = link.num_peers
        self._status.tell(engine, "link", f"{peers} peer(s), {link.tempo:.2f} BPM")
        if peers == 0:
            return
        state = engine.snapshot()
        if abs(link.tempo - state["target_bpm"]) > TEMPO_TOLERANCE:
            engine.set_bpm(round(link.tempo, 2), follow=True)
        if state["playing"] is None:
            return
        # Link's beat is for "now": ours for the sample heard now.
        now = time.perf_counter()
        theirs = float(link.beat)
        heard = sample_on_clock_beat(engine, now)
        ours = engine.grid.beat_at(heard)
        error = bar_phase_error(theirs, ours, engine.grid.beats_per_bar)
        if abs(error) > PHASE_TOLERANCE:
            engine.align(heard, ours + error)
