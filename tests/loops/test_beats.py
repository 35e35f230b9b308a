"""The numpy beat tracker against librosa's beat_track, which runs the same method."""

import numpy as np
import pytest

from livegen.audio import MelCodec, MelConfig
from livegen.loops.beats import estimate_tempo, track_beats
from livegen.loops.fromimage import onset_envelope
from tests.synth import drum_pattern

CONFIG = MelConfig(x_res=256, y_res=64)
FRAME_RATE = CONFIG.sample_rate / CONFIG.hop_length


def envelope_of(bpm: float, seed: int) -> np.ndarray:
    audio = drum_pattern(bpm, offset=0.1 * seed, seed=seed)[:CONFIG.slice_size]
    audio = np.concatenate([audio, np.zeros(CONFIG.slice_size - len(audio), np.float32)])
    return onset_envelope(MelCodec(CONFIG).audio_to_image(audio).astype(np.float32), CONFIG)


@pytest.mark.parametrize("bpm, expected", [(84, 90), (84, 170), (120, 120), (128, 64), (174, 174), (174, 87)])
def test_same_tempo_and_beats_as_librosa(bpm, expected):
    import librosa

    for seed in range(3):
        envelope = envelope_of(bpm, seed)
        tempo, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=CONFIG.sample_rate,
                                               hop_length=CONFIG.hop_length, start_bpm=expected, trim=False)
        assert estimate_tempo(envelope, FRAME_RATE, expected) == pytest.approx(float(np.atleast_1d(tempo)[0]))
        np.testing.assert_array_equal(track_beats(envelope, FRAME_RATE, expected), beats)


def test_the_prior_picks_the_octave():
    envelope = envelope_of(87, 0)
    slow, fast = (60 * FRAME_RATE / np.median(np.diff(track_beats(envelope, FRAME_RATE, prior)))
                  for prior in (87, 174))
    assert slow == pytest.approx(87, rel=0.05) and fast == pytest.approx(174, rel=0.05)


def test_a_flat_envelope_has_no_beats():
    assert len(track_beats(np.zeros(256), FRAME_RATE)) == 0
    assert len(track_beats(np.full(256, 3.0), FRAME_RATE)) == 0
