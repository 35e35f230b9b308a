"""Launch timing on a made-up clock: quantise, auto launch, nudge, tempo hand-over, resume."""

import pytest

from livegen.engine.launches import LaunchTiming, OnStage
from livegen.engine.transport import Transport

RATE, BLOCK, FADE = 48000, 256, 960
BAR = 4 * 60 * RATE // 120  # 96000 samples at 120 BPM
TIMING = LaunchTiming(BLOCK, RATE)


def transport() -> Transport:
    grid = Transport(RATE, 120.0)
    grid.start_at(0)
    return grid


@pytest.mark.parametrize("now, quantise, expected", [
    (0, "1", BAR),  # bar 0 is now: too late for it, the next bar line
    (BAR - 2 * BLOCK - FADE - 1, "1", BAR),  # just in time for the bar line
    (BAR - 2 * BLOCK - FADE + 1, "1", 2 * BAR),  # a sample late: the one after
    (10, "beat", BAR // 4),
    (10, "4", 4 * BAR),
    (BAR + 10, "2", 2 * BAR),
    (5000, "off", None),  # as soon as the callback takes it
])
def test_a_launch_lands_on_the_next_line_it_can_still_make(now, quantise, expected):
    assert TIMING.launch_at(now, transport(), quantise, FADE) == expected


def test_a_running_crossfade_is_never_cut_short():
    # A crossfade ends at 50000; a launch asked for 40000 waits until that fade is over, fade and all.
    assert TIMING.launch_at(30000, transport(), "off", FADE, asked=40000, outgoing_end=50000) == 50000 + FADE
    assert TIMING.launch_at(30000, transport(), "off", FADE, outgoing_end=50000) == 50000 + FADE
    assert TIMING.launch_at(30000, transport(), "1", FADE, outgoing_end=50000) == BAR  # the line is later anyway


def test_auto_launch_waits_for_its_line_launches_in_time_and_gives_up_when_late():
    grid = transport()
    lead = 2 * BLOCK + FADE + RATE // 10
    assert TIMING.auto_line(BAR - lead - 1, grid, 4.0, FADE) == "wait"  # bar 1 is 4 beats in
    assert TIMING.auto_line(BAR - lead + 1, grid, 4.0, FADE) == "launch"
    assert TIMING.auto_line(BAR - 2 * BLOCK - FADE + 1, grid, 4.0, FADE) == "missed"


def test_nudge_moves_the_loop_by_the_shift_from_where_it_is():
    stage = OnStage(7, start=1000, frames=BAR)
    at, offset = TIMING.nudge(50000, stage, shift=480, fade_frames=240)
    assert at == 50000 + 2 * BLOCK + 240
    assert offset == (at - 1000 + 480) % BAR  # 10 ms further into the loop than it would have been
    back = TIMING.nudge(50000, stage, shift=-480, fade_frames=240)
    assert back.offset == (at - 1000 - 480) % BAR
    late = TIMING.nudge(50000, stage, shift=0, fade_frames=240, outgoing_end=60000)
    assert late.at == 60240 and late.offset == (60240 - 1000) % BAR


def test_a_resume_after_a_fault_takes_the_loop_up_where_the_grid_is():
    stage = OnStage(3, start=BAR, frames=2 * BAR)  # a 2-bar loop launched on bar 1
    now = 5 * BAR + 1234  # silent since its fault, the clock ran on
    at, offset = TIMING.resume(now, stage, fade_frames=240)
    assert at == now + 2 * BLOCK + 240
    assert (at - offset - stage.start) % stage.frames == 0  # same loop origin: on the grid it had


def test_a_re_stretched_copy_takes_over_from_the_bar_the_old_one_reached():
    # A 4-bar loop at 120 BPM from sample 0; slowed to 100 BPM its copy is 1.2 times as long.
    stage = OnStage(1, start=0, frames=4 * BAR)
    slower = round(4 * BAR * 1.2)
    assert TIMING.bar_reached(6 * BAR, stage, 4, slower) == round(2 * slower / 4)  # bar 6 = its bar 2
    assert TIMING.bar_reached(8 * BAR, stage, 4, slower) == 0  # its loop point
