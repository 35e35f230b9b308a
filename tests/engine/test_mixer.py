"""The mixer offline: blocks rendered by hand, checked sample by sample."""

import tracemalloc

import numpy as np
import pytest
from scipy.signal import lfilter

from livegen.engine import Launch, Mixer, Ring, Voice, equal_power_fade
from livegen.engine.mixer import ChunkedBiquad, MixerState, dj_filter

RATE = 48000


def loop_audio(frames, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.5, 0.5, frames)).astype(np.float32)


def render(mixer, total, rng=None, channels=2):
    """``total`` frames in blocks of varying size, as a sound card might ask."""
    rng = rng or np.random.default_rng(0)
    out = []
    while total > 0:
        n = int(min(total, rng.integers(1, 700)))
        block = np.full((n, channels), np.nan, np.float32)  # every sample must be written
        mixer.render(block)
        out.append(block)
        total -= n
    return np.concatenate(out)


def make_mixer(**kwargs):
    mixer = Mixer(RATE, gain=1.0, ceiling=1.0, **kwargs)
    return mixer


def test_loops_the_playing_loop_exactly():
    mixer = make_mixer()
    a = loop_audio(1000, 1)
    mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
    out = render(mixer, 3500)
    np.testing.assert_array_equal(out[:, 0], np.tile(a, 4)[:3500])
    np.testing.assert_array_equal(out[:, 1], out[:, 0])
    assert mixer.clock == 3500 and mixer.launches(0) == [(1, 0)]


@pytest.mark.parametrize("at,fade", [(2000, 256), (2048, 0), (1999, 1000)])
def test_launch_lands_on_its_sample_with_an_equal_power_fade(at, fade):
    mixer = make_mixer()
    a, b = loop_audio(1500, 1), loop_audio(1200, 2)
    mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
    render(mixer, 10)
    curve = equal_power_fade(fade)
    mixer.pending = Launch(Voice(b, 2), at, curve)
    out = render(mixer, 6000, np.random.default_rng(at))[:, 0]
    played_a = np.tile(a, 10)
    start = at - fade - 10
    np.testing.assert_allclose(out[:start], played_a[10:at - fade])
    # The fade: a fades out, b's tail (its loop end) fades in, so that b's sample 0 plays at ``at``.
    b_tail = np.tile(b, 2)[len(b) - fade: len(b)] if fade else np.zeros(0, np.float32)
    expected = played_a[at - fade:at] * curve[::-1] + b_tail * curve
    np.testing.assert_allclose(out[start:start + fade], expected, atol=1e-6)
    np.testing.assert_allclose(out[at - 10:at - 10 + 3000], np.tile(b, 3)[:3000])
    assert mixer.launches(0)[-1] == (2, at)
    assert mixer.late_launches == 0
    # Equal power: the two gains' squares sum to one all through the fade.
    np.testing.assert_allclose(curve ** 2 + curve[::-1] ** 2, 1.0, atol=1e-6)


def test_a_launch_handed_over_late_starts_at_once_and_is_counted():
    mixer = make_mixer()
    mixer.pending = Launch(Voice(loop_audio(800, 1), 1), 0, equal_power_fade(0))
    render(mixer, 5000)
    mixer.pending = Launch(Voice(loop_audio(800, 2), 2), 100, equal_power_fade(64))
    block = np.zeros((256, 2), np.float32)
    mixer.render(block)
    assert mixer.late_launches == 1 and mixer.launches(1) == [(2, 5000 + 64)]


def test_when_nothing_new_comes_it_keeps_looping_never_silence():
    mixer = make_mixer()
    a = loop_audio(4410, 3)
    mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
    out = render(mixer, RATE * 3)[:, 0]
    windows = np.abs(out).reshape(-1, 480).max(axis=1)
    assert windows.min() > 0.1


def test_never_emits_nan_and_limits_loud_input():
    mixer = Mixer(RATE, gain=2.0, ceiling=0.9)
    loud = np.full(1000, 0.9, np.float32)
    loud[500] = np.nan
    mixer.pending = Launch(Voice(loud, 1), 0, equal_power_fade(0))
    out = render(mixer, RATE)
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= 1.0
    assert np.abs(out[-1000:]).max() <= 0.9 + 1e-4  # once the limiter has caught it


