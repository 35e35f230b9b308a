"""Train the learnt key estimator (``livegen.loops.keynet``) on freshly rendered demo-corpus clips.

Every clip's sidecar knows its key; a share of the clips are drums alone, labelled no key. Clips are
rendered straight to features (no files), each genre in turn, from a seed no model's corpus used.
Training crops each clip to a loop's length (3 to 12 s) and moves it up or down by up to half an
octave, with the label moved along, so every key is seen in every register.

    python -m training key-net livegen/loops/key-net  # the shipped estimator: 2400 clips, 3000 steps, width 8
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 4242  # rendering: not the seed of any corpus a shipped model learnt from, nor bench/keys.py's
VALIDATION_SEED = 4343


@dataclass(frozen=True)
class KeyNetSettings:
    clips: int = 2400
    drums_only_share: float = 0.15
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-3
    width: int = 8
    validation_clips: int = 128
    seed: int = 0


def render_examples(clips: int, seed: int, drums_only_share: float, palette_cache: Path | None = None,
                    on_clip=None) -> tuple[np.ndarray, np.ndarray]:
    """(features (clips, BINS, frames) float16, classes (clips,)) of demo-corpus clips rendered now."""
    from livegen.loops.key import parse_key
    from livegen.loops.keynet import class_of, key_features

    from .corpus import GENRES, RATE, load_kits, render_clip, render_palette

    kits = load_kits()
    programs = sorted({p for g in GENRES.values() for p in (*g.bass_program, *g.chord_program)})
    palette = render_palette(programs, palette_cache or Path.home() / ".cache" / "livegen" / "palette.npz")
    features, classes = [], []
    for clip in range(clips):
        index = clip % len(GENRES)
        genre = list(GENRES.values())[index]
        rng = np.random.default_rng([seed, index, clip])
        tonal = bool(np.random.default_rng([seed, index, clip, 1]).random() >= drums_only_share)
        audio, meta = render_clip(genre, kits, palette, rng, tonal=tonal)
        features.append(key_features(audio, RATE).astype(np.float16))
        classes.append(class_of(parse_key(meta["key"]) if meta["key"] else None))
        if on_clip is not None:
            on_clip()
    return np.stack(features), np.asarray(classes, np.int64)


def _batch(features: np.ndarray, classes: np.ndarray, rng: np.random.Generator, size: int):
    import torch

    from livegen.loops.keynet import BINS_PER_OCTAVE, shift_class

    frames = features.shape[2]
    length = int(rng.integers(min(32, frames), frames + 1))
    picks = rng.integers(len(features), size=size)
    starts = rng.integers(frames - length + 1, size=size)
    shifts = rng.integers(-6, 6, size=size)  # semitones
    x = np.zeros((size, features.shape[1], length), np.float32)
    y = np.empty(size, np.int64)
    step = BINS_PER_OCTAVE // 12
    for row, (pick, start, shift) in enumerate(zip(picks, starts, shifts)):
        crop = features[pick, :, start:start + length].astype(np.float32)
        bins = shift * step
        if bins > 0:
            x[row, bins:] = crop[:-bins]
        elif bins < 0:
            x[row, :bins] = crop[-bins:]
        else:
            x[row] = crop
        y[row] = shift_class(int(classes[pick]), int(shift))
    return torch.from_numpy(x), torch.from_numpy(y)


def score(net, features: np.ndarray, classes: np.ndarray) -> dict:
    """MIREX-weighted score and exact share over whole clips, no-key clips scored by whether no key was read."""
    import torch

    from livegen.loops.key import mirex_score
    from livegen.loops.keynet import NO_KEY, key_of

    net.eval()
    with torch.inference_mode():
        predicted = torch.cat([net(torch.from_numpy(features[i:i + 64].astype(np.float32))).argmax(dim=1)
                               for i in range(0, len(features), 64)]).numpy()
    tonal = classes != NO_KEY
    weighted = [mirex_score(key_of(int(p)), key_of(int(c))) for p, c in zip(predicted[tonal], classes[tonal])]
    return {"mirex": float(np.mean(weighted)) if weighted else float("nan"),
            "exact": float(np.mean(predicted[tonal] == classes[tonal])) if tonal.any() else float("nan"),
            "no_key_right": float(np.mean(predicted[~tonal] == NO_KEY)) if (~tonal).any() else float("nan")}


def train_key_net(out: Path, settings: KeyNetSettings, palette_cache: Path | None = None, log=print) -> dict:
    """Render, train, write the estimator to ``out``; returns the validation figures."""
    import torch

    from livegen.loops.keynet import KeyNet, save_key_net

    started = time.monotonic()
    features, classes = render_examples(settings.clips, SEED, settings.drums_only_share, palette_cache)
    held_features, held_classes = render_examples(settings.validation_clips, VALIDATION_SEED,
                                                  settings.drums_only_share, palette_cache)
    log(f"rendered {len(features)} training and {len(held_features)} validation clips "
        f"in {time.monotonic() - started:.0f} s")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    net = KeyNet(width=settings.width)
    optimiser = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, total_steps=settings.steps,
                                                   pct_start=0.1)
    for step in range(1, settings.steps + 1):
        net.train()
        x, y = _batch(features, classes, rng, settings.batch)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 200 == 0 or step == settings.steps:
            figures = score(net, held_features, held_classes)
            log(f"step {step}: loss {loss.item():.3f}, validation MIREX {figures['mirex']:.3f}, "
                f"exact {figures['exact']:.3f}, drums alone read as no key {figures['no_key_right']:.3f}")
    figures = score(net, held_features, held_classes)
    save_key_net(net.eval(), out, {"training": {**settings.__dict__, "render_seed": SEED,
                                                "validation_seed": VALIDATION_SEED,
                                                "minutes": round((time.monotonic() - started) / 60, 1)},
                                   "validation": figures})
    return figures
