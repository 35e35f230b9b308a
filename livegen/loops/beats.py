"""Beats in an onset envelope: the tempo from its autocorrelation under a tempo prior, then the beat
positions by dynamic programming (Ellis, "Beat tracking by dynamic programming", 2007).

librosa's ``beat_track`` runs the same method, with the same constants. This is numpy alone: importing
``librosa.beat`` costs 4-7 s of numba compiling in every new process (the live worker, each of its
prep processes, each restart), and a live slice has only about 256 frames, so the dynamic program,
taken half a beat at a time, is cheap in numpy.
"""

from __future__ import annotations

import numpy as np

TEMPO_WINDOW_SECONDS = 8.0  # of envelope each autocorrelation sees
MAX_BPM = 320.0
PRIOR_OCTAVES = 1.0  # the tempo prior: log-normal around the expected tempo, this wide (one sd)
TIGHTNESS = 100.0  # how hard a gap between beats is held to the period (log-ratio squared, times this)
FIRST_BEAT = 0.01  # the first beat needs this share of the strongest local score


def estimate_tempo(envelope: np.ndarray, frame_rate: float, expected_bpm: float = 120.0) -> float:
    """The tempo (BPM) whose lag the envelope's autocorrelation favours most, weighted by the prior.

    The autocorrelation is taken in a Hann window around every frame (the
    envelope ramped down to zero beyond its ends), each normalised to its
    zero lag, and averaged over the frames.
    """
    envelope = np.asarray(envelope, dtype=np.float64)
    size = int(TEMPO_WINDOW_SECONDS * frame_rate)
    padded = np.pad(envelope, size // 2, mode="linear_ramp", end_values=0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)[:len(envelope)]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)  # periodic
    spectrum = np.fft.rfft(windows * hann, n=_fast_length(2 * size - 1), axis=1)  # zero-padded: no wrap-around
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :size]
    zero_lag = autocorrelation[:, :1]
    autocorrelation = np.divide(autocorrelation, zero_lag, out=np.zeros_like(autocorrelation), where=zero_lag > 0)
    strength = autocorrelation.mean(axis=0)

    lags = np.arange(size, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpms = 60.0 * frame_rate / lags  # lag 0: infinite
        prior = -0.5 * ((np.log2(bpms) - np.log2(expected_bpm)) / PRIOR_OCTAVES) ** 2
    prior[bpms > MAX_BPM] = -np.inf
    return float(bpms[int(np.argmax(np.log1p(1e6 * np.maximum(strength, 0.0)) + prior))])


def _fast_length(n: int) -> int:
    """The smallest length >= n with no prime factor above 5 (for a slice's windows, FFT and inverse took
    4.6 ms at 688 = 16 x 43 points, 2.8 ms at 720)."""
    while True:
        rest = n
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return n
        n += 1


def track_beats(envelope: np.ndarray, frame_rate: float, expected_bpm: float = 120.0) -> np.ndarray:
    """Frame indices of the beats in an onset envelope (``frame_rate`` frames a second), in order.

    ``expected_bpm`` centres the tempo prior: on a short slice it decides
    between readings an octave apart. Empty where the envelope is flat.
    """
    envelope = np.asarray(envelope, dtype=np.float64)
    spread = envelope.std(ddof=1) if len(envelope) > 1 else 0.0
    if not spread > 0:
        return np.zeros(0, dtype=int)
    period = int(np.round(frame_rate * 60.0 / estimate_tempo(envelope, frame_rate, expected_bpm)))

    # Local score: the envelope (in units of its spread) smoothed by a narrow Gaussian (sd period/32).
    taps = np.arange(-period, period + 1)
    local = np.convolve(envelope / spread, np.exp(-0.5 * (taps * 32.0 / period) ** 2), mode="same")

    # Best path score ending in a beat at each frame: its local score plus the best earlier beat
    # 1/2 to 2 periods back, penalised by how far the gap is from the period. Gaps are at least
    # ``nearest`` frames, so that many frames at once depend only on frames already scored.
    nearest = max(1, int(np.round(period / 2)))
    gaps = np.arange(nearest, 2 * period + 1)  # nearest first: a tie goes to the nearer beat
    penalty = TIGHTNESS * np.log(gaps / period) ** 2
    count = len(local)
    score = np.empty(count)
    link = np.full(count, -1)
    for first in range(0, count, nearest):
        frames = np.arange(first, min(first + nearest, count))
        earlier = frames[:, None] - gaps[None, :]
        candidates = np.where(earlier >= 0, score[np.maximum(earlier, 0)] - penalty, -np.inf)
        best = np.argmax(candidates, axis=1)
        found = earlier[np.arange(len(frames)), best] >= 0
        score[frames] = local[frames] + np.where(found, candidates[np.arange(len(frames)), best], 0.0)
        link[frames] = np.where(found, earlier[np.arange(len(frames)), best], -1)
    start = int(np.argmax(local >= FIRST_BEAT * local.max()))
    link[:start] = -1  # no beat before the first real onset

    # The path ends on the last local peak of the path score that reaches half their median.
    before = np.concatenate([[score[0]], score[:-1]])
    after = np.concatenate([score[1:], [score[-1]]])
    peaks = np.flatnonzero((score > before) & (score >= after))
    if len(peaks) == 0:
        return np.zeros(0, dtype=int)
    good = peaks[score[peaks] >= 0.5 * np.median(score[peaks])]
    beat, beats = int(good[-1]), []
    while beat >= 0:
        beats.append(beat)
        beat = int(link[beat])
    beats = np.array(beats[::-1], dtype=int)

    # Beats where the smoothed envelope is still nothing (before the first sound, after the last) go.
    sounding = np.flatnonzero(local > 0)
    return beats[(beats >= sounding[0]) & (beats <= sounding[-1])]
