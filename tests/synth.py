"""Test signals: a drum pattern with a known tempo, built from decaying noise and swept sines."""

import numpy as np


def drum_pattern(bpm: float, seconds: float = 5.94, sample_rate: int = 22050, offset: float = 0.13,
                 seed: int = 0) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, hats on the eighths."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    audio = np.zeros(n, np.float32)
    beat = 60.0 / bpm

    def add(at_seconds, sound):
        i = int(at_seconds * sample_rate)
        if i < n:
            audio[i:i + len(sound)] += sound[: n - i]

    k = np.arange(6000)
    kick = np.sin(2 * np.pi * 55 * k / sample_rate * (1 + np.exp(-k / 500))) * np.exp(-k / 1500)
    beat_index = 0
    t = offset
    while t < seconds:
        snare = rng.normal(0, 0.5, 6000) * np.exp(-k / 600)
        add(t, kick if beat_index % 2 == 0 else snare)
        for half in (0.0, 0.5):
            add(t + half * beat, rng.normal(0, 0.15, 600) * np.exp(-k[:600] / 100))
        t += beat
        beat_index += 1
    return audio