def test_gain_changes_ramp_without_steps():
    mixer = make_mixer()
    mixer.pending = Launch(Voice(np.full(100, 0.5, np.float32), 1), 0, equal_power_fade(0))
    render(mixer, 512)
    mixer.gain = 0.2
    block = np.zeros((256, 2), np.float32)
    mixer.render(block)
    steps = np.abs(np.diff(block[:, 0]))
    assert steps.max() < 0.01 and block[-1, 0] == pytest.approx(0.1)


def test_cue_pair_previews_on_channels_three_and_four():
    mixer = Mixer(RATE, channels=4, gain=1.0, ceiling=1.0)
    a, b = loop_audio(700, 1), loop_audio(900, 2)
    mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
    mixer.cue = Voice(b, 2)
    mixer.cue_gain = 0.5
    out = render(mixer, 2000, channels=4)
    np.testing.assert_allclose(out[:, 0], np.tile(a, 3)[:2000])
    np.testing.assert_allclose(out[:, 2], np.tile(b, 3)[:2000] * 0.5)
    np.testing.assert_array_equal(out[:, 2], out[:, 3])


@pytest.mark.parametrize("knob", [0.0, -0.6, 0.6], ids=["flat", "low-pass", "high-pass"])
@pytest.mark.parametrize("frames", [1024, 4096])
def test_the_callback_allocates_nothing_once_running(knob, frames):
    mixer = make_mixer()
    a, b = loop_audio(3000, 1), loop_audio(2000, 2)
    mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
    mixer.tap = Ring(RATE, 2)
    mixer.set_filter(dj_filter(knob, RATE))
    block = np.zeros((frames, 2), np.float32)
    for _ in range(20):
        mixer.render(block)
    launch = Launch(Voice(b, 2), mixer.clock + 3000, equal_power_fade(500))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    held, _ = tracemalloc.get_traced_memory()
    mixer.pending = launch
    for _ in range(100):
        mixer.render(block)
    _, peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
    assert mixer.launch_count == 2
    assert grown < 4096, f"render kept {grown} bytes over 100 blocks"
    # A block-sized array, even freed at once, would lift the peak by frames x 4 bytes or more;
    # the views and numbers Python makes on the way come to under 2 KB.
    assert peak - held < 3072, f"render allocated {peak - held} bytes at once (block of {frames * 4})"


@pytest.mark.parametrize("knob", [-0.9, -0.3, 0.05, 0.4, 0.95])
def test_dj_filter_in_place_equals_lfilter_across_block_sizes(knob):
    b, a = dj_filter(knob, RATE)
    signal = np.random.default_rng(3).uniform(-1, 1, 20000).astype(np.float32)
    expected = lfilter(b, a, signal.astype(np.float64))
    biquad, state, scratch = ChunkedBiquad(b, a, chunk=256), np.zeros(2), ChunkedBiquad.scratch(256)
    rng, filtered, i = np.random.default_rng(4), signal.copy(), 0
    while i < len(filtered):  # blocks of 1 to 699 frames: shorter than a chunk, and several chunks
        n = int(rng.integers(1, 700))
        biquad.process(filtered[i:i + n], state, scratch)
        i += n
    np.testing.assert_allclose(filtered, expected, atol=2e-5 * np.abs(expected).max())


