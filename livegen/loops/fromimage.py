"""From generated spectrogram images straight to stage-ready loops: no Rubber Band, less Griffin-Lim.

    uint8 image --onset envelope of the dB image--> beat grid --plan_cut--> whole bars
      --the piece's mel frames resampled along time to the target tempo (+ context frames)-->
      --Griffin-Lim on those frames only (batched by frame count)--> --resample--> --finish_loop--> Loop

``make_loop`` finds the beat in decoded audio, inverts all 256 frames and
then stretches with Rubber Band. Here the beat grid comes from the image
itself, only the frames the loop needs are inverted, and the stretch happens
before the inversion: linear interpolation of mel power between frames moves
every frame to where the target tempo puts it, and Griffin-Lim builds a phase
for the stretched magnitudes. (The codec's window spans four hops, so
neighbouring frames overlap by 75% and interpolating between them smears
little.) The cut, the seam and the normalisation are ``plan_cut`` and
``finish_loop``, as in ``make_loop``.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from .beats import track_beats
from .grid import DEFAULT_BPM, Grid, grid_cut
from .prep import (BAR_LENGTHS, BeatGrid, Cut, Loop, LoopError, finish_loop, fit_grid, plan_cut, refine_grid,
                   resample)

# Griffin-Lim iterations for the live worker: half the codec's 32, for half the time. Spectral
# convergence of 2-bar loops at 128 BPM (lower is better; bench/pipeline.py prints it): 62 generated
# lite-genres images 0.1789 at 16 against 0.1756 at 32 (+1.9%; 12: +2.7%, 8: +5.6%); 64 held-out
# data-set images 0.1403 against 0.1372 (+2.3%; 12: +4.2%). Offline rendering keeps the codec's n_iter.
LIVE_ITERATIONS = 16
# Frames inverted beyond each end of the piece, so Griffin-Lim's edges (where a frame has fewer
# overlapping neighbours) fall outside the loop: convergence of the loop's first and last 6 frames
# on generated images 0.176 with none, 0.166 with 2, 0.164 with 4, 0.166 with 8 (16 iterations).
CONTEXT_FRAMES = 4
POOL_CHUNK = 4  # images handed to a prep process at a time (``loops_from_images``'s pool)


def check_image(image, config) -> np.ndarray:
    """A spectrogram image (uint8, or floats in 0..255), (y_res, frames), as float32; LoopError if unusable."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.shape[0] != config.y_res or image.shape[1] < 2:
        raise LoopError(f"expected a ({config.y_res}, frames) spectrogram image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise LoopError("image contains NaN or infinity")
    if image.max() - image.min() < 1.0:  # one level everywhere: silence (or a flat roar) has no beat
        raise LoopError("image is silent: no level changes in it")
    return image


def onset_envelope(image: np.ndarray, config) -> np.ndarray:
    """Spectral flux of the image in dB: the mean rise over bands into each frame (frame 0: 0)."""
    db = np.asarray(image, dtype=np.float64) * (config.top_db / 255.0)
    return np.concatenate([[0.0], np.maximum(0.0, np.diff(db, axis=1)).mean(axis=0)])


def image_beat_grid(image: np.ndarray, config, *, expected_bpm: float = 120.0, min_beats: int = 5) -> BeatGrid:
    """The beat grid of a spectrogram image, in samples at the codec's rate (as decoded audio would have it).

    The beat tracker (``beats.track_beats``) on the image's onset envelope, the same line fit as
    ``find_beat_grid``, then period and phase refined on the same envelope in
    steps of 1/20 frame. Measured on drum patterns at 84-174 BPM encoded to
    images (default codec, n_fft 2048, hop 512): tempo within 0.13%, and the
    flux peaks one frame before the attack (-22 ms, sd 2 ms), so the grid is
    moved a quarter window (one hop) later.
    """
    envelope = onset_envelope(image, config)
    hop = config.hop_length
    beats = track_beats(envelope, config.sample_rate / hop, expected_bpm) * hop  # in samples
    period, start, count = fit_grid(beats, min_beats)
    period, start = refine_grid(envelope, hop, period, start, step=0.05)
    return BeatGrid(start=float(start + config.n_fft / 4), period=float(period), count=count)


def frame_count(cut: Cut, config, seam_seconds: float, context: int = CONTEXT_FRAMES) -> int:
    """Frames to invert for a cut: the body at the target tempo, the seam margin, context each side.

    It depends on the target length only (not on where the bars lie in the
    image), so loops of one length at one tempo form one batch. The margin
    is at most ``seam_seconds`` of source, stretched by at most sqrt(2) (the
    tempo is folded to within that of the target).
    """
    body = cut.target_frames * config.sample_rate / cut.out_rate
    margin = seam_seconds * config.sample_rate * math.sqrt(2.0)
    return int(math.ceil((body + margin) / config.hop_length)) + 2 * context + 1


def stretch_frames(mel_power, cut: Cut, hop: int, frames: int, context: int = CONTEXT_FRAMES, wrap: bool = False):
    """(mels, source frames) mel power -> (mels, ``frames``) with the piece at the target tempo.

    Inverted at ``hop``, output sample ``context * hop`` is source sample
    ``cut.lo`` and each output second covers ``cut.factor`` source seconds.
    Beyond the image's edges the edge frame is repeated, or with ``wrap`` the
    image goes round (a grid image: its first frame follows its last).
    """
    import torch

    count = mel_power.shape[-1]
    positions = cut.lo / hop + (torch.arange(frames, dtype=torch.float64) - context) * cut.factor
    if wrap:
        positions = positions % count
        below = positions.floor().long() % count
        above = (below + 1) % count
    else:
        positions = positions.clamp(0, count - 1)
        below = positions.floor().long().clamp(max=count - 2)
        above = below + 1
    frac = (positions - below).float()
    return mel_power[:, below] * (1 - frac) + mel_power[:, above] * frac


def plan_loop(image, config, bpm: float | None, tempo_hint: float | None, out_rate: int, seam_seconds: float,
              options: dict, grid: Grid | None = None) -> tuple[Cut, np.ndarray] | LoopError:
    """Stage 1, per image, on the CPU: beat grid (found, or the model's ``grid``), cut, and the piece's mel
    power at the target tempo (mels, ``frame_count`` frames); or the LoopError that says why there is no
    loop in it."""
    from ..audio import MelCodec

    try:
        image = check_image(image, config)
        if grid is not None:
            cut = grid_cut(grid, image.shape[1], config, bpm=bpm or tempo_hint or DEFAULT_BPM, out_rate=out_rate,
                           bar_choices=options.get("bar_choices", BAR_LENGTHS), seam_seconds=seam_seconds)
        else:
            beats = image_beat_grid(image, config, expected_bpm=bpm or tempo_hint or 120.0)
            length = (image.shape[1] - 1) * config.hop_length  # what inverting the whole image gives
            cut = plan_cut(length, config.sample_rate, beats, bpm=bpm, tempo_hint=tempo_hint, out_rate=out_rate,
                           seam_seconds=seam_seconds, **options)
    except LoopError as err:
        return err
    frames = frame_count(cut, config, seam_seconds)
    power = stretch_frames(MelCodec(config).image_to_mel_power(image), cut, config.hop_length, frames,
                           wrap=grid is not None)
    return cut, power.numpy()


def finish_clip(clip: np.ndarray, cut: Cut, sample_rate: int, start: int) -> Loop | LoopError:
    """Stage 3, per loop, on the CPU: the inverted piece at ``sample_rate`` to the output rate (with its
    context frames, so the resampler's edges fall outside the loop too), then from output sample
    ``start`` on cut, seamed and normalised."""
    try:
        return finish_loop(resample(clip, sample_rate, cut.out_rate)[start:], cut)
    except LoopError as err:
        return err


def loops_from_images(images: Sequence, config, *, bpm: float | None = None, tempo_hint: float | None = None,
                      out_rate: int | None = None,
                      device=None, n_iter: int | None = None, seed: int = 0, seam_seconds: float = 0.01,
                      timings: dict[str, float] | None = None, pool=None, grid: Grid | None = None,
                      **options) -> list[Loop | LoopError]:
    """One ``Loop`` (or the ``LoopError`` that says why not) per spectrogram image, in order.

    Loops are exactly ``bars * beats_per_bar * 60 / bpm`` seconds at
    ``out_rate`` (default: the codec's rate), seamless, peak 0.9; without
    ``bpm`` each keeps its detected tempo, folded by octaves toward
    ``tempo_hint`` when given (a genre's likely tempo). Griffin-Lim runs ``n_iter``
    iterations (default: the codec's) on ``device``, one batch per frame
    count; a loop comes out the same in any batch. ``options``: those of
    ``plan_cut`` (bar_choices, beats_per_bar, min_bpm, max_bpm). ``timings``,
    when given, gets the seconds of each stage added: "grid" (beat grid, cut,
    stretched frames), "griffin-lim", "finish" (resample, seam). ``pool``: an
    executor (``concurrent.futures``) that runs the per-image CPU stages (all
    but Griffin-Lim) in parallel; the loops come out the same. ``grid``: the
    images are a grid model's (``grid.py``): whole bars from frame 0, no beat
    finding; without ``bpm`` they play at ``tempo_hint``, else 120 BPM.
    """
    import torch

    from ..audio.griffinlim import GriffinLim

    out_rate = out_rate or config.sample_rate
    if pool is None:
        each = map
    else:  # a few images per message to a prep process: fewer round trips through its queue
        def each(stage, *arguments):
            return pool.map(stage, *arguments, chunksize=POOL_CHUNK)
    count = len(images)
    clock = _Clock(timings)
    planned = list(each(plan_loop, images, *_repeat(count, config, bpm, tempo_hint, out_rate, seam_seconds,
                                                     options, grid)))
    results: list[Loop | LoopError | None] = [p if isinstance(p, LoopError) else None for p in planned]
    groups: dict[int, list[int]] = {}  # frames -> the images whose pieces have that many
    for i, plan in enumerate(planned):
        if not isinstance(plan, LoopError):
            groups.setdefault(plan[1].shape[-1], []).append(i)
    clock.lap("grid")

    inverter = GriffinLim.for_config(config, device=device)
    start = int(round(CONTEXT_FRAMES * config.hop_length * out_rate / config.sample_rate))
    for members in groups.values():
        power = torch.from_numpy(np.stack([planned[i][1] for i in members])).to(inverter.device)
        audio = inverter(power, n_iter=n_iter or config.n_iter, seed=seed).cpu().numpy()
        clock.lap("griffin-lim")
        cuts = [planned[i][0] for i in members]
        finished = each(finish_clip, list(audio), cuts, *_repeat(len(members), config.sample_rate, start))
        for i, loop in zip(members, finished):
            results[i] = loop
        clock.lap("finish")
    return results


def _repeat(count: int, *values) -> list[list]:
    """Each value as a list of ``count`` (map's extra arguments)."""
    return [[value] * count for value in values]


class _Clock:
    """Adds the seconds since the last lap to ``timings[stage]`` (does nothing without a dict)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now
