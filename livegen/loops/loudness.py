"""Loudness of a loop (ITU-R BS.1770-4, as DJ software's auto gain measures it) and levelling to a target.

Loop prep leaves every loop at the same peak, which says little about how loud it sounds: a sparse
kick pattern and a dense pad at one peak differ by many dB. Levelling each loop to one integrated
loudness (LUFS) keeps a set at one level from launch to launch. A loop is never raised by more
than ``MAX_GAIN_DB``, so a near-silent one is not pumped up into noise.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

DEFAULT_TARGET_LUFS = -18.0  # louder targets push the shipped loops' peaks into the limiter (bench/results/loudness.md)
MAX_GAIN_DB = 18.0
BLOCK_SECONDS = 0.4  # BS.1770's gating block: shorter audio has no integrated loudness


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of mono ``(frames,)`` or multichannel ``(frames, channels)`` audio;
    -inf for silence or audio shorter than one gating block."""
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) < BLOCK_SECONDS * sample_rate or not np.any(audio):
        return -math.inf
    with np.errstate(divide="ignore"):  # a silent block's log: gated out, as the standard says
        return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio))


def loop_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """A mono loop's loudness as it is heard: on both channels of a stereo pair (3 LU above the same
    audio in one channel), as the set plays it and as DJ software plays a mono file."""
    audio = np.asarray(audio)
    return integrated_loudness(np.stack([audio, audio], axis=1) if audio.ndim == 1 else audio, sample_rate)


def short_term_loudness(audio: np.ndarray, sample_rate: int, window: float = 3.0, hop: float = 1.0) -> np.ndarray:
    """BS.1770 loudness of each ``window``-second stretch (3 s: "short-term", as EBU R 128 defines it),
    every ``hop`` seconds; -inf where a stretch is silent."""
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float64)
    size, step = int(window * sample_rate), int(hop * sample_rate)
    meter = pyloudnorm.Meter(sample_rate, block_size=window)  # one gating block a stretch: nothing gated out
    values = []
    for start in range(0, max(len(audio) - size, 0) + 1, step):
        stretch = audio[start:start + size]
        with np.errstate(divide="ignore"):
            values.append(float(meter.integrated_loudness(stretch)) if np.any(stretch) else -math.inf)
    return np.array(values)


def level(loop, target_lufs: float):
    """``loop`` (a ``Loop``) brought to ``target_lufs`` as heard (``loop_loudness``), with that loudness
    and the gain it got.

    Peaks may go past full scale: the live mixer's limiter and master gain follow; a file writer
    that cannot hold them takes ``fit_peak``.
    """
    measured = loop_loudness(loop.audio, loop.sample_rate)
    if not math.isfinite(measured):
        return replace(loop, loudness=None, gain_db=0.0)
    gain_db = min(target_lufs - measured, MAX_GAIN_DB)
    audio = (loop.audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)
    return replace(loop, audio=audio, loudness=measured + gain_db, gain_db=gain_db)


def fit_peak(loop, ceiling: float = 0.99):
    """``loop`` turned down, if it must be, so its peak stays under ``ceiling`` (a PCM file clips
    above full scale); its loudness and gain are updated to what it then has."""
    peak = float(np.abs(loop.audio).max()) if len(loop.audio) else 0.0
    if peak <= ceiling:
        return loop
    cut_db = 20 * math.log10(ceiling / peak)
    return replace(loop, audio=(loop.audio * np.float32(ceiling / peak)).astype(np.float32),
                   loudness=None if loop.loudness is None else loop.loudness + cut_db,
                   gain_db=loop.gain_db + cut_db)
