"""Musical key of a loop: 24 major and minor keys in Camelot notation, and estimating one from audio.

DJ software shows keys on the Camelot wheel: minor keys are ``A``, major ``B``, and the number
steps a fifth at a time, so 8A (A minor) sits beside 7A (D minor), 9A (E minor) and 8B (its
relative, C major): keys that mix without a clash. A loop with no clear tonality (drums alone)
has no key and mixes with anything.

Two estimators: the learnt one (``keynet.py``), the default, and the classic template match: the
loop's pitch-class profile (librosa's chroma, averaged over the loop) correlated with a key profile
rotated to each of the 12 tonics, major and minor, the best match winning. Drums throw the
templates off (a kit's ringing snare holds pitch classes too); ``bench/keys.py`` measures both.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import NamedTuple

import numpy as np

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # major tonics as DJ software spells them
MINOR_NAMES = {1: "C#", 8: "G#"}  # minor keys spelt the usual way: C#m and G#m, not Dbm and Abm
_NOTE_NUMBERS = {"C": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "F": 5, "F#": 6, "GB": 6, "G": 7,
                 "G#": 8, "AB": 8, "A": 9, "A#": 10, "BB": 10, "B": 11}

# Pitch-class weights from the tonic up, (major, minor): numbers from the papers.
PROFILES = {
    # Krumhansl & Kessler (1982): listeners' ratings of how well each pitch class fits a key.
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    # Temperley (2005), from the Kostka-Payne corpus of classical harmony.
    "temperley": ((0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
                  (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330)),
    # Faraldo et al. (2016), "edma": learnt from electronic dance music.
    "edma": ((0.16519551, 0.04749026, 0.08293076, 0.06687112, 0.09994645, 0.09274123, 0.05294487, 0.13159476,
              0.05218986, 0.07443653, 0.06940723, 0.0642515),
             (0.17235348, 0.05336489, 0.0761009, 0.10043649, 0.05621498, 0.08527853, 0.0497915, 0.13451001,
              0.07458916, 0.05003023, 0.09187879, 0.05545106)),
}
DEFAULT_PROFILE = "edma"  # level with Krumhansl's on the demo corpus, ahead of Temperley's (bench/results/keys.md)
METHODS = ("net", *PROFILES)  # the learnt estimator, or template matching with a profile
DEFAULT_METHOD = "net"  # well ahead of every profile on the demo corpus (bench/results/keys.md)
# A best correlation under this: no key. Noise reads near 0, but the demo corpus's pitched drum kits
# alone reach 0.25-0.62 (median 0.44) against 0.35-0.87 for its tonal clips: the line is not clean.
NO_KEY_BELOW = 0.5
MOST_SEMITONES = 3  # the furthest a loop is moved to fit a key: further, a shift is heard in the drums and the timbre


class Key(NamedTuple):
    tonic: int  # pitch class, C = 0
    minor: bool

    @property
    def name(self) -> str:
        """``Am``, ``F#``: the short name DJ software shows beside the Camelot code."""
        if self.minor:
            return MINOR_NAMES.get(self.tonic, NOTE_NAMES[self.tonic]) + "m"
        return NOTE_NAMES[self.tonic]

    @property
    def camelot(self) -> str:
        """``8A`` (A minor), ``8B`` (C major): the Camelot wheel's code."""
        return f"{camelot_number(self)}{'A' if self.minor else 'B'}"

    def __str__(self) -> str:
        return f"{self.camelot} {self.name}"

    def shifted(self, semitones: int) -> "Key":
        """The key ``semitones`` up (down if negative), in the same mode."""
        return Key((self.tonic + semitones) % 12, self.minor)

    @property
    def relative(self) -> "Key":
        """The key with the same notes in the other mode (A minor <-> C major)."""
        return Key((self.tonic + (3 if self.minor else -3)) % 12, not self.minor)


# Every key's Camelot code round the wheel, minor then major: the order of a key-conditioned
# model's key labels (``LoopModel.key_names``, after which comes "any").
KEY_CODES = tuple(f"{number}{letter}" for letter in "AB" for number in range(1, 13))


def camelot_number(key: Key) -> int:
    # Each step round the wheel is a fifth (7 semitones); 8B is C major, 8A A minor.
    major_tonic = key.relative.tonic if key.minor else key.tonic
    return (7 * major_tonic + 7) % 12 + 1


def parse_key(text: str) -> Key:
    """A key from ``8A``/``8B`` (Camelot), ``Am``, ``A minor``, ``C#``, ``Db major``, ``Cmaj``; ValueError
    naming the text otherwise."""
    cleaned = text.strip()
    camelot = re.fullmatch(r"(1[0-2]|[1-9])\s*([ABab])", cleaned)
    if camelot:
        number, letter = int(camelot.group(1)), camelot.group(2).upper()
        major = next(Key(t, False) for t in range(12) if camelot_number(Key(t, False)) == number)
        return major.relative if letter == "A" else major
    named = re.fullmatch(r"([A-Ga-g])\s*([#b♯♭]?)\s*(m|min|minor|maj|major|M)?", cleaned)
    if named:
        letter = named.group(1).upper() + {"#": "#", "♯": "#", "b": "B", "♭": "B", "": ""}[named.group(2)]
        if letter in _NOTE_NUMBERS:
            return Key(_NOTE_NUMBERS[letter], named.group(3) in ("m", "min", "minor"))
    raise ValueError(f"not a key: {text!r} (write 8A, Am, A minor, C, C major, F#m ...)")


