"""Loudness (BS.1770) and levelling: measured on signals of known loudness, and on loops of unlike density."""

import json
import math

import numpy as np
import pytest
import soundfile

from livegen.loops import Loop, write_loop
from livegen.loops.loudness import (MAX_GAIN_DB, fit_peak, integrated_loudness, level, loop_loudness,
                                    short_term_loudness)

RATE = 48000


def sine(amplitude: float, seconds: float = 4.0, frequency: float = 997.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def kicks(per_bar: int, seconds: float = 8.0, peak: float = 0.9, hiss: float = 0.0) -> np.ndarray:
    """Decaying 55 Hz thumps, ``per_bar`` a 2 s bar, over a bed of noise ``hiss`` loud, peak-normalised
    as loop prep leaves a loop."""
    audio = (hiss * np.random.default_rng(0).standard_normal(int(seconds * RATE))).astype(np.float32)
    hit = np.sin(2 * np.pi * 55 * np.arange(RATE // 4) / RATE) * np.exp(-np.arange(RATE // 4) / (0.05 * RATE))
    for start in np.arange(0, len(audio) - len(hit), 2 * RATE // per_bar):
        audio[start:start + len(hit)] += hit.astype(np.float32)
    return audio * np.float32(peak / np.abs(audio).max())


def test_a_full_scale_997_hz_sine_reads_minus_3_lufs_and_follows_its_level():
    # BS.1770's reference: a 0 dBFS 997 Hz sine in one channel is -3.01 LUFS.
    assert integrated_loudness(sine(1.0), RATE) == pytest.approx(-3.01, abs=0.05)
    assert integrated_loudness(sine(0.1), RATE) == pytest.approx(-23.01, abs=0.05)
    stereo = np.stack([sine(0.1), sine(0.1)], axis=1)  # two channels add their power: +3 dB
    assert integrated_loudness(stereo, RATE) == pytest.approx(-20.0, abs=0.05)
    assert loop_loudness(sine(0.1), RATE) == pytest.approx(-20.0, abs=0.05)  # a mono loop plays on both


def test_silence_and_a_click_too_short_to_gate_have_no_loudness():
    assert integrated_loudness(np.zeros(RATE, np.float32), RATE) == -math.inf
    assert integrated_loudness(sine(0.5, seconds=0.2), RATE) == -math.inf


def test_short_term_loudness_follows_a_step_in_level():
    audio = np.concatenate([sine(0.1, 6.0), sine(0.4, 6.0)])
    values = short_term_loudness(audio, RATE)
    assert values[0] == pytest.approx(-23.01, abs=0.05)
    assert values[-1] == pytest.approx(-23.01 + 20 * np.log10(4), abs=0.05)
    assert len(values) == 10  # a 3 s window each second through 12 s


def test_loops_at_one_peak_but_unlike_density_come_out_at_one_loudness():
    sparse, dense = Loop(kicks(1), RATE, bpm=120.0, bars=4), Loop(kicks(8, hiss=0.2), RATE, bpm=120.0, bars=4)
    before = [integrated_loudness(loop.audio, RATE) for loop in (sparse, dense)]
    assert before[1] - before[0] > 3  # what peak normalisation leaves: a launch would jump by this
    for loop in (sparse, dense):
        levelled = level(loop, -14.0)
        assert levelled.loudness == pytest.approx(-14.0, abs=0.01)
        assert loop_loudness(levelled.audio, RATE) == pytest.approx(-14.0, abs=0.05)
        assert levelled.gain_db == pytest.approx(-14.0 - loop_loudness(loop.audio, RATE), abs=0.01)
        assert levelled.audio.dtype == np.float32 and len(levelled.audio) == len(loop.audio)


def test_a_near_silent_loop_is_raised_no_more_than_the_cap_and_silence_is_left_alone():
    whisper = level(Loop(sine(0.001), RATE, bpm=120.0, bars=2), -14.0)
    assert whisper.gain_db == MAX_GAIN_DB
    assert whisper.loudness == pytest.approx(-60.0 + MAX_GAIN_DB, abs=0.05)
    silent = level(Loop(np.zeros(RATE * 2, np.float32), RATE, bpm=120.0, bars=1), -14.0)
    assert silent.loudness is None and silent.gain_db == 0.0 and not silent.audio.any()


def test_a_file_keeps_its_peak_under_full_scale_and_says_what_loudness_it_got(tmp_path):
    loud = level(Loop(kicks(1), RATE, bpm=120.0, bars=4), -8.0)  # the sparse loop needs a lot of gain
    assert np.abs(loud.audio).max() > 1.0
    fitted = fit_peak(loud)
    assert np.abs(fitted.audio).max() == pytest.approx(0.99, abs=1e-4)
    assert fitted.loudness == pytest.approx(loop_loudness(fitted.audio, RATE), abs=0.05)
    assert fitted.loudness < -8.0 and fitted.gain_db < loud.gain_db

    path = write_loop(tmp_path, "loud", loud, {"seed": 1})
    written, _ = soundfile.read(path, dtype="float32")
    assert np.abs(written).max() < 1.0  # turned down to fit, not clipped
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["loudness"] == pytest.approx(fitted.loudness, abs=1e-6)
    assert sidecar["gain_db"] == pytest.approx(fitted.gain_db, abs=1e-6)
