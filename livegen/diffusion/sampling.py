"""Samplers: new loops, variations, in/outpainting, continuation, morphs, DDIM inversion.

Every entry point works in *model space*: float tensors (B, C, H, W) in about
[-1, 1] that the UNet denoises (pixels, or latents of a ``vqvae``).
``encode_images`` / ``decode_images`` convert to and from uint8 spectrograms.

Randomness is per sample: sample ``i`` draws its starting noise and any step
noise (DDPM, DDIM with eta > 0) from its own generator seeded with
``seeds[i]``, on the CPU. So a loop depends on its seed alone, not on the
batch it was made in or the device, and a batch equals its seeds run one by
one.

The forward (noising) process is computed here from the schedule's
``alphas_cumprod`` rather than through each scheduler's ``add_noise``, which
in multistep solvers depends on their internal step counter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..presets import SAMPLERS
from .checkpoint import LoopModel


class SamplingError(ValueError):
    pass


def make_scheduler(model: LoopModel, sampler: str, steps: int):
    """A fresh scheduler of kind ``sampler`` on the model's noise schedule, set to ``steps``."""
    import diffusers

    if sampler not in SAMPLERS:
        raise SamplingError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    train_steps = model.scheduler.config.num_train_timesteps
    if not 1 <= steps <= train_steps:
        raise SamplingError(f"steps must be 1..{train_steps}, got {steps}")
    # DPM++ is for few steps, which must start at the last training timestep: the "leading" spacing
    # of teticio's configs starts 4 steps at t=750 of 999. On the lite-genres teacher (x0 clipping
    # off) 4 steps land 0.74 from the 1000-step loop leading, 0.23 trailing (bench/fidelity.py).
    overrides = {"timestep_spacing": "trailing"} if sampler == "dpm++" else {}
    scheduler = getattr(diffusers, SAMPLERS[sampler]).from_config(model.scheduler.config, **overrides)
    scheduler.set_timesteps(steps, device=model.device)
    return scheduler


def alphas_cumprod_of(model: LoopModel) -> torch.Tensor:
    """The noise schedule's cumulative signal fractions, one per training timestep (float32)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(model.scheduler.config).alphas_cumprod.to(torch.float32)


def add_noise(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
    """The forward process q(x_t | x_0) of a variance-preserving schedule."""
    a = alphas_cumprod[int(t)].item()
    return math.sqrt(a) * x0 + math.sqrt(1.0 - a) * noise


# ------------------------------------------------------------------- noise
def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def initial_noise(model: LoopModel, generators: list[torch.Generator], width: int | None = None) -> torch.Tensor:
    """One standard-normal draw per generator, shape (B, C, H, W), on the model's device.

    ``width``: model-space columns (W); default the model's own (see ``canvas_width``).

    A model whose UNet cannot see the noise's mean (one value in thousands of pixels: in training it
    is lost in the noise) carries it through to the image: a positive mean brightens the whole
    spectrogram into a broadband wash, a negative one darkens the gaps. With ``caps_noise_mean``
    a positive mean is taken out of each draw (docs/models.md, "The bright wash")."""
    channels, height, native = model.sample_shape
    shape = (1, channels, height, width or native)
    noise = torch.cat([torch.randn(shape, generator=g) for g in generators])
    if model.caps_noise_mean:
        noise = noise - noise.mean(dim=(1, 2, 3), keepdim=True).clamp(min=0.0)
    return noise.to(model.device)


# The widest canvas drawn, in multiples of the model's own width. The UNet is convolutional (and its
# attention, where it has any, takes any width), so it draws longer slices than it was trained on; up
# to twice its width is what has been measured (bench/canvas.py).
MAX_CANVAS = 2


def width_multiple(model: LoopModel) -> int:
    """Model-space widths the UNet takes: multiples of this (each down block but the last halves them)."""
    return 2 ** (len(model.unet.config.down_block_types) - 1)


def canvas_width(model: LoopModel, seconds: float | None) -> int:
    """Model-space columns to draw for a slice of at least ``seconds`` of audio.

    The model's own width when that holds them (or ``seconds`` is None), else the narrowest
    width the UNet takes that does, up to ``MAX_CANVAS`` times its own. A slice of W columns
    decodes to W x (frames per column) mel frames, ``(frames - 1) x hop`` samples of audio.
    """
    native = model.sample_shape[2]
    if seconds is None:
        return native
    frames_per_column = model.mel.x_res / native  # 1 for pixel models; the autoencoder's factor for latent ones
    frames = math.ceil(seconds * model.mel.sample_rate / model.mel.hop_length) + 1
    step = width_multiple(model)
    columns = math.ceil(frames / frames_per_column / step) * step
    return int(min(max(columns, native), MAX_CANVAS * native))


def slerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation per sample; alpha 0 gives x0, 1 gives x1 (exactly)."""
    if alpha <= 0.0:
        return x0.clone()
    if alpha >= 1.0:
        return x1.clone()
    a, b = x0.flatten(1).double(), x1.flatten(1).double()
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))[:, None]
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-6  # nearly the same direction: fall back to a straight line
    w0 = torch.where(parallel, 1.0 - alpha, torch.sin((1.0 - alpha) * theta) / torch.where(parallel, 1.0, sin))
    w1 = torch.where(parallel, alpha, torch.sin(alpha * theta) / torch.where(parallel, 1.0, sin))
    return (w0 * a + w1 * b).to(x0.dtype).reshape(x0.shape)