def compatible(a: Key | None, b: Key | None) -> bool:
    """Keys that mix: the same, a step round the Camelot wheel, or the relative; no key mixes with all."""
    if a is None or b is None:
        return True
    if a == b or a.relative == b:
        return True
    return a.minor == b.minor and (camelot_number(a) - camelot_number(b)) % 12 in (1, 11)


def mirex_score(estimate: Key | None, truth: Key) -> float:
    """MIREX's weighted key score: 1 exact, 0.5 a fifth away (same mode), 0.3 relative, 0.2 parallel."""
    if estimate is None:
        return 0.0
    if estimate == truth:
        return 1.0
    if estimate.minor == truth.minor and (estimate.tonic - truth.tonic) % 12 in (5, 7):
        return 0.5
    if estimate == truth.relative:
        return 0.3
    if estimate.tonic == truth.tonic:
        return 0.2
    return 0.0


class KeyEstimate(NamedTuple):
    key: Key | None  # None: no clear tonality
    confidence: float  # the best template's correlation with the loop's pitch-class profile, -1..1


def pitch_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The loop's 12 pitch-class weights (C first) from its harmonic part above C3.

    Drums get in the way: their hits paint every pitch class, and a kit's kick and toms ring at
    pitches of their own. The harmonic part (a soft mask from HPSS) keeps held notes, C3 and up
    leaves out the kick's fundamental, and log compression keeps one loud ringing drum from
    outweighing the chords (each measured on the demo corpus, bench/keys.py).
    """
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    spectrum = librosa.stft(audio, n_fft=2048, hop_length=512)
    harmonic, _ = librosa.decompose.hpss(np.abs(spectrum), margin=2.0)
    kept = librosa.istft(spectrum * np.minimum(harmonic / (np.abs(spectrum) + 1e-9), 1.0), hop_length=512,
                         n_fft=2048, length=len(audio))
    chroma = librosa.feature.chroma_cqt(y=kept, sr=sample_rate, hop_length=1024, bins_per_octave=36, tuning=0.0,
                                        fmin=librosa.note_to_hz("C3"), n_octaves=4, norm=None)
    peak = chroma.max()
    if not np.isfinite(peak) or peak <= 0:
        return np.zeros(12)
    return np.log1p(100 * chroma / peak).sum(axis=1)


def estimate_key(audio: np.ndarray, sample_rate: int, method: str = DEFAULT_METHOD) -> KeyEstimate:
    """The key of ``audio`` (mono or (frames, channels)), or no key: by the learnt estimator ("net",
    ``keynet.py``) or by matching one of ``PROFILES``."""
    if method == "net":
        from .keynet import estimate_key_net

        return estimate_key_net(audio, sample_rate)
    return key_from_profile(pitch_profile(audio, sample_rate), method)


def with_key(loop, method: str = DEFAULT_METHOD):
    """``loop`` (a ``Loop``) with its estimated key and the estimate's confidence."""
    estimate = estimate_key(loop.audio, loop.sample_rate, method)
    return replace(loop, key=None if estimate.key is None else estimate.key.camelot,
                   key_confidence=round(estimate.confidence, 3))


def fit_key(loop, target: Key, most_semitones: int = MOST_SEMITONES):
    """``loop`` (its key estimated) moved by the fewest semitones, at most ``most_semitones``, that
    make its key mix with ``target``; as it was when it mixes already, has no key, or no such move
    exists. Estimate the key again after a move: the estimate, not the arithmetic, is what plays."""
    from .prep import shift_pitch

    if loop.key is None or compatible(parse_key(loop.key), target):
        return loop
    key = parse_key(loop.key)
    for semitones in sorted(range(-most_semitones, most_semitones + 1), key=lambda s: (abs(s), s)):
        if semitones and compatible(key.shifted(semitones), target):
            return replace(shift_pitch(loop, semitones), pitch_shift=semitones)
    return loop


def key_label(code: str | None) -> str:
    """What a DJ reads for an estimated key: ``8A Am`` (Camelot code and name), or ``no key``."""
    return "no key" if code is None else str(parse_key(code))


def key_from_profile(energies: np.ndarray, profile: str = DEFAULT_PROFILE) -> KeyEstimate:
    if profile not in PROFILES:
        raise ValueError(f"unknown key method {profile!r} (methods: {', '.join(METHODS)})")
    energies = np.asarray(energies, dtype=np.float64)
    if not np.isfinite(energies).all() or energies.std() < 1e-9:
        return KeyEstimate(None, 0.0)
    best, best_score = None, -1.0
    for minor, weights in ((False, PROFILES[profile][0]), (True, PROFILES[profile][1])):
        for tonic in range(12):
            score = float(np.corrcoef(energies, np.roll(weights, tonic))[0, 1])
            if score > best_score:
                best, best_score = Key(tonic, minor), score
    return KeyEstimate(best if best_score >= NO_KEY_BELOW else None, best_score)
