"""The clock follower and sender's arithmetic, at an output latency JACK's dummy test server cannot show.

The JACK tests drive the real engine (tests/control/test_midi_jack.py) at 5.3 ms of output latency:
0.01 beat, inside the follower's phase tolerance. Here a 120 ms sound card makes the difference
between the sample being rendered and the sample being heard a quarter of a beat.
"""

import numpy as np
import pytest

from livegen.control.clock import PHASE_TOLERANCE, TICKS_PER_BEAT, MidiClockFollower, bar_phase_error, sample_at, sample_heard_at
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
    """What the follower steers: the transport (the real one), through the engine's two calls."""

    def __init__(self, output_latency: float, bpm: float):
        self.mixer = RenderClock(output_latency)
        self.transport = Transport(RATE, bpm)
        self.sync_source = self.sync_detail = None

    @property
    def target_bpm(self) -> float:
        return self.transport.bpm

    def set_bpm(self, bpm: float, follow: bool = False) -> None:
        self.transport.set_bpm(bpm, self.mixer.clock)

    def align(self, sample: int, beat: float) -> None:
        self.transport.realign(sample, beat)


@pytest.mark.parametrize("latency", [0.0, 0.12])
def test_follower_puts_the_clock_beat_on_the_sample_heard_with_it(latency):
    bpm = 126.0
    engine = GridOnly(latency, bpm=110.0)  # starts off tempo and off phase
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
                             engine.transport.beat_at(sample_heard_at(engine, start + tick * period)), 4)
             for tick in last_bar]
    assert max(abs(e) for e in heard) < PHASE_TOLERANCE  # the follower leaves smaller errors alone
    # The sample being rendered as a tick arrives is a quarter beat (latency x tempo) past it.
    rendered = [bar_phase_error(tick / TICKS_PER_BEAT,
                                engine.transport.beat_at(sample_at(engine, start + tick * period)), 4)
                for tick in last_bar]
    assert np.mean(rendered) == pytest.approx(-latency * bpm / 60, abs=PHASE_TOLERANCE)