def test_dj_filter_knob_cuts_highs_to_the_left_and_lows_to_the_right():
    t = np.arange(RATE) / RATE
    low, high = np.sin(2 * np.pi * 60 * t), np.sin(2 * np.pi * 8000 * t)
    loop = (0.4 * low + 0.4 * high).astype(np.float32)

    def level(out, tone):  # amplitude of one tone in the second half (past the filter's settling)
        half = out[len(out) // 2:, 0].astype(np.float64)
        ref = tone[len(tone) // 2:len(tone) // 2 + len(half)]
        return 2 * abs(np.dot(half, ref)) / len(half)

    levels = {}
    for knob in (0.0, -0.9, 0.9):
        mixer = make_mixer()
        mixer.set_filter(dj_filter(knob, RATE))
        mixer.pending = Launch(Voice(loop, 1), 0, equal_power_fade(0))
        out = render(mixer, RATE)
        levels[knob] = level(out, low), level(out, high)
    assert levels[0.0] == pytest.approx((0.4, 0.4), abs=0.01)
    assert levels[-0.9][0] > 0.3 and levels[-0.9][1] < 0.004  # low-pass near 250 Hz: 8 kHz down 40 dB
    assert levels[0.9][1] > 0.3 and levels[0.9][0] < 0.004  # high-pass near 3 kHz: 60 Hz down 40 dB


def test_ring_passes_audio_in_order_and_counts_what_it_drops():
    ring = Ring(1000, 2)
    data = np.arange(3000, dtype=np.float32).reshape(-1, 2)
    ring.write(data[:700])
    np.testing.assert_array_equal(ring.read(), data[:700])
    ring.write(data[700:1400])  # wraps round
    np.testing.assert_array_equal(ring.read(), data[700:1400])
    ring.write(data[:600])
    ring.write(data[:600])  # the reader fell behind: this block cannot fit
    assert ring.dropped == 600
    assert len(ring.read()) == 600


def test_an_unquantised_launch_fades_in_from_the_next_block():
    mixer = make_mixer()
    a, b = loop_audio(900, 1), loop_audio(900, 2)
    mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
    render(mixer, 1000)
    mixer.pending = Launch(Voice(b, 2), None, equal_power_fade(128))
    block = np.zeros((256, 2), np.float32)
    mixer.render(block)
    assert mixer.launches(1) == [(2, 1000 + 128)] and mixer.late_launches == 0


def test_a_loop_crossfaded_into_itself_with_an_equal_gain_fade_keeps_its_level():
    from livegen.engine.mixer import equal_gain_fade

    a = loop_audio(2000, 5)
    for fade, swell in ((equal_gain_fade(400), False), (equal_power_fade(400), True)):
        mixer = make_mixer()
        mixer.pending = Launch(Voice(a, 1), 0, equal_power_fade(0))
        render(mixer, 1000)
        mixer.pending = Launch(Voice(a, 1), 1600, fade, offset=1600)  # the same loop, no shift: a no-op
        out = render(mixer, 2000)[:, 0]
        expected = np.tile(a, 2)[1000:3000]
        if swell:  # equal power on identical signals: up to sqrt(2) louder mid-fade
            assert np.abs(out - expected).max() > 0.1
        else:
            np.testing.assert_allclose(out, expected, atol=1e-6)


def test_every_block_is_timed_into_its_share_of_the_block():
    mixer = make_mixer()
    mixer.pending = Launch(Voice(loop_audio(3000, 1), 1), 0, equal_power_fade(0))
    block = np.zeros((256, 2), np.float32)
    for _ in range(50):
        mixer.render(block)
    times = mixer.state.block_times()
    assert sum(times["wall"]) == sum(times["cpu"]) == 50
    assert 0 < times["busy_seconds"] < 50 * 256 / RATE  # a block takes less than its own duration here
    # A block that took 4 ms on the wall, 0.1 ms of it on the CPU: 3/4 and 1/50 of a 256-frame block.
    mixer._count_block_time(256, 0.004, 0.0001)
    added = MixerState.block_times_between(times, mixer.state.block_times())
    assert added["wall"] == [0, 0, 0, 1, 0] and added["cpu"] == [1, 0, 0, 0, 0]
    assert added["busy_seconds"] == pytest.approx(0.004)
    mixer._count_block_time(256, 0.006, 0.006)  # over the block's 5.3 ms: the last bucket
    assert mixer.state.block_times()["cpu"][-1] == 1


def test_a_fault_in_the_callback_is_caught_counted_and_silenced():
    """An exception out of the callback would stop PortAudio calling it: render never raises."""
    mixer = Mixer(48000, 2, max_block=512)
    out = np.ones((256, 2), np.float32)
    loop = np.full((48000, 2), 0.1, np.float32)
    mixer.schedule(Launch(Voice(loop, 1), None, np.ones((64, 3), np.float32), 0, seq=1))  # a fade of bad shape
    mixer.render(out)
    assert isinstance(mixer.fault, ValueError) and mixer.state.ints[MixerState.FAULTS] == 1
    assert not out.any() and mixer.clock == 256  # silence, and the clock runs on for the grid
    out[:] = 1.0
    mixer.render(out)
    assert not out.any() and mixer.clock == 512 and mixer.state.ints[MixerState.FAULTS] == 1  # counted once
