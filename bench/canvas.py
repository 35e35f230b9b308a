"""Drawing slices wider than the model's width: what the "fit" canvas costs, gives, and does to the loops.

The UNet is convolutional, so it can draw a slice of any width it takes (a
multiple of 2^(down blocks - 1) columns). The worker's "fit" canvas draws each
slice just wide enough for the loop length at the set's tempo
(``render.loop_canvas``), so a 4-bar loop at 128 BPM is 4 bars (7.5 s), where
the model's own 5.94 s slice holds only 2. Two parts, each canvas side by side
in one run:

1. The shipped default model, each genre at its preset's tempo (the middle
   of its range), ``--count`` seeds: seconds of finished 4-bar-max loop audio
   per second of work (sampling + the live image path, batch ``--batch``), and
   the eval's quality figures on the whole slices (``training/eval.py``: the
   Frechet distance of its audio embedding to held-out real slices of
   ``--data``, with the distance between two halves of the real ones as the
   floor, and beat steadiness per genre).
2. A model of teticio's published size (113.7M, random weights, one step as
   a distilled student would run), batch 1 on the CPU, at 128 BPM: one pass
   plus the image path on a drum pattern encoded to an image of the same width
   (so the cut is real), per finished loop: the 1.5x real-time target.

    .venv/bin/python bench/canvas.py --data /work/data-lite
    .venv/bin/python bench/canvas.py --skip-published      # part 1 only
"""

from __future__ import annotations

import argparse

import numpy as np
from benchkit import machine_header, markdown_table, median, progress, publish, set_threads, timed, use_checkout

use_checkout()

from livegen.audio import MelCodec  # noqa: E402
from livegen.diffusion import decode_images, generate, load_model  # noqa: E402
from livegen.diffusion.architectures import new_model  # noqa: E402
from livegen.loops import LoopError, bar_choices, loops_from_images  # noqa: E402
from livegen.loops.fromimage import LIVE_ITERATIONS  # noqa: E402
from livegen.loops.prep import CANVASES  # noqa: E402
from livegen.presets import load_genre  # noqa: E402
from livegen.render import loop_canvas  # noqa: E402

OUT_RATE = 48000
GENRES = ("techno", "house", "hiphop", "breaks")
BARS = 4
PUBLISHED_BPM = 128.0


def finished_loops(model, images, bpm: float, tempo_hint: float | None):
    """(loops made, their audio seconds, seconds the image path took) for uint8 images at ``bpm``."""
    seconds, loops = timed(loops_from_images, images, model.mel, bpm=bpm, tempo_hint=tempo_hint, out_rate=OUT_RATE,
                           device=model.device, n_iter=LIVE_ITERATIONS, bar_choices=bar_choices(BARS))
    made = [loop for loop in loops if not isinstance(loop, LoopError)]
    return made, sum(loop.seconds for loop in made), seconds


# ------------------------------------------------------- part 1: the default model
def default_model_rows(args) -> tuple[list[list], list[list], str]:
    from training.eval import embed, frechet_distance
    from training.quality import beat_steadiness
    from training.prepare import load_images

    presets = {name: load_genre(name) for name in GENRES}
    model = load_model(presets[GENRES[0]].model, "cpu")
    codec = MelCodec(model.mel)
    rate = model.mel.sample_rate
    real_images, real_labels, real_genres = load_images(args.data, split="heldout")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(real_images), size=min(len(real_images), args.count * len(GENRES)), replace=False)
    real_audio = codec.images_to_audio(real_images[pick])
    real_embeddings = np.stack([embed(a, rate) for a in real_audio])
    half = len(real_embeddings) // 2
    floor = frechet_distance(real_embeddings[:half], real_embeddings[half:])

    speed_rows, quality_rows = [], []
    embeddings = {canvas: [] for canvas in CANVASES}
    for name, preset in presets.items():
        label = model.class_label(preset.label)
        bpm = preset.tempo_hint
        real_steady = [beat_steadiness(a, rate) for a, g in zip(real_audio, real_labels[pick])
                       if real_genres[g] == name]
        steady = {}
        for canvas in CANVASES:
            progress(f"{name} at {bpm:g} BPM, {canvas} canvas")
            width = loop_canvas(model, canvas, BARS, bpm, preset.tempo_hint)
            seeds = list(range(args.count))
            sampling, x = timed(generate, model, seeds, steps=preset.steps, sampler=preset.sampler,
                                batch_size=args.batch, class_labels=[label] * len(seeds), width=width)
            images = decode_images(model, x)
            made, audio, prep = finished_loops(model, images, bpm, preset.tempo_hint)
            bars = np.bincount([loop.bars for loop in made], minlength=BARS + 1)
            speed_rows.append([name, f"{bpm:g}", canvas, width, f"{width * model.mel.hop_length / rate:.2f}",
                               f"{len(made)}/{len(seeds)}", " / ".join(f"{bars[b]}" for b in (4, 2, 1)),
                               f"{1000 * sampling / len(seeds):.0f}", f"{1000 * prep / len(seeds):.0f}",
                               f"{audio / (sampling + prep):.1f}x"])
            slices = codec.images_to_audio(images)
            embeddings[canvas] += [embed(a, rate) for a in slices]
            steady[canvas] = np.mean([beat_steadiness(a, rate) for a in slices])
        quality_rows.append([name, *(f"{steady[c]:.3f}" for c in CANVASES), f"{np.mean(real_steady):.3f}"])
    distances = {c: frechet_distance(np.stack(embeddings[c]), real_embeddings[half:]) for c in CANVASES}
    summary = (f"Frechet distance to held-out real slices ({len(real_embeddings) - half} of them), "
               + ", ".join(f"{c} canvas {distances[c]:.2f}" for c in CANVASES)
               + f"; between two halves of the real ones (the floor) {floor:.2f}")
    return speed_rows, quality_rows, summary


