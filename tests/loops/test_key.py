"""Keys: Camelot notation, what mixes with what, MIREX scoring, and estimates on signals of known key."""

import numpy as np
import pytest

from livegen.loops.key import Key, compatible, estimate_key, fit_key, mirex_score, parse_key, with_key
from livegen.loops.prep import Loop, shift_pitch

RATE = 22050
A_MINOR, C_MAJOR, E_MINOR, D_MINOR, A_MAJOR = Key(9, True), Key(0, False), Key(4, True), Key(2, True), Key(9, False)


def test_the_camelot_wheel_as_dj_software_prints_it():
    wheel = {"1A": "G#m", "2A": "Ebm", "3A": "Bbm", "4A": "Fm", "5A": "Cm", "6A": "Gm", "7A": "Dm", "8A": "Am",
             "9A": "Em", "10A": "Bm", "11A": "F#m", "12A": "C#m", "1B": "B", "2B": "F#", "3B": "Db", "4B": "Ab",
             "5B": "Eb", "6B": "Bb", "7B": "F", "8B": "C", "9B": "G", "10B": "D", "11B": "A", "12B": "E"}
    for code, name in wheel.items():
        key = parse_key(code)
        assert (key.camelot, key.name) == (code, name)
        assert parse_key(name) == key
    assert str(A_MINOR) == "8A Am" and A_MINOR.relative == C_MAJOR and C_MAJOR.relative == A_MINOR


@pytest.mark.parametrize("text, key", [("A minor", A_MINOR), ("am", A_MINOR), ("C major", C_MAJOR), ("Cmaj", C_MAJOR),
                                       ("Db", Key(1, False)), ("c#m", Key(1, True)), ("F♯ minor", Key(6, True)),
                                       (" 8a ", A_MINOR), ("12B", Key(4, False))])
def test_keys_are_read_the_ways_people_write_them(text, key):
    assert parse_key(text) == key


@pytest.mark.parametrize("text", ["H", "13A", "8C", "minor", "", "Am7"])
def test_a_key_that_is_not_one_is_refused_by_name(text):
    with pytest.raises(ValueError, match="not a key"):
        parse_key(text)


def test_keys_that_mix_are_neighbours_on_the_wheel_or_relatives():
    assert compatible(A_MINOR, A_MINOR) and compatible(A_MINOR, C_MAJOR)
    assert compatible(A_MINOR, E_MINOR) and compatible(A_MINOR, D_MINOR)  # 9A and 7A beside 8A
    assert compatible(Key(0, False), Key(11, False)) is False  # C and B: 8B and 1B are five apart
    assert compatible(parse_key("12A"), parse_key("1A"))  # the wheel closes
    assert not compatible(A_MINOR, A_MAJOR)  # the parallel key clashes (8A, 11B)
    assert compatible(None, A_MINOR) and compatible(C_MAJOR, None)  # drums mix with anything


def test_mirex_weights():
    assert mirex_score(A_MINOR, A_MINOR) == 1.0
    assert mirex_score(E_MINOR, A_MINOR) == 0.5 and mirex_score(D_MINOR, A_MINOR) == 0.5
    assert mirex_score(C_MAJOR, A_MINOR) == 0.3
    assert mirex_score(A_MAJOR, A_MINOR) == 0.2
    assert mirex_score(Key(10, True), A_MINOR) == 0.0 and mirex_score(None, A_MINOR) == 0.0


def tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return sum(np.sin(2 * np.pi * frequency * h * t) / h for h in (1, 2, 3, 4)) * np.exp(-t * 1.5)


def progression(key: Key, chords, seconds: float = 1.0) -> np.ndarray:
    """A chord a second, triads in root position with the root in the bass, the tonic at A3 = 220 Hz."""
    audio = []
    for degree, minor in chords:
        root = 110 * 2 ** ((key.tonic - 9 + degree) % 12 / 12)
        triad = (0, 3 if minor else 4, 7)
        audio.append(tone(root / 2, seconds) + sum(tone(2 * root * 2 ** (i / 12), seconds) for i in triad))
    return np.concatenate(audio).astype(np.float32)


@pytest.mark.parametrize("method", ["net", "edma", "krumhansl"])
@pytest.mark.parametrize("tonic", [0, 2, 7, 9, 11])
def test_a_cadence_in_major_and_in_minor_reads_as_its_key(tonic, method):
    major, minor = Key(tonic, False), Key(tonic, True)
    assert estimate_key(progression(major, [(0, False), (5, False), (7, False), (0, False)]), RATE, method).key == major
    assert estimate_key(progression(minor, [(0, True), (5, True), (7, False), (0, True)]), RATE, method).key == minor


@pytest.mark.parametrize("method", ["net", "edma"])
def test_drums_alone_have_no_key(method):
    rng = np.random.default_rng(1)
    beat = np.zeros(4 * RATE, np.float32)
    for start in range(0, len(beat) - 2000, RATE // 4):  # hats and snares of noise: no pitch
        beat[start:start + 2000] += rng.standard_normal(2000).astype(np.float32) * np.exp(-np.arange(2000) / 300)
    assert estimate_key(beat, RATE, method).key is None
    assert estimate_key(np.zeros(RATE, np.float32), RATE, method).key is None


def test_a_shifted_loop_keeps_its_length_and_its_seam_and_moves_its_pitch():
    seconds = 2.0  # 880 cycles of A4: the loop joins itself cleanly
    t = np.arange(int(seconds * RATE)) / RATE
    loop = Loop(audio=(0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate=RATE, bpm=120.0, bars=1)
    moved = shift_pitch(loop, 3)
    assert len(moved.audio) == len(loop.audio) and moved.bpm == loop.bpm
    spectrum = np.abs(np.fft.rfft(moved.audio * np.hanning(len(moved.audio))))
    assert np.fft.rfftfreq(len(moved.audio), 1 / RATE)[spectrum.argmax()] == pytest.approx(440 * 2 ** (3 / 12), rel=0.01)
    steps = np.abs(np.diff(moved.audio))
    assert abs(moved.audio[0] - moved.audio[-1]) <= 2 * np.percentile(steps, 99)  # no click at the loop point
    assert shift_pitch(loop, 0) is loop


def test_a_loop_out_of_key_is_moved_the_least_way_that_fits():
    audio = progression(parse_key("C#m"), [(0, True), (5, True), (7, False), (0, True)])
    loop = with_key(Loop(audio=audio, sample_rate=RATE, bpm=120.0, bars=2))
    assert loop.key == "12A"
    moved = fit_key(loop, parse_key("8A"), 3)  # C#m: a semitone up is Dm (7A), beside Am
    assert moved.pitch_shift == 1 and with_key(moved).key == "7A"
    assert fit_key(with_key(moved), parse_key("8A"), 3).pitch_shift == 1  # it fits now: left as it is
    assert fit_key(loop, parse_key("8A"), 0) is loop  # no move allowed: it stays out of key
