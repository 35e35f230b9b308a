"""A learnt key estimator: a small convolutional network on the loop's constant-Q spectrogram.

Template matching (``key.py``) weighs every pitch class the loop holds, and drums hold pitch
classes too: a kit's ringing snare or tuned kick pulls the estimate off the chords. A network that
sees time and pitch together can tell a held chord from a drum hit that rings, as learnt key
estimators do (Korzeniowski & Widmer 2017). This one learns from the demo corpus, whose clips know
their key, plus clips of drums alone labelled no key (``training/key_estimator.py``); the shipped
weights are in ``livegen/loops/key-net``.

Input: a log-frequency magnitude spectrogram from C2 over 6 octaves at two bins a semitone, 93 ms
a frame, in dB under its loudest bin scaled to 0..1. It is read off one 4096-point STFT of the
audio at 11025 Hz through triangular filters, not a true constant-Q transform: the same picture
for a key at an eighth of the cost (2.2 ms against 0.3 ms per second of audio), which the live
worker pays on every loop. Output: 25 classes, the 12
major keys (tonic C first), the 12 minor ones, and no key. The time axis is averaged away at the
end, so a loop of any length is read whole.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .key import Key, KeyEstimate

RATE = 11025
N_FFT = 4096  # 2.7 Hz bins: a quarter tone apart from about 90 Hz up
HOP = 1024
BINS_PER_OCTAVE = 24
OCTAVES = 6
BINS = BINS_PER_OCTAVE * OCTAVES
LOWEST_HZ = 65.406  # C2
FLOOR_DB = 80.0
NO_KEY = 24  # the class after the 24 keys
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def key_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(BINS, frames) float32 in 0..1: the network's view of ``audio`` (mono or (frames, channels))."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if sample_rate != RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=RATE, res_type="soxr_hq")
    spectrum = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP))
    magnitude = _log_frequency_filters() @ spectrum
    if not np.isfinite(magnitude).all() or magnitude.max() <= 0:
        return np.zeros((BINS, magnitude.shape[1]), np.float32)
    decibels = librosa.amplitude_to_db(magnitude, ref=np.max, top_db=FLOOR_DB)
    return ((decibels + FLOOR_DB) / FLOOR_DB).astype(np.float32)


@lru_cache(maxsize=1)
def _log_frequency_filters() -> np.ndarray:
    """(BINS, N_FFT // 2 + 1): a triangle per quarter tone, as wide as the spacing of the quarter tones
    or of the STFT's bins, whichever is wider (low down, neighbouring filters share bins)."""
    centres = LOWEST_HZ * 2.0 ** (np.arange(BINS) / BINS_PER_OCTAVE)
    frequencies = np.arange(N_FFT // 2 + 1) * RATE / N_FFT
    widths = np.maximum(centres * (2 ** (1 / BINS_PER_OCTAVE) - 1), RATE / N_FFT)
    filters = np.maximum(0.0, 1.0 - np.abs(frequencies[None, :] - centres[:, None]) / widths[:, None])
    return (filters / filters.sum(axis=1, keepdims=True)).astype(np.float32)


def class_of(key: Key | None) -> int:
    return NO_KEY if key is None else key.tonic + 12 * key.minor


def key_of(index: int) -> Key | None:
    return None if index == NO_KEY else Key(index % 12, index >= 12)


def shift_class(index: int, semitones: int) -> int:
    """The class of a key ``semitones`` up (no key stays no key)."""
    return index if index == NO_KEY else (index % 12 + semitones) % 12 + 12 * (index >= 12)


class KeyNet(torch.nn.Module):
    """Five 3x3 convolutions over (pitch, time), time pooled twice then averaged; a linear read-out
    over pitch, so where on the pitch axis a pattern sits says which key it is."""

    def __init__(self, width: int = 8, bins: int = BINS):
        super().__init__()

        def block(cin, cout):
            return [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ELU()]

        self.width, self.bins = width, bins
        self.features = torch.nn.Sequential(
            *block(1, width), *block(width, width), torch.nn.MaxPool2d((1, 2)),
            *block(width, 2 * width), *block(2 * width, 2 * width), torch.nn.MaxPool2d((1, 2)),
            *block(2 * width, 2 * width))
        self.classify = torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Linear(2 * width * bins, NO_KEY + 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, bins, frames) -> (batch, 25) logits."""
        hidden = self.features(features[:, None])
        return self.classify(hidden.mean(dim=-1).flatten(1))


def save_key_net(net: KeyNet, folder: Path, extra: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(folder / WEIGHTS_NAME))
    config = {"width": net.width, "bins": net.bins, "rate": RATE, "n_fft": N_FFT, "hop": HOP,
              "bins_per_octave": BINS_PER_OCTAVE, "floor_db": FLOOR_DB, **extra}
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


DEFAULT_DIR = Path(__file__).resolve().parent / "key-net"  # part of livegen itself, not a preset to swap


@lru_cache(maxsize=4)
def load_key_net(folder: str | Path | None = None) -> KeyNet:
    """The estimator in ``folder`` (default: the shipped one), in eval mode on the CPU."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else DEFAULT_DIR
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
        state = load_file(str(folder / WEIGHTS_NAME))
    except (OSError, ValueError) as err:
        raise ValueError(f"{folder}: not a key estimator ({err})") from None
    if (config.get("rate"), config.get("n_fft"), config.get("hop"), config.get("bins_per_octave")) != (
            RATE, N_FFT, HOP, BINS_PER_OCTAVE):
        raise ValueError(f"{folder / CONFIG_NAME}: made for other features than this livegen computes")
    net = KeyNet(width=int(config["width"]), bins=int(config["bins"]))
    net.load_state_dict(state)
    return net.eval()


def estimate_key_net(audio: np.ndarray, sample_rate: int, net: KeyNet | None = None,
                     no_key_below: float = 0.5) -> KeyEstimate:
    """The network's key for ``audio``; no key when that class wins or the winner's probability is
    under ``no_key_below``. The confidence is the winner's probability."""
    net = net if net is not None else load_key_net()
    features = torch.from_numpy(key_features(audio, sample_rate))[None]
    with torch.inference_mode():
        probabilities = torch.softmax(net(features)[0].float(), dim=0)
    best = int(probabilities.argmax())
    confidence = float(probabilities[best])
    key = key_of(best) if confidence >= no_key_below else None
    return KeyEstimate(key, confidence)