SPEED_HEADERS = ["genre", "BPM", "canvas", "columns", "slice s", "loops", "4 / 2 / 1 bars", "sampling ms/loop",
                 "image path ms/loop", "finished loop audio per second of work"]
QUALITY_HEADERS = ["genre", *(f"beat steadiness, {c} canvas" for c in CANVASES), "real"]


# ----------------------------------------------------- part 2: the published size
def drum_image(mel, columns: int, bpm: float) -> np.ndarray:
    """A drum pattern at ``bpm`` encoded to a uint8 image ``columns`` frames wide."""
    from tests.synth import drum_pattern  # the checkout is on sys.path (use_checkout)

    samples = (columns - 1) * mel.hop_length
    audio = drum_pattern(bpm, seconds=samples / mel.sample_rate + 0.01, sample_rate=mel.sample_rate)[:samples]
    image = MelCodec(mel).audio_to_image(audio)
    assert image.shape == (mel.y_res, columns), image.shape
    return image


def published_rows(args) -> list[list]:
    model = new_model("teticio").to("cpu")
    rows = []
    for canvas in CANVASES:
        width = loop_canvas(model, canvas, BARS, PUBLISHED_BPM, None)
        progress(f"published size, {canvas} canvas: {width} columns")
        image = drum_image(model.mel, width, PUBLISHED_BPM)
        generate(model, [0], steps=1, sampler="ddim", batch_size=1, width=width)  # warm-up: buffers, kernels
        runs = []
        for repeat in range(args.repeats):
            sampling, x = timed(lambda: decode_images(model, generate(model, [repeat], steps=1, sampler="ddim",
                                                                      batch_size=1, width=width)))
            made, audio, prep = finished_loops(model, [image], PUBLISHED_BPM, None)
            runs.append((sampling, prep, audio, made[0].bars if made else 0))
        sampling, prep = median(r[0] for r in runs), median(r[1] for r in runs)
        audio, bars = runs[-1][2], runs[-1][3]
        rows.append([canvas, width, f"{width * model.mel.hop_length / model.mel.sample_rate:.2f}", bars,
                     f"{audio:.2f}", f"{sampling:.2f}", f"{prep:.2f}", f"{sampling + prep:.2f}",
                     f"**{audio / (sampling + prep):.2f}x**"])
    return rows


PUBLISHED_HEADERS = ["canvas", "columns", "slice s", "bars at 128 BPM", "loop s", "sampling s", "image path s",
                     "total s", "real-time factor (finished loop audio)"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/data-lite", help="a prepared data set (held-out slices)")
    parser.add_argument("--count", type=int, default=16, help="seeds per genre and canvas (default 16)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="published-size passes per canvas (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--output", default="canvas.md")
    return parser.parse_args()


def main():
    args = parse_args()
    set_threads(args.threads)
    sections = []
    if not args.skip_default:
        speed, quality, summary = default_model_rows(args)
        sections += ["### The shipped default model, each genre at its tempo", "",
                     markdown_table(SPEED_HEADERS, speed), "", markdown_table(QUALITY_HEADERS, quality), "", summary,
                     ""]
    if not args.skip_published:
        sections += [f"### Published size (113.7M, random weights, 1 step, batch 1), 4 bars at {PUBLISHED_BPM:g} BPM",
                     "", markdown_table(PUBLISHED_HEADERS, published_rows(args)), ""]
    header = machine_header("Canvas width: the model's own against fitted to the loop", [
        f"loops at {OUT_RATE} Hz, up to {BARS} bars, Griffin-Lim {LIVE_ITERATIONS} iterations (the live worker's)"])
    publish("\n".join([header, "", *sections]), args.output)


if __name__ == "__main__":
    main()
