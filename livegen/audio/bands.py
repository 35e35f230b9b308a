"""The frequency bands an image's rows stand for: triangular filters over STFT bins, on one of two scales.

* ``mel``: librosa's default mel filters (Slaney scale and norm), teticio's
  codec and that of every model up to the key-conditioned ones.
* ``semitone``: as fine as the STFT allows where a key lives and coarse where
  it does not. From 0 Hz the rows are the STFT's own bins, one a row, until a
  semitone is wider than a bin (about 180 Hz at 22050 Hz / 2048); then one row
  a semitone up to ``SEMITONE_TOP`` (the chords' range and their first
  partials); the rows left are spread evenly on a log scale to Nyquist.

  At 64 rows a mel image gives the range under 180 Hz (kick and bass) 3.5
  rows and 130-1000 Hz about 13; the semitone scale gives them 17 and 28,
  and the range above 900 Hz (hats, air) about 19 rows instead of 45. A key
  survives a 64-row semitone image; it does not survive a 64-row mel image
  (``bench/keys.py``).

Both scales build their filters the same way (a triangle from a row's lower
neighbour's centre to its upper one's, scaled to unit area as Slaney's norm
does), so the Griffin-Lim inverter treats them alike. No librosa here: the
GPU path needs only numpy.
"""

from __future__ import annotations

import numpy as np

SCALES = ("mel", "semitone")
SEMITONE = 2 ** (1 / 12)
SEMITONE_TOP = 880.0  # Hz (A5): top of the semitone rows
TUNING = 440.0  # Hz: A4, where the semitone rows are tuned


def _hz_to_mel(hz):
    # Slaney: linear below 1 kHz, logarithmic above.
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep,
                    hz / f_sp)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def band_edges(scale: str, sample_rate: int, n_fft: int, n_bands: int) -> np.ndarray:
    """The ``n_bands + 2`` frequencies (Hz, rising) the triangles hang between: band i peaks at edge i + 1."""
    nyquist = sample_rate / 2.0
    if scale == "mel":
        return _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(nyquist), n_bands + 2))
    if scale != "semitone":
        raise ValueError(f"unknown frequency scale {scale!r}; choose from {', '.join(SCALES)}")
    bin_hz = sample_rate / n_fft
    edges = [0.0]
    while edges[-1] < SEMITONE_TOP and len(edges) < n_bands + 1:  # a bin a row, then a semitone a row
        if edges[-1] * (SEMITONE - 1) < bin_hz:
            edges.append(edges[-1] + bin_hz)
        else:  # on the equal-tempered pitches (A 440 Hz), so that a note's partials peak in a row
            edges.append(TUNING * SEMITONE ** np.ceil(12 * np.log2((edges[-1] + bin_hz) / TUNING) - 1e-9))
    left = n_bands + 2 - len(edges)
    if left < 1 or edges[-1] >= nyquist:
        raise ValueError(f"a semitone scale needs more than {n_bands} bands at {sample_rate} Hz / {n_fft}: "
                         f"its fine rows reach {edges[-1]:.0f} Hz, short of the top ({nyquist:.0f} Hz)")
    top = np.geomspace(edges[-1], nyquist, left + 1)[1:]
    return np.concatenate([edges, top])


def filterbank(scale: str, sample_rate: int, n_fft: int, n_bands: int) -> np.ndarray:
    """Triangular unit-area filters, shape (n_bands, 1 + n_fft // 2), float32."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = band_edges(scale, sample_rate, n_fft, n_bands)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's default mel filters (a test checks them against ``librosa.filters.mel``)."""
    return filterbank("mel", sample_rate, n_fft, n_mels)
