"""The clock follower and sender's arithmetic, at an output latency JACK's dummy test server cannot show.

The JACK tests drive the real engine (tests/control/test_midi_jack.py) at 5.3 ms of output latency:
0.01 beat, inside the follower's phase tolerance. Here a 120 ms sound card makes the difference
between the sample being rendered and the sample being heard a quarter of a beat.
"""

import numpy as np
import pytest

from livegen.control.clock import (PHASE_TOLERANCE, TICKS_PER_BEAT, MidiClockFollower, bar_phase_error, sample_at,
                                   sample_heard_at)
from livegen.engine.transport import Transport

RATE = 48000
BLOCK = 256


class RenderClock:
    """The mixer's published clock pair, advanced block by block as a sound card would."""

    def __init__(self, output_latency: float):
        self.sample_rate, self.output_latency = RATE, output_latency
        self.clock, self.clock_time = 0, 0.0

    def run_to(self, t: float) -> None:
        self.clock = int(t * RATE) // BLOCK * BLOCK
        self.clock_time = self.clock / RATE


class GridOnly:
    """What the follower steers: the transport (the real one), through the engine's calls, with the
    part of the engine's snapshot it reads."""

    def __init__(self, output_latency: float, bpm: float, sync_delay: float = 0.0):
        self.mixer = RenderClock(output_latency)
        self.sync_delay = sync_delay
        self.transport = Transport(RATE, bpm)
        self.sync_source = self.sync_detail = None

    @property
    def grid(self) -> Transport:
        return self.transport

    def set_sync(self, source: str, detail: str = "") -> None:
        self.sync_source, self.sync_detail = source, detail

    def snapshot(self) -> dict:
        return {"target_bpm": self.transport.bpm, "playing": {"id": 1}}

    def set_bpm(self, bpm: float, follow: bool = False) -> None:
        self.transport.set_bpm(bpm, self.mixer.clock)

    def align(self, sample: int, beat: float) -> None:
        self.transport.realign(sample, beat)


@pytest.mark.parametrize("latency, delay", [(0.0, 0.0), (0.12, 0.0), (0.12, 0.05), (0.005, -0.03)])
def test_follower_puts_the_clock_beat_on_the_sample_heard_with_it(latency, delay):
    """``delay``: the clock's gear is heard that long after its tick; our beat must be heard with it."""
    bpm = 126.0
    engine = GridOnly(latency, bpm=110.0, sync_delay=delay)  # starts off tempo and off phase
    follower = MidiClockFollower(engine)
    period = 60.0 / (bpm * TICKS_PER_BEAT)
    start = 1.37
    follower.receive("start", start)
    ticks = range(8 * 4 * TICKS_PER_BEAT)  # eight bars
    for tick in ticks:
        t = start + tick * period
        engine.mixer.run_to(t)
        follower.receive("clock", t)
    assert follower.bpm == pytest.approx(bpm, abs=0.01)
    last_bar = [tick for tick in ticks if tick >= 7 * 4 * TICKS_PER_BEAT]
    heard = [bar_phase_error(tick / TICKS_PER_BEAT,
                             engine.transport.beat_at(sample_heard_at(engine, start + tick * period + delay)), 4)
             for tick in last_bar]
    assert max(abs(e) for e in heard) < PHASE_TOLERANCE  # the follower leaves smaller errors alone
    # The sample being rendered as a tick arrives is (latency - delay) x tempo past it: a quarter beat
    # at 120 ms.
    rendered = [bar_phase_error(tick / TICKS_PER_BEAT,
                                engine.transport.beat_at(sample_at(engine, start + tick * period)), 4)
                for tick in last_bar]
    assert np.mean(rendered) == pytest.approx(-(latency - delay) * bpm / 60, abs=PHASE_TOLERANCE)


def test_clock_out_sends_each_tick_as_its_beat_is_heard_less_the_sync_delay():
    import threading
    import time

    from livegen.control.clock import MidiClockSender

    latency, delay = 0.1, 0.03
    engine = GridOnly(latency, bpm=125.0, sync_delay=delay)
    engine.mixer.clock_time = time.perf_counter()  # a clock pair read once maps every time (steady rate)
    engine.started = threading.Event()
    engine.started.set()
    sent = []
    sender = MidiClockSender(engine, lambda message: sent.append((time.perf_counter(), message.type))).start()
    time.sleep(1.0)
    sender.stop()
    ticks = [t for t, kind in sent if kind == "clock"]
    assert sent[0][1] == "start" and sent[-1][1] == "stop" and len(ticks) > 40
    mixer = engine.mixer
    first = int(np.ceil(engine.transport.beat_at(mixer.clock) * TICKS_PER_BEAT))
    heard = [mixer.clock_time + engine.transport.sample_of_beat((first + i) / TICKS_PER_BEAT) / RATE + latency
             for i in range(len(ticks))]
    early = np.array(heard) - np.array(ticks)  # sent this long before the beat is heard
    # The sender aims 2 ms ahead of due; a thread's wake-up adds a little either way.
    assert np.median(early) == pytest.approx(delay + 0.002, abs=0.002)
