"""Batched fast Griffin-Lim in torch: mel power -> audio on the model's device.

librosa's ``mel_to_audio`` spends most of its time in a per-frame NNLS solve
of the mel filterbank and runs Griffin-Lim in numpy one clip at a time. Here
the filterbank is inverted once with a pseudo-inverse (clamped at zero), and
the fast Griffin-Lim iterations (Perraudin et al. 2013, momentum 0.99, as
librosa uses) run on a whole batch, in place, with an STFT pair written on
``torch.fft`` (2.1-2.3x faster per iteration than with ``torch.stft`` /
``torch.istft`` on 2 CPU threads, same result to 4e-6). The STFT matches
librosa's: periodic Hann window, centred frames, zero padding.

No librosa here: the filterbank is built in numpy (``bands.py``), so the GPU
path needs only torch and numpy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .bands import filterbank


class GriffinLim:
    """Inverts batches of band power spectrograms (mel or semitone rows) for one codec config on one device."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, device="cpu", scale: str = "mel"):
        self.n_fft, self.hop_length = n_fft, hop_length
        self.device = torch.device(device)
        basis = torch.from_numpy(filterbank(scale, sample_rate, n_fft, n_mels)).double()
        self.inverse_basis = torch.linalg.pinv(basis).float().to(self.device)  # (freqs, mels)
        self.window = torch.hann_window(n_fft, periodic=True, device=self.device)
        self._overlap = -(-n_fft // hop_length)  # hops a window spans (rounded up)
        self._inverse_envelopes: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def for_config(cls, config, device=None) -> "GriffinLim":
        return _cached(config.sample_rate, config.n_fft, config.hop_length, config.y_res,
                       str(torch.device(device or "cpu")), config.frequency_scale)

    def mel_to_magnitude(self, mel_power: torch.Tensor) -> torch.Tensor:
        """(B, mels, frames) mel power -> (B, freqs, frames) linear magnitude."""
        power = torch.matmul(self.inverse_basis, mel_power.float()).clamp_(min=0.0)
        return power.sqrt_()

    # The STFT pair is written out (frames by unfold, overlap-add by slices of one hop) rather than
    # torch.stft / torch.istft: torch.istft rebuilds and checks its window envelope on every call,
    # which made it 2.7x slower than this on 96-frame batches. Same result as librosa's: periodic Hann
    # window, centred frames, zero padding. Spectra are laid out (..., frames, bins).
    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., samples) -> (..., frames, bins) complex; frame t is centred on sample t * hop."""
        half = self.n_fft // 2
        padded = torch.nn.functional.pad(audio, (half, half))
        return torch.fft.rfft(padded.unfold(-1, self.n_fft, self.hop_length) * self.window, dim=-1)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """(..., frames, bins) complex -> (..., length) audio, least-squares overlap-add."""
        hop, overlap = self.hop_length, self._overlap
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1).mul_(self.window)
        if overlap * hop != self.n_fft:
            frames = torch.nn.functional.pad(frames, (0, overlap * hop - self.n_fft))
        count = frames.shape[-2]
        out = torch.zeros(*frames.shape[:-2], count + overlap - 1, hop, device=frames.device)
        for j in range(overlap):  # frame t's j-th hop lands on hop t + j
            out[..., j:j + count, :] += frames[..., j * hop:(j + 1) * hop]
        half = self.n_fft // 2
        return out.flatten(-2)[..., half:half + length] * self._inverse_envelope(count, length)

    def _inverse_envelope(self, count: int, length: int) -> torch.Tensor:
        key = (count, length)
        if key not in self._inverse_envelopes:
            if len(self._inverse_envelopes) > 64:
                self._inverse_envelopes.clear()
            hop, overlap = self.hop_length, self._overlap
            squared = torch.nn.functional.pad(self.window ** 2, (0, overlap * hop - self.n_fft))
            envelope = torch.zeros(count + overlap - 1, hop, device=self.device)
            for j in range(overlap):
                envelope[j:j + count] += squared[j * hop:(j + 1) * hop]
            half = self.n_fft // 2
            envelope = envelope.flatten()[half:half + length]
            self._inverse_envelopes[key] = torch.where(envelope > 1e-11, 1.0 / envelope.clamp(min=1e-11), 0.0)
        return self._inverse_envelopes[key]

    @torch.no_grad()
    def __call__(self, mel_power: torch.Tensor, n_iter: int = 32, momentum: float = 0.99,
                 seed: int = 0) -> torch.Tensor:
        """(B, mels, frames) mel power -> (B, (frames - 1) * hop) float32 audio."""
        magnitude = self.mel_to_magnitude(mel_power.to(self.device)).transpose(-1, -2).contiguous()
        length = (magnitude.shape[-2] - 1) * self.hop_length
        # The same starting phase for every item, so a clip decodes the same in any batch
        # (drawn as (bins, frames) and turned, so a seed gives the same start in either layout).
        generator = torch.Generator(device="cpu").manual_seed(seed)
        phase = torch.rand(magnitude.shape[-1:-3:-1], generator=generator).T * (2 * torch.pi)
        spectrum = torch.polar(magnitude, phase.to(self.device).expand(magnitude.shape))
        keep = momentum / (1.0 + momentum)
        scale = torch.empty_like(magnitude)
        previous = None
        for _ in range(n_iter):
            rebuilt = self.stft(self.istft(spectrum, length))
            # Momentum step (in place: no temporaries), then the target magnitude with its new phase.
            if previous is None:
                spectrum = rebuilt.clone()
            else:
                torch.sub(rebuilt, previous, alpha=keep, out=spectrum)
            previous = rebuilt
            pair = torch.view_as_real(spectrum)
            torch.mul(pair[..., 0], pair[..., 0], out=scale)
            scale.addcmul_(pair[..., 1], pair[..., 1]).add_(1e-32).rsqrt_().mul_(magnitude)
            spectrum.mul_(scale)
        return self.istft(spectrum, length)


@lru_cache(maxsize=8)
def _cached(sample_rate, n_fft, hop_length, n_mels, device, scale) -> GriffinLim:
    return GriffinLim(sample_rate, n_fft, hop_length, n_mels, device, scale)


def spectral_convergence(audio: np.ndarray, mel_power: np.ndarray, config) -> float:
    """||bands(audio) - target|| / ||target|| on band magnitudes, scale-free.

    Both signals are compared after fitting the best gain, because the image
    keeps no absolute level. Lower is better; used to compare inverters.
    """
    gl = GriffinLim.for_config(config)
    spec = gl.stft(torch.as_tensor(np.asarray(audio, np.float32))).transpose(-1, -2)
    basis = torch.from_numpy(filterbank(config.frequency_scale, config.sample_rate, config.n_fft, config.y_res))
    got = torch.matmul(basis, spec.abs() ** 2).sqrt().numpy().astype(np.float64)
    want = np.sqrt(np.asarray(mel_power, dtype=np.float64))
    frames = min(got.shape[-1], want.shape[-1])
    got, want = got[..., :frames], want[..., :frames]
    gain = (got * want).sum() / max((got * got).sum(), 1e-20)
    return float(np.linalg.norm(gain * got - want) / max(np.linalg.norm(want), 1e-20))