# -------------------------------------------------------- images <-> model space
@torch.no_grad()
def encode_images(model: LoopModel, images) -> torch.Tensor:
    """uint8 spectrograms (B, H, W) -> model space (B, C, h, w); latents are the vqvae mean."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32, device=model.device)
    if x.ndim == 2:
        x = x[None]
    x = (x / 255.0 * 2.0 - 1.0)[:, None]
    if model.vqvae is not None:
        with model.autocast():
            x = model.vqvae.encode(x).latent_dist.mean.float() * model.vqvae.config.scaling_factor
    return x


@torch.no_grad()
def decode_images(model: LoopModel, x: torch.Tensor) -> np.ndarray:
    """Model space -> uint8 spectrograms (B, H, W), rounded as diffusers does."""
    if model.vqvae is not None:
        with model.autocast():
            x = model.vqvae.decode(x / model.vqvae.config.scaling_factor).sample.float()
    x = (x.float() / 2 + 0.5).clamp(0, 1)
    if x.shape[1] == 3:  # an RGB autoencoder: PIL's "L" weights
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return (x[:, 0] * 255).round().to(torch.uint8).cpu().numpy()


def columns_per_second(model: LoopModel) -> float:
    """Model-space columns per second of audio (latent models have fewer)."""
    return model.sample_shape[2] * model.mel.sample_rate / model.mel.x_res / model.mel.hop_length


def keep_columns(model: LoopModel, start_seconds: float = 0.0, end_seconds: float = 0.0,
                 width: int | None = None) -> torch.Tensor:
    """Bool mask over ``width`` model-space columns (default the model's): True where the input is kept
    (in/outpainting)."""
    width = width or model.sample_shape[2]
    per_second = columns_per_second(model)
    mask = torch.zeros(width, dtype=torch.bool)
    start, end = int(start_seconds * per_second), int(end_seconds * per_second)
    if start + end > width:
        raise SamplingError(f"mask of {start_seconds}s + {end_seconds}s is longer than the "
                            f"{width / per_second:.2f}s loop")
    mask[:start] = True
    if end:
        mask[width - end:] = True
    return mask.to(model.device)


def continuation_input(model: LoopModel, x: torch.Tensor, overlap_seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Outpainting to the right: the last ``overlap_seconds`` of ``x`` become the new start.

    Returns the input to keep and its column mask, for ``denoise(..., keep=...)``.
    """
    mask = keep_columns(model, start_seconds=overlap_seconds, width=x.shape[-1])
    overlap = int(mask.sum())
    shifted = torch.zeros_like(x)
    if overlap:
        shifted[..., :overlap] = x[..., -overlap:]
    return shifted, mask


# ------------------------------------------------------------------ denoising
@dataclass(frozen=True)
class Keep:
    """Known content that the sampler must keep: ``x0`` where ``columns`` is True."""

    x0: torch.Tensor
    columns: torch.Tensor


@torch.no_grad()
def _unet(model: LoopModel, x: torch.Tensor, t, labels: torch.Tensor | None) -> torch.Tensor:
    x = x.contiguous(memory_format=model.memory_format)
    # A tensor step stays on the device: int(t) of a GPU tensor would wait for the GPU every step.
    if isinstance(t, torch.Tensor):
        timestep = t.to(model.device, torch.long).reshape(-1).expand(x.shape[0])
    else:
        timestep = torch.full((x.shape[0],), int(t), device=model.device, dtype=torch.long)
    with model.autocast():
        if model.compiled_unet is None:
            return model.unet(x, timestep, class_labels=labels).sample.float()
        return _compiled_unet(model, x, timestep, labels)


def guided_prediction(model: LoopModel, x: torch.Tensor, t, labels: torch.Tensor | None) -> torch.Tensor:
    """The UNet's prediction, pushed toward the asked key by the model's key guidance: the loops that ask
    for a key run a second time as "any" key, and their prediction moves away from that one.
    ``t``: one timestep, or one per loop (as training draws them)."""
    guidance = model.key_guidance
    if guidance == 1.0 or labels is None or not model.is_key_conditional:
        return _unet(model, x, t, labels)
    unasked = model.any_key_labels(labels)
    asked = labels != unasked
    if not bool(asked.any()):
        return _unet(model, x, t, labels)
    if isinstance(t, torch.Tensor) and t.numel() > 1:
        t = torch.cat([t, t[asked]])
    both = _unet(model, torch.cat([x, x[asked]]), t, torch.cat([labels, unasked[asked]]))
    output, any_key = both[:x.shape[0]], both[x.shape[0]:]
    output[asked] = any_key + guidance * (output[asked] - any_key)
    return output


def _compiled_unet(model: LoopModel, x: torch.Tensor, timestep: torch.Tensor,
                   labels: torch.Tensor | None) -> torch.Tensor:
    """The compiled UNet on batches of exactly the size it was traced for: the last chunk is padded
    (by repeating its first item) and the padding's output dropped, so nothing recompiles."""
    size, outputs = model.compiled_batch, []
    for lo in range(0, x.shape[0], size):
        parts = [x[lo:lo + size], timestep[lo:lo + size], None if labels is None else labels[lo:lo + size]]
        real = parts[0].shape[0]
        if real < size:
            parts = [None if p is None else torch.cat([p, p[:1].expand(size - real, *p.shape[1:])]) for p in parts]
        chunk, steps, chunk_labels = parts
        # One layout every call, padded or not (a guard on strides would recompile).
        chunk, steps = chunk.contiguous(memory_format=model.memory_format), steps.contiguous()
        outputs.append(model.compiled_unet(chunk, steps, class_labels=chunk_labels).sample[:real].float())
    return torch.cat(outputs)


@torch.no_grad()
def denoise(model: LoopModel, seeds: Sequence[int], *, steps: int = 50, sampler: str = "ddim",
            eta: float = 0.0, class_labels: Sequence[int] | None = None, noise: torch.Tensor | None = None,
            start: torch.Tensor | None = None, strength: float = 1.0, keep: Keep | None = None,
            width: int | None = None, on_step: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run one batch of the reverse process; returns model-space samples (B, C, H, W).

    seeds        one per sample: its starting noise and its step noise.
    noise        starting noise to use instead of the seeds' draw (morphs, inverted loops).
    start        model-space input for variations: noised to ``strength`` and denoised from there
                 (strength 1 ignores it, 0 returns it unchanged).
    keep         known columns held to the input throughout (in/outpainting, continuation).
    width        model-space columns (W) of new samples (``canvas_width``); with noise, start or keep
                 given, theirs.
    """
    if not 0.0 <= strength <= 1.0:
        raise SamplingError(f"strength must be in 0..1, got {strength}")
    given = next((t for t in (noise, start, None if keep is None else keep.x0) if t is not None), None)
    generators = seed_generators(seeds)
    drawn = initial_noise(model, generators, width if given is None else given.shape[-1])
    noise = drawn if noise is None else noise.to(model.device, torch.float32)
    if noise.shape[0] != len(seeds):
        raise SamplingError(f"{noise.shape[0]} noise samples for {len(seeds)} seeds")
    scheduler = make_scheduler(model, sampler, steps)
    timesteps = scheduler.timesteps
    alphas_cumprod = alphas_cumprod_of(model)
    labels = None
    if model.is_class_conditional:
        labels = torch.as_tensor(list(class_labels) if class_labels is not None else [0] * len(seeds),
                                 device=model.device, dtype=torch.long)

    first = 0
    x = noise
    if start is not None and strength < 1.0:
        first = min(int(round(len(timesteps) * (1.0 - strength))), len(timesteps))
        if first == len(timesteps):
            return start.clone()
        x = add_noise(alphas_cumprod, start.to(model.device), noise, timesteps[first])
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(first)
    extra = {"eta": eta} if sampler == "ddim" else {}
    # The known columns are re-noised with the same draw the sample started from.
    for i in range(first, len(timesteps)):
        t = timesteps[i]
        model_output = guided_prediction(model, x, t, labels)
        x = scheduler.step(model_output, t, x, generator=generators, **extra).prev_sample
        if keep is not None:
            known = keep.x0 if i + 1 == len(timesteps) else add_noise(alphas_cumprod, keep.x0, noise, timesteps[i + 1])
            x = torch.where(keep.columns, known, x)
        if on_step is not None:
            on_step(1)
    return x


def split_prediction(model: LoopModel, x: torch.Tensor, output: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, epsilon) from the UNet's output at a timestep with cumulative alpha ``alpha``.

    Models predict epsilon (teticio's, livegen's trained ones), v (livegen's
    distilled students) or the clean sample itself.
    """
    kind = model.scheduler.config.get("prediction_type", "epsilon")
    a, s = math.sqrt(alpha), math.sqrt(1.0 - alpha)
    if kind == "epsilon":
        return (x - s * output) / a, output
    if kind == "v_prediction":
        return a * x - s * output, a * output + s * x
    if kind == "sample":
        return output, (x - a * output) / s
    raise SamplingError(f"{model.name}: unknown prediction_type {kind!r}")


@torch.no_grad()
def invert(model: LoopModel, x0: torch.Tensor, *, steps: int = 50, class_labels: Sequence[int] | None = None,
           on_step: Callable[[int], None] | None = None) -> torch.Tensor:
    """DDIM inversion: run the deterministic sampler backwards from a loop to its noise."""
    scheduler = make_scheduler(model, "ddim", steps)
    alphas_cumprod = alphas_cumprod_of(model)
    labels = None
    if model.is_class_conditional:
        labels = torch.as_tensor(list(class_labels) if class_labels is not None else [0] * x0.shape[0],
                                 device=model.device, dtype=torch.long)
    x = x0.to(model.device, torch.float32)
    timesteps = scheduler.timesteps.tolist()  # high to low; inversion climbs them from the bottom
    for i in reversed(range(len(timesteps))):
        # Step from the previous (less noisy) timestep of the schedule, where x lies, up to t.
        t = timesteps[i]
        a_prev = alphas_cumprod[timesteps[i + 1]].item() if i + 1 < len(timesteps) else scheduler.final_alpha_cumprod.item()
        a_t = alphas_cumprod[t].item()
        _, eps = split_prediction(model, x, _unet(model, x, t, labels), a_t)  # as the model reads x: at t
        x0_pred = (x - math.sqrt(1 - a_prev) * eps) / math.sqrt(a_prev)
        x = math.sqrt(a_t) * x0_pred + math.sqrt(1 - a_t) * eps
        if on_step is not None:
            on_step(1)
    return x


def generate(model: LoopModel, seeds: Sequence[int], *, batch_size: int = 8, noise: torch.Tensor | None = None,
             start: torch.Tensor | None = None, keep: Keep | None = None,
             class_labels: Sequence[int] | None = None, **options) -> torch.Tensor:
    """``denoise`` over any number of seeds, ``batch_size`` at a time; model-space output.

    Per-sample inputs (noise, start, keep.x0, class_labels) are split with the seeds,
    so the result does not depend on ``batch_size``.
    """
    seeds = list(seeds)
    if batch_size < 1:
        raise SamplingError(f"batch size must be at least 1, got {batch_size}")
    out = []
    for i in range(0, len(seeds), batch_size):
        part = slice(i, i + batch_size)
        out.append(denoise(
            model, seeds[part], **options,
            noise=None if noise is None else noise[part],
            start=None if start is None else start[part],
            keep=None if keep is None else Keep(keep.x0[part], keep.columns),
            class_labels=None if class_labels is None else list(class_labels)[part],
        ))
    return torch.cat(out) if out else torch.empty((0, *model.sample_shape))


@torch.no_grad()
def morph(model: LoopModel, noise_from: torch.Tensor, noise_to: torch.Tensor, alpha: float, *, steps: int = 50,
          class_labels: Sequence[int] | None = None, seeds: Sequence[int] | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A loop part way (``alpha``) between two loops, each given by the DDIM starting noise that makes it
    (a new loop's seed draw, or ``invert`` of any loop); returns (the loop, its starting noise).

    The noises are slerped (a straight blend of two draws is too quiet to be noise) and sampled back with
    DDIM, eta 0, which draws nothing from ``seeds``: the noise alone makes the loop again."""
    noise = slerp(noise_from.to(model.device), noise_to.to(model.device), alpha)
    seeds = list(seeds) if seeds is not None else [0] * noise.shape[0]
    return denoise(model, seeds, noise=noise, steps=steps, sampler="ddim", class_labels=class_labels), noise
