import numpy as np
import pytest

from livegen.loops import BeatGrid, LoopError, find_beat_grid, make_loop, raw_loop, slice_seconds
from livegen.loops.prep import TEMPO_ALLOWANCE, fold_tempo, plan_cut
from tests.synth import drum_pattern

RATE = 22050


@pytest.mark.parametrize("bpm", [90, 100, 124, 128, 160])
def test_beat_grid_finds_the_tempo(bpm):
    grid = find_beat_grid(drum_pattern(bpm, offset=0.13), RATE, expected_bpm=bpm)
    assert 60 * RATE / grid.period == pytest.approx(bpm, rel=0.005)
    # The grid lies on the pattern's beats (onset detection lags the attack by a few ms).
    beat = 60 * RATE / bpm
    phase = ((grid.start - 0.13 * RATE) / beat) % 1.0
    assert min(phase, 1 - phase) < 0.05


@pytest.mark.parametrize("source_bpm, target_bpm, out_rate", [(124, 126, 48000), (172, 174, 44100),
                                                              (90, 92, 22050), (128, 64, 48000)])
def test_loop_is_whole_bars_at_the_target_tempo(source_bpm, target_bpm, out_rate):
    loop = make_loop(drum_pattern(source_bpm), RATE, bpm=target_bpm, out_rate=out_rate)
    assert loop.bars in (1, 2, 4) and loop.bpm == target_bpm and loop.sample_rate == out_rate
    expected = loop.bars * 4 * 60 / target_bpm * out_rate
    assert abs(len(loop.audio) - expected) <= 0.5
    assert loop.audio.dtype == np.float32 and np.isfinite(loop.audio).all()


def test_without_a_target_the_loop_keeps_its_tempo():
    loop = make_loop(drum_pattern(100), RATE)
    assert loop.bpm == pytest.approx(100, rel=0.005) and loop.sample_rate == RATE
    assert loop.bars == 2  # 2 bars of 100 BPM = 4.8 s fit in the 5.94 s slice; 4 bars do not


def test_loop_point_is_seamless():
    """Played round, the jump from the last sample to the first is no bigger than jumps inside."""
    for bpm, target in [(124, 126), (100, None), (172, 174)]:
        audio = make_loop(drum_pattern(bpm, seed=bpm), RATE, bpm=target, out_rate=48000).audio
        inside = np.abs(np.diff(audio))
        wrap = abs(float(audio[0]) - float(audio[-1]))
        assert wrap <= np.percentile(inside, 99.9), (bpm, wrap)


def test_loop_starts_on_a_beat():
    """The cut starts at a drum hit: the first 30 ms are loud, not the quiet tail of a hit."""
    loop = make_loop(drum_pattern(120), RATE, bpm=120)
    head = np.abs(loop.audio[: int(0.03 * RATE)]).max()
    assert head > 0.3


@pytest.mark.parametrize("audio, message", [
    (np.zeros(RATE * 6, np.float32), "silent"),
    (np.full(RATE * 6, np.nan, np.float32), "NaN"),
    (np.zeros((2, 100), np.float32), "mono"),
])
def test_unusable_audio_is_refused(audio, message):
    with pytest.raises(LoopError, match=message):
        make_loop(audio, RATE)


def test_no_beat_in_a_steady_tone():
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(RATE * 6) / RATE).astype(np.float32)
    with pytest.raises(LoopError, match="beat|bar"):
        make_loop(tone, RATE)


def test_raw_loop_keeps_the_whole_slice():
    audio = drum_pattern(120)
    loop = raw_loop(audio, RATE, out_rate=44100)
    assert loop.bars == 0 and abs(len(loop.audio) - 2 * len(audio)) <= 2
    assert np.abs(loop.audio).max() == pytest.approx(0.9)


@pytest.mark.parametrize("bpm, hint", [(128.0, None), (128.0, 130.0), (100.0, 130.0), (128.0, 90.0)])
def test_a_slice_of_slice_seconds_holds_the_bars_wherever_its_beats_fall(bpm, hint):
    # The slice's own tempo: the hint folded toward the set's (90 at 128 is read as 180), up to 2% slower.
    seconds = slice_seconds(4, bpm, hint)
    expected = fold_tempo(hint, bpm) if hint else bpm
    rate = 22050
    for tempo in (expected, expected * (1 - TEMPO_ALLOWANCE)):
        period = 60.0 * rate / tempo
        for phase in np.linspace(0.0, 0.999, 7):
            grid = BeatGrid(start=phase * period + 3 * period, period=period, count=8)
            cut = plan_cut(int(seconds * rate), rate, grid, bpm=bpm, tempo_hint=hint)
            assert cut.bars == 4, (tempo, phase)
    # Without the spare beat it would not: a beat in, 4 bars end past the slice.
    late = BeatGrid(start=0.9 * 60.0 * rate / expected, period=60.0 * rate / expected, count=8)
    assert plan_cut(int(16 * 60.0 / expected * rate), rate, late, bpm=bpm, tempo_hint=hint).bars == 2
    assert slice_seconds(4) is None
