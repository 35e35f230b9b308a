"""Offline loop rendering: model -> spectrograms -> loops, a batch at a time.

The same chain the live worker runs (``loops_from_images``), without the
engine, at the codec's full Griffin-Lim iterations: ``livegen generate`` uses
it to write loops to files. ``raw`` inverts whole slices, uncut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from .audio import MelCodec
from .diffusion import LoopModel, canvas_width, decode_images, generate
from .loops import Loop, LoopError, bar_choices, loops_from_images, raw_loop, slice_seconds
from .loops.key import fit_key, parse_key, with_key
from .loops.loudness import DEFAULT_TARGET_LUFS, level
from .loops.prep import CANVASES


def loop_canvas(model: LoopModel, canvas: str, bars: int, bpm: float | None, tempo_hint: float | None) -> int:
    """Model-space width to draw a loop of up to ``bars`` bars at: the model's own ("native"), or wide
    enough for them at the tempo ("fit": ``canvas_width`` of ``slice_seconds``). A grid model's own width
    is its bars at any tempo."""
    if canvas not in CANVASES:
        raise ValueError(f"canvas must be one of {', '.join(CANVASES)}, not {canvas!r}")
    fit = canvas == "fit" and model.grid is None
    return canvas_width(model, slice_seconds(bars, bpm, tempo_hint) if fit else None)


@dataclass(frozen=True)
class RenderSettings:
    steps: int = 50
    sampler: str = "ddim"
    eta: float = 0.0
    batch_size: int = 8
    genre: str | None = None  # class label name or index, for class-conditional models
    key: str | None = None  # Camelot code: a key-conditioned model is asked for it, and a loop out of it is moved
    bpm: float | None = None  # stretch to this tempo; None keeps the detected one
    tempo_hint: float | None = None  # without bpm: the genre's likely tempo (beat finding's prior, octave fold)
    raw: bool = False  # keep the whole slice, uncut
    bars: int = 4  # the longest loop, in bars (1, 2 or 4); a slice too short for it gives fewer
    sample_rate: int | None = None  # output rate; None keeps the model's
    canvas: str = "fit"  # "fit": draw slices wide enough for the bars at the tempo (canvas_width); "native"
    loudness: float | None = DEFAULT_TARGET_LUFS  # each loop levelled to this integrated LUFS; None: peak only


@dataclass(frozen=True)
class Rendered:
    seed: int
    image: np.ndarray  # uint8 spectrogram
    loop: Loop | None
    error: str | None = None  # why no loop could be cut


def render(model: LoopModel, seeds: Sequence[int], settings: RenderSettings,
           on_step: Callable[[int], None] | None = None) -> Iterator[Rendered]:
    """Yield one ``Rendered`` per seed, in order, a batch at a time."""
    codec = MelCodec(model.mel)
    label = model.class_label(settings.genre, settings.key)  # models without keys ignore the key
    width = loop_canvas(model, "native" if settings.raw else settings.canvas, settings.bars, settings.bpm,
                        settings.tempo_hint)
    seeds = list(seeds)
    for i in range(0, len(seeds), settings.batch_size):
        batch = seeds[i:i + settings.batch_size]
        x = generate(model, batch, steps=settings.steps, sampler=settings.sampler, eta=settings.eta,
                     batch_size=settings.batch_size, on_step=on_step, width=width,
                     class_labels=None if label is None else [label] * len(batch))
        images = decode_images(model, x)
        if settings.raw:
            loops = []
            for clip in codec.images_to_audio(images, device=model.device):
                try:
                    loops.append(raw_loop(clip, model.mel.sample_rate, out_rate=settings.sample_rate))
                except LoopError as err:
                    loops.append(err)
        else:
            loops = loops_from_images(images, model.mel, bpm=settings.bpm, tempo_hint=settings.tempo_hint,
                                      out_rate=settings.sample_rate, device=model.device,
                                      bar_choices=bar_choices(settings.bars), grid=model.grid)
        for seed, image, loop in zip(batch, images, loops):
            if isinstance(loop, LoopError):
                yield Rendered(seed, image, None, str(loop))
            else:
                yield Rendered(seed, image, _levelled_and_keyed(loop, settings))


def _levelled_and_keyed(loop: Loop, settings: RenderSettings) -> Loop:
    """At the asked loudness, its key estimated, and moved (by the fewest semitones, at most
    ``MOST_SEMITONES``) into a key that mixes with ``settings.key`` where it is out of it."""
    def finish(made):
        return with_key(made if settings.loudness is None else level(made, settings.loudness))

    loop = finish(loop)
    if settings.key is not None:
        moved = fit_key(loop, parse_key(settings.key))
        loop = loop if moved is loop else finish(moved)
    return loop


def loop_filename(model_name: str, seed: int, settings: RenderSettings, loop: Loop) -> str:
    """A name that says where the loop came from and what it is: model, seed, steps, sampler, tempo, bars, key."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_name).strip("-") or "model"
    tempo = f"{loop.bpm:.1f}bpm-{loop.bars}bars" if loop.bars else "raw"
    genre = f"_{settings.genre}" if settings.genre is not None else ""
    key = f"_{loop.key or 'nokey'}" if loop.key_confidence is not None else ""
    return f"{safe}{genre}_seed{seed}_{settings.sampler}{settings.steps}_{tempo}{key}"
