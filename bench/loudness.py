"""Loudness of the shipped models' loops, and what each levelling target costs at the live mixer.

Loops come out of loop prep at one peak (0.9) and so at many loudnesses. For each target, every
loop is levelled to it and played through the live mixer (``livegen.engine.mixer.Mixer``, its
default master gain and limiter) for two passes; measured on the mixer's output:

    spread LU         integrated loudness, loudest loop minus quietest: what a launch can jump by
    limiter dB        mean gain the limiter took off (output loudness without it minus with it)
    limited share     share of 256-frame blocks the limiter held more than 1 dB down

    .venv/bin/python bench/loudness.py --loops 16
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from benchkit import machine_header, markdown_table, progress, publish, use_checkout

use_checkout()

from livegen.engine.mixer import Launch, Mixer, Voice, equal_power_fade  # noqa: E402
from livegen.loops.loudness import integrated_loudness, level, loop_loudness  # noqa: E402
from livegen.presets import load_genre  # noqa: E402
from livegen.render import RenderSettings, render  # noqa: E402

RATE = 48000
BLOCK = 256
GENRES = ("techno", "house", "hiphop", "breaks")
DEFAULTS = Mixer(RATE)  # the live mixer's master gain and limiter ceiling, as the engine starts it


def make_loops(genre: str, count: int, bpm: float) -> list:
    from livegen.diffusion.checkpoint import load_model

    preset = load_genre(genre)
    model = load_model(preset.model, device="cpu")
    settings = RenderSettings(steps=preset.steps, sampler=preset.sampler, eta=preset.eta, batch_size=8,
                              genre=preset.label, bpm=bpm, tempo_hint=preset.tempo_hint, sample_rate=RATE,
                              loudness=None)
    return [item.loop for item in render(model, range(1000, 1000 + count), settings) if item.loop is not None]


def through_mixer(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the mixer's stereo output, the limiter's gain per block) for two passes of a loop."""
    mixer = Mixer(RATE, channels=2, max_block=BLOCK)
    mixer.pending = Launch(Voice(audio, 1), 0, equal_power_fade(0))
    blocks, gains = [], []
    out = np.zeros((BLOCK, 2), np.float32)
    for _ in range(2 * len(audio) // BLOCK):
        mixer.render(out)
        blocks.append(out.copy())
        gains.append(mixer._limit)
    return np.concatenate(blocks), np.array(gains)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", type=int, default=16, help="loops a genre")
    parser.add_argument("--bpm", type=float, default=128.0)
    parser.add_argument("--targets", type=float, nargs="+", default=[-14.0, -16.0, -18.0, -20.0, -23.0])
    parser.add_argument("--output", default="loudness.md")
    args = parser.parse_args()

    loops = {}
    for genre in GENRES:
        loops[genre] = make_loops(genre, args.loops, args.bpm)
        measured = [loop_loudness(loop.audio, RATE) for loop in loops[genre]]
        progress(f"{genre}: {len(measured)} loops at peak 0.9, {min(measured):.1f} to {max(measured):.1f} LUFS")
    every = [loop for genre in GENRES for loop in loops[genre]]

    rows = []
    for target in [None, *args.targets]:
        output_lufs, taken, limited, peaks = [], [], [], []
        for loop in every:
            audio = loop.audio if target is None else level(loop, target).audio
            out, gains = through_mixer(audio)
            ideal = np.repeat(np.tile(audio, 2)[:len(out), None], 2, axis=1) * np.float32(DEFAULTS.gain)
            output_lufs.append(integrated_loudness(out, RATE))
            taken.append(integrated_loudness(ideal, RATE) - output_lufs[-1])
            limited.append(np.mean(gains < 10 ** (-1 / 20)))
            peaks.append(20 * np.log10(np.abs(audio).max()))
        output_lufs = np.array(output_lufs)
        rows.append(["off (peak 0.9)" if target is None else f"{target:g}",
                     f"{np.median(output_lufs):.1f}", f"{output_lufs.max() - output_lufs.min():.1f}",
                     f"{np.percentile(output_lufs, 95) - np.percentile(output_lufs, 5):.1f}",
                     f"{max(peaks):+.1f}", f"{np.mean(taken):.2f}", f"{max(taken):.2f}", f"{100 * np.mean(limited):.0f}%"])
        progress(" | ".join(rows[-1]))

    text = machine_header("Loudness levelling at the live mixer", [
        f"loops: the shipped genre presets, {args.loops} a genre (seeds 1000-), at {args.bpm:g} BPM, "
        f"{len(every)} in all; each levelled (as heard on a stereo pair), then two passes through the mixer (master gain "
        f"{DEFAULTS.gain:g}, limiter ceiling {DEFAULTS.ceiling:g})",
        "output LUFS: integrated loudness of the mixer's output (median over loops); spread: loudest minus "
        "quietest; 5-95%: the same between the 5th and 95th percentiles",
        "peak: the levelled loop's highest peak (dBFS, before the master gain); limiter dB: what the limiter "
        "took off the output's loudness (mean, worst); limited: share of blocks held more than 1 dB down",
    ]) + "\n\n" + markdown_table(
        ["target LUFS", "output LUFS", "spread LU", "5-95% LU", "highest peak dBFS", "limiter dB (mean)",
         "limiter dB (worst)", "limited"], rows)
    publish(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
