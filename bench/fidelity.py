"""Time per loop at equal sampler fidelity: livegen vs diffusers' AudioDiffusionPipeline.

Sampler fidelity is the eval's figure: the relative L2 distance of a loop's
spectrogram to the 1000-step DDIM loop of the same model from the same
starting noise (lower is better). Every sampler, both sides, runs with x0
clipping off: the probability-flow ODE that DDIM and DPM++ both step along.
With the model's clipping (teticio's configs clip x0 to [-1, 1] at every
step; ``--x0-clip``) DDIM's result depends on the step count chaotically:
on the lite-genres teacher 200 steps against 1000 are as far apart as loops
from different noise (distance 1.07), so no row is "as close" by more than
chance. Without it DDIM converges (50 steps: 0.10-0.13). With the same
weights:

* diffusers: ``AudioDiffusionPipeline`` with DDIM at each of ``--their-steps``,
  its own batch, its time including librosa's ``mel_to_audio`` (as its
  ``__call__`` does);
* livegen: DDIM and DPM++ at each of ``--our-steps``, batched, with its torch
  Griffin-Lim.

For each diffusers row the cheapest livegen row that is at least as close to
the 1000-step loop gives the ratio. A distilled student of the same model
(``--student``, other weights) is listed beside it, measured against the same
reference.

A class-conditional model is given its label through a thin wrapper around
the UNet, since the pipeline calls the UNet without class labels; the weights
and the arithmetic are unchanged.

    .venv/bin/python bench/fidelity.py --threads 2      # lite-genres (techno) and its distilled student
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from benchkit import machine_header, markdown_table, progress, publish, set_threads, timed, use_checkout

use_checkout()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from livegen.audio.mel import MelCodec  # noqa: E402
from livegen.diffusion.checkpoint import LoopModel, load_model  # noqa: E402
from livegen.diffusion.sampling import decode_images, generate, initial_noise, seed_generators  # noqa: E402
from training.eval import relative_distance  # noqa: E402


@dataclass
class Row:
    who: str  # diffusers | livegen | livegen, distilled
    sampler: str
    steps: int
    seconds: float  # per loop, noise to audio
    distance: float  # to the 1000-step DDIM loop

    def cells(self, ratio: str = "") -> list:
        return [self.who, self.sampler, self.steps, f"{self.seconds:.3f}", f"{self.distance:.3f}", ratio]


def headers(reference_steps: int) -> list[str]:
    return ["who", "sampler", "steps", "s/loop (noise to audio)", f"distance to {reference_steps}-step DDIM",
            "diffusers / livegen at equal or better fidelity"]


def relative_l2(images: np.ndarray, reference: np.ndarray) -> float:
    """The eval's figure on uint8 spectrograms mapped to [-1, 1]."""
    def model_space(x):
        return torch.from_numpy(np.asarray(x, dtype=np.float64)) / 127.5 - 1.0

    return relative_distance(model_space(images), model_space(reference))


class LabelledUNet(torch.nn.Module):
    """The pipeline calls ``unet(x, t)``; a class-conditional UNet also needs its label."""

    def __init__(self, unet, label: int):
        super().__init__()
        self.unet, self.label = unet, label
        self.config = unet.config

    @property
    def dtype(self):
        return self.unet.dtype

    def forward(self, x, t, *args, **kwargs):
        labels = torch.full((x.shape[0],), self.label, dtype=torch.long, device=x.device)
        return self.unet(x, t, class_labels=labels, **kwargs)


def livegen_row(model: LoopModel, who: str, sampler: str, steps: int, noise, labels, reference,
                repeats: int = 1) -> Row:
    codec = MelCodec(model.mel)
    seeds = list(range(len(noise)))

    def run():
        images = decode_images(model, generate(model, seeds, steps=steps, sampler=sampler, noise=noise,
                                               class_labels=labels, batch_size=len(seeds)))
        codec.images_to_audio(images, device=model.device)
        return images

    seconds, images = fastest(run, repeats)
    return Row(who, sampler, steps, seconds / len(seeds), relative_l2(images, reference))


def diffusers_row(pipe, steps: int, noise, reference, repeats: int = 1) -> Row:
    def run():
        generator = torch.Generator("cpu").manual_seed(0)  # DDIM eta 0 draws nothing from it
        return pipe(batch_size=len(noise), steps=steps, noise=noise, generator=generator, return_dict=False)

    seconds, (images, _audio) = fastest(run, repeats)
    images = np.stack([np.asarray(image) for image in images])
    return Row("diffusers", "ddim", steps, seconds / len(noise), relative_l2(images, reference))


