"""How good is a model: its loops' sound beside the ceiling, Frechet distance, sampler fidelity.

* Sound of the loops, per genre (``quality``): transient sharpness, tonal
  peak share and beat steadiness of loops made as the live worker makes
  them, beside held-out slices through the same path (the ceiling) and
  their original audio (the corpus). See ``quality``.
* Frechet distance between Gaussian fits of a fixed audio embedding of
  generated loops and of held-out real loops, printed beside the distance
  between two halves of the real loops (the floor) and an untrained model's
  (the far end), so it reads as a ratio. No embedding network can be
  downloaded here, so the embedding is fixed by hand: per clip, mean and
  spread of 20 MFCCs, of 7 spectral-contrast bands, and the onset
  envelope's autocorrelation at 24 lags (0.1-1.2 s): timbre and rhythm.
* Sampler fidelity: distance of an N-step sample to a 1000-step sample from
  the same noise (relative L2 of the spectrogram images).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HOP = 512


def embed(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The fixed 78-number description of one clip (see the module docstring)."""
    import librosa

    from .quality import autocorrelation

    mfcc = librosa.feature.mfcc(y=audio, sr=sample_rate, n_mfcc=20, hop_length=HOP)
    contrast = librosa.feature.spectral_contrast(y=audio, sr=sample_rate, hop_length=HOP, n_bands=6)
    ac = autocorrelation(librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=HOP))
    lags = np.linspace(0.1, 1.2, 24) * sample_rate / HOP
    rhythm = np.interp(lags, np.arange(len(ac)), ac)
    return np.concatenate([mfcc.mean(1), mfcc.std(1), contrast.mean(1), contrast.std(1), rhythm])


def relative_distance(a, reference) -> float:
    """Sampler fidelity: mean L2 distance of samples (B, ...) to their references over the references' mean norm."""
    return float((a - reference).flatten(1).norm(dim=1).mean() / reference.flatten(1).norm(dim=1).mean().clamp_min(1e-12))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of embeddings (rows)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@dataclass
class EvalReport:
    frechet_generated: float
    frechet_real_halves: float
    frechet_untrained: float
    quality: dict  # genre -> quality.GenreQuality
    fidelity: dict  # steps -> distance to the reference sample
    settings: dict

    def quality_markdown(self) -> str:
        from .quality import quality_table

        header, rows = quality_table(self.quality)
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                         ["| " + " | ".join(row) + " |" for row in rows])

    def table(self) -> str:
        lines = [self.quality_markdown(), "", "| figure | value |", "|---|---|",
                 f"| Frechet distance, generated vs held-out real | {self.frechet_generated:.1f} |",
                 f"| Frechet distance, real vs real (floor) | {self.frechet_real_halves:.1f} |",
                 f"| Frechet distance, untrained model vs real (far end) | {self.frechet_untrained:.1f} |"]
        for steps, distance in self.fidelity.items():
            lines.append(f"| sampler fidelity, {steps} steps vs {self.settings['reference_steps']} "
                         f"(relative L2) | {distance:.3f} |")
        return "\n".join(lines)


