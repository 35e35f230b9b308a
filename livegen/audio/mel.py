"""Mel-spectrogram codec: audio <-> 8-bit spectrogram images.

Audio to image follows teticio's audio-diffusion ``Mel`` exactly (the same
uint8 pixels for the same audio), so models trained with that project and
data sets made with it work here unchanged:

* a slice is ``x_res * hop_length - 1`` samples of mono audio,
* ``n_mels = y_res`` mel bands of the power spectrogram (librosa defaults:
  Slaney mel scale and norm, centred Hann STFT),
* ``power_to_db(ref=max, top_db)`` then ``(dB + top_db) * 255 / top_db``,
  clipped and rounded to uint8; row 0 is the lowest band.

A codec may instead put its rows on the ``semitone`` scale (``frequency_scale``
in ``mel_config.json``, see ``bands.py``), fine enough to keep a loop's key at
64 rows; the rest is the same. diffusers' ``Mel`` ignores that setting and would
encode such a model's images on the mel scale.

Image to audio is ours: a batched fast Griffin-Lim in torch that runs on the
model's device (see ``griffinlim.py``). The image keeps no absolute level
(``ref=max``), so decoded audio is peak-normalised.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..jsonfile import read_json_object
from .bands import SCALES, filterbank

CONFIG_NAME = "mel_config.json"


class CodecError(ValueError):
    """A mel config or an audio input that cannot be used; the message names it."""


@dataclass(frozen=True)
class MelConfig:
    """The parameters stored in ``mel/mel_config.json`` (teticio's names)."""

    x_res: int = 256
    y_res: int = 256
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    top_db: int = 80
    n_iter: int = 32
    frequency_scale: str = "mel"  # or "semitone" (bands.py); not one of teticio's settings

    def __post_init__(self):
        if self.frequency_scale not in SCALES:
            raise CodecError(f"mel config: frequency_scale must be one of {', '.join(SCALES)}, "
                             f"got {self.frequency_scale!r}")
        for f in fields(self):
            if f.name == "frequency_scale":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise CodecError(f"mel config: {f.name} must be a positive integer, got {value!r}")

    @property
    def slice_size(self) -> int:
        """Samples of audio in one image (teticio drops the last sample)."""
        return self.x_res * self.hop_length - 1

    @property
    def slice_seconds(self) -> float:
        return self.slice_size / self.sample_rate

    @classmethod
    def load(cls, path: str | Path) -> "MelConfig":
        """Read a mel config from a file or from a ``mel/`` folder."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        raw = read_json_object(path, CodecError, missing="mel config not found")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except CodecError as err:
            raise CodecError(f"{path}: {err}") from None

    def save(self, folder: str | Path) -> Path:
        """Write ``mel_config.json`` in the layout diffusers' ``Mel`` reads too."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_NAME
        settings = asdict(self)
        if self.frequency_scale == "mel":  # teticio's layout exactly, for the models that match it
            del settings["frequency_scale"]
        data = {"_class_name": "Mel", "_diffusers_version": _diffusers_version(), **settings}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path


def _diffusers_version() -> str:
    try:
        import diffusers

        return diffusers.__version__
    except ImportError:  # the codec itself does not need diffusers
        return "0.0.0"


class MelCodec:
    """Turns audio into spectrogram images and images back into audio."""

    def __init__(self, config: MelConfig | None = None):
        self.config = config or MelConfig()

    # ------------------------------------------------------------------ encode
    def slices(self, audio: np.ndarray) -> np.ndarray:
        """Cut mono audio into whole slices, shape (n, slice_size).

        Audio shorter than one image is zero-padded to one slice, as teticio does.
        """
        audio = _as_mono(audio)
        cfg = self.config
        if len(audio) < cfg.x_res * cfg.hop_length:
            audio = np.concatenate([audio, np.zeros(cfg.x_res * cfg.hop_length - len(audio), audio.dtype)])
        count = len(audio) // cfg.slice_size
        return audio[: count * cfg.slice_size].reshape(count, cfg.slice_size)

    def audio_to_image(self, audio_slice: np.ndarray) -> np.ndarray:
        """One slice of mono audio -> uint8 image (y_res, x_res), row 0 = lowest band."""
        return self.mel_power_to_image(self.band_power(audio_slice))

    def band_power(self, audio: np.ndarray, hop_length: int | None = None) -> np.ndarray:
        """Power in each of the codec's bands (y_res, frames) of mono audio, at ``hop_length`` (default the codec's)."""
        import librosa  # imported here: decoding and the live engine do not need it

        cfg = self.config
        hop = hop_length or cfg.hop_length
        if cfg.frequency_scale == "mel":  # librosa's own call: the same pixels as teticio's codec
            return librosa.feature.melspectrogram(y=np.asarray(audio), sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                                  hop_length=hop, n_mels=cfg.y_res)
        spectrum = np.abs(librosa.stft(np.asarray(audio), n_fft=cfg.n_fft, hop_length=hop)) ** 2
        return filterbank(cfg.frequency_scale, cfg.sample_rate, cfg.n_fft, cfg.y_res) @ spectrum

    def mel_power_to_image(self, power: np.ndarray) -> np.ndarray:
        """Mel power (y_res, frames) -> uint8 image: dB below its loudest cell, ``top_db`` deep."""
        import librosa

        cfg = self.config
        db = librosa.power_to_db(power, ref=np.max, top_db=cfg.top_db)
        return (((db + cfg.top_db) * 255 / cfg.top_db).clip(0, 255) + 0.5).astype(np.uint8)

    def audio_to_images(self, audio: np.ndarray) -> np.ndarray:
        """All whole slices of mono audio -> uint8 images (n, y_res, x_res)."""
        return np.stack([self.audio_to_image(s) for s in self.slices(audio)])

    # ------------------------------------------------------------------ decode
    def image_to_mel_power(self, images):
        """uint8 images (or floats in 0..255) -> mel power, as a float32 torch tensor."""
        import torch

        images = torch.as_tensor(images).float()
        db = images * (self.config.top_db / 255.0) - self.config.top_db
        return torch.pow(10.0, db / 10.0)

    def images_to_audio(self, images, *, n_iter: int | None = None, device=None, seed: int = 0,
                        momentum: float = 0.99) -> np.ndarray:
        """uint8 images (B, y_res, x_res) or one (y_res, x_res) -> float32 audio, peak 0.9.

        Batched fast Griffin-Lim on ``device`` (the model's, or CPU).
        """
        from .griffinlim import GriffinLim

        images = np.asarray(images) if not hasattr(images, "dim") else images
        single = images.ndim == 2
        if single:
            images = images[None]
        inverter = GriffinLim.for_config(self.config, device=device)
        audio = inverter(self.image_to_mel_power(images).to(inverter.device),
                         n_iter=n_iter or self.config.n_iter, seed=seed, momentum=momentum)
        audio = peak_normalise(audio.cpu().numpy())
        return audio[0] if single else audio


def peak_normalise(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale each row (or the one signal) to ``peak``; silence stays silence."""
    audio = np.asarray(audio, dtype=np.float32)
    top = np.abs(audio).max(axis=-1, keepdims=True)
    return np.where(top > 1e-9, audio * (peak / np.maximum(top, 1e-9)), 0.0).astype(np.float32)


def _as_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim == 2:  # (samples, channels) as soundfile gives, or (channels, samples)
        audio = audio.mean(axis=1 if audio.shape[0] > audio.shape[1] else 0)
    if audio.ndim != 1:
        raise CodecError(f"expected mono or multi-channel audio, got an array of shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise CodecError(f"expected floating-point audio samples, got {audio.dtype}")
    return audio