def fastest(fn, repeats: int):
    """(seconds, result) of the fastest of ``repeats`` calls."""
    runs = [timed(fn) for _ in range(max(1, repeats))]
    return min(runs, key=lambda run: run[0])


def without_x0_clip(scheduler):
    """The same scheduler with x0 clipping off (the probability-flow ODE)."""
    return type(scheduler).from_config(scheduler.config, clip_sample=False)


def load_pipeline(folder, label, x0_clip: bool):
    import diffusers
    from diffusers import AudioDiffusionPipeline, DDIMScheduler

    diffusers.utils.logging.set_verbosity_error()
    pipe = AudioDiffusionPipeline.from_pretrained(str(folder))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if not x0_clip:
        pipe.scheduler = without_x0_clip(pipe.scheduler)
    if label is not None:
        pipe.unet = LabelledUNet(pipe.unet, label)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="presets/models/lite-genres")
    parser.add_argument("--student", default="presets/models/lite-genres-distilled",
                        help="a distilled student of --model to list beside it ('' for none)")
    parser.add_argument("--genre", default="techno", help="class label, for class-conditional models")
    parser.add_argument("--count", type=int, default=4, help="loops per row (the 1000-step reference is the cost)")
    parser.add_argument("--their-steps", type=int, nargs="+", default=[8, 20, 50])
    parser.add_argument("--our-steps", type=int, nargs="+", default=[3, 4, 5, 6, 8, 10, 15, 20, 30, 50])
    parser.add_argument("--student-steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--x0-clip", action="store_true",
                        help="keep the model's x0 clipping (chaotic under DDIM: see above); default off, both sides")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per row (the fastest counts)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="fidelity.md")
    args = parser.parse_args()
    set_threads(args.threads)

    model = load_model(args.model, "cpu", "fp32")
    if not args.x0_clip:
        model.scheduler = without_x0_clip(model.scheduler)
    label = model.class_label(args.genre) if model.is_class_conditional else None
    labels = None if label is None else [label] * args.count
    noise = initial_noise(model, seed_generators(range(1000, 1000 + args.count)))
    progress(f"reference: {args.reference_steps} DDIM steps x {args.count} loops")
    reference = decode_images(model, generate(model, list(range(args.count)), steps=args.reference_steps,
                                              noise=noise, class_labels=labels, batch_size=args.count))
    livegen_row(model, "warm-up", "ddim", 2, noise, labels, reference)
    pipe = load_pipeline(args.model, label, args.x0_clip)
    diffusers_row(pipe, 2, noise, reference)

    theirs = []
    for steps in args.their_steps:
        theirs.append(diffusers_row(pipe, steps, noise, reference, args.repeats))
        progress(" | ".join(map(str, theirs[-1].cells())))
    ours = []
    for sampler in ("ddim", "dpm++"):
        for steps in args.our_steps:
            ours.append(livegen_row(model, "livegen", sampler, steps, noise, labels, reference, args.repeats))
            progress(" | ".join(map(str, ours[-1].cells())))
    students = []
    if args.student:
        student = load_model(args.student, "cpu", "fp32")
        for steps in args.student_steps:
            students.append(livegen_row(student, "livegen, distilled student", "ddim", steps, noise, labels,
                                        reference, args.repeats))
            progress(" | ".join(map(str, students[-1].cells())))

    cells = []
    for row in theirs:
        good = [r for r in ours if r.distance <= row.distance]
        best = min(good, key=lambda r: r.seconds) if good else None
        ratio = f"{row.seconds / best.seconds:.1f}x (livegen {best.sampler} {best.steps} steps)" if best else "none as close"
        cells.append(row.cells(ratio))
    cells += [r.cells() for r in ours + students]
    details = [
        f"model: {args.model} ({args.genre}), fp32 on the CPU; {args.count} loops per row from the same starting "
        f"noise; distance: relative L2 of the uint8 spectrograms to the {args.reference_steps}-step DDIM loops",
        "diffusers: AudioDiffusionPipeline, same weights, DDIMScheduler, batch of all loops, librosa mel_to_audio "
        "(its __call__); livegen: generate + decode_images + MelCodec.images_to_audio (torch Griffin-Lim), same batch",
        "x0 clipping: " + ("the model's own (clip_sample), both sides" if args.x0_clip else
                           "off for every sampler, both sides (the probability-flow ODE); the student keeps its own"),
        "livegen's DPM++: 2M, trailing timesteps (its few steps start at the last training timestep)",
        f"the fastest of {args.repeats} timed run(s) per row, after a 2-step warm-up of each",
    ]
    publish(machine_header("Time per loop at equal sampler fidelity", details) + "\n\n"
            + markdown_table(headers(args.reference_steps), cells), args.output)


if __name__ == "__main__":
    main()