def evaluate(model_dir: Path, data_dir: Path, *, count: int = 32, steps: int | None = None,
             sampler: str | None = None, eta: float | None = None, fidelity_steps: tuple[int, ...] = (10, 20, 50),
             reference_steps: int = 1000, fidelity_count: int = 2, seed: int = 1000, device=None,
             loops_per_genre: int = 8, bpm: float | None = None, corpus_dir: Path | None = None,
             keys: list[str] | None = None, log=lambda message: None) -> EvalReport:
    """All figures of a model. ``steps``/``sampler``/``eta`` default to the model's own (livegen.json);
    ``loops_per_genre`` loops of each genre are measured for their sound, at ``bpm`` (default: each
    genre preset's tempo); ``corpus_dir``: the audio the data set was made from (default: as recorded
    by ``prepare``); ``keys``: a key-conditioned model's loops ask for these keys in turn."""
    from livegen.audio import MelCodec
    from livegen.diffusion import decode_images, generate, load_model

    from .prepare import load_images
    from .quality import asked_labels, measure_quality

    model = load_model(model_dir, device)
    if keys and not model.is_key_conditional:
        raise ValueError(f"{model_dir}: not key-conditioned (no key_names in livegen.json), so it cannot be asked "
                         f"for keys {keys}")
    steps = steps or int(model.extra.get("default_steps", 50))
    sampler = sampler or str(model.extra.get("default_sampler", "ddim"))
    eta = float(model.extra.get("default_eta", 0.0)) if eta is None else eta
    quality = measure_quality(model, data_dir, count=loops_per_genre, steps=steps, sampler=sampler, eta=eta, seed=seed,
                              keys=keys, corpus_dir=corpus_dir, bpm=bpm, log=log)

    codec = MelCodec(model.mel)
    rate = model.mel.sample_rate
    images, _, _ = load_images(data_dir, split="heldout")
    if len(images) < 4:
        raise ValueError(f"{data_dir}: only {len(images)} held-out slices; eval needs at least 4")
    rng = np.random.default_rng(seed)
    real_index = rng.choice(len(images), size=min(len(images), 2 * count), replace=False)
    real_embeddings = np.stack([embed(a, rate) for a in codec.images_to_audio(images[real_index])])

    def embeddings_of(m, n):
        seeds = list(range(seed, seed + n))
        # Genres in turn (and the asked keys, for a key-conditioned model).
        labels = None
        if m.is_class_conditional:
            by_genre = {g: asked_labels(m, g, n, keys) for g in range(len(m.class_names))}
            labels = [by_genre[i % len(m.class_names)][i] for i in range(n)]
        images = decode_images(m, generate(m, seeds, steps=steps, sampler=sampler, eta=eta, class_labels=labels))
        return np.stack([embed(a, rate) for a in codec.images_to_audio(images)])

    generated_embeddings = embeddings_of(model, count)
    untrained_embeddings = embeddings_of(new_model_like(model), count)
    half = len(real_embeddings) // 2

    fidelity = {}
    if fidelity_steps:
        from livegen.diffusion.sampling import initial_noise, seed_generators

        seeds = list(range(seed, seed + fidelity_count))
        noise = initial_noise(model, seed_generators(seeds))
        labels_f = asked_labels(model, 0, len(seeds), keys)
        reference = generate(model, seeds, steps=reference_steps, sampler="ddim", noise=noise, class_labels=labels_f)
        for n in fidelity_steps:
            x = generate(model, seeds, steps=n, sampler=sampler, noise=noise, class_labels=labels_f)
            fidelity[n] = relative_distance(x, reference)
    return EvalReport(
        frechet_generated=frechet_distance(generated_embeddings, real_embeddings[half:]),
        frechet_real_halves=frechet_distance(real_embeddings[:half], real_embeddings[half:]),
        frechet_untrained=frechet_distance(untrained_embeddings, real_embeddings[half:]),
        quality=quality, fidelity=fidelity,
        settings={"model": str(model_dir), "data": str(data_dir), "count": count, "steps": steps,
                  "sampler": sampler, "eta": eta, "reference_steps": reference_steps, "seed": seed,
                  "loops_per_genre": loops_per_genre, "bpm": bpm, "keys": keys},
    )


def new_model_like(model):
    """An untrained model of the same shape and schedule: the eval's ceiling."""
    import torch
    from diffusers import UNet2DModel

    from livegen.diffusion.checkpoint import LoopModel

    torch.manual_seed(0)
    unet = UNet2DModel.from_config(model.unet.config)
    fresh = LoopModel(unet=unet, scheduler=model.scheduler, mel=model.mel, vqvae=model.vqvae,
                      class_names=model.class_names, key_names=model.key_names)
    return fresh.to(model.device, "fp32" if model.dtype == torch.float32 else "auto")


def report_dict(report: EvalReport) -> dict:
    """The figures as plain data (the listening page's sound clips left out)."""
    figures = {k: v for k, v in report.__dict__.items() if k != "quality"}
    figures["quality"] = {genre: {k: v for k, v in q.__dict__.items() if k != "examples"}
                          for genre, q in report.quality.items()}
    return figures


def write_report(report: EvalReport, path: Path) -> None:
    path.write_text(json.dumps(report_dict(report), indent=2, sort_keys=True, default=str) + "\n")


def write_listening_page(report: EvalReport, out_dir: Path) -> Path:
    """The listening page of an eval: per genre a few generated loops and ceiling slices, each with its
    spectrogram and a player, under the figures table. Returns the page's path."""
    from .quality import FIGURES, quality_table
    from .report import Clip, write_listening_page as write_page

    def clip(example) -> Clip:
        note = ", ".join(f"{name} {example.figures[name]:.2f}" for name in FIGURES)
        return Clip(example.label, example.image, example.audio, example.sample_rate, note)

    sections = {}
    for genre, q in report.quality.items():
        sections[f"{genre}: generated loops"] = [clip(e) for e in q.examples.get("generated", [])]
        sections[f"{genre}: ceiling (held-out slices through the same loop path)"] = [
            clip(e) for e in q.examples.get("ceiling", [])]
    header, rows = quality_table(report.quality)
    settings = report.settings
    title = f"{Path(settings['model']).name}: {settings['sampler']} {settings['steps']} steps"
    return write_page(Path(out_dir), title, rows, header, sections)
