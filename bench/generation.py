"""Seconds per generated loop: livegen vs diffusers' AudioDiffusionPipeline.

For each model size and step count, livegen's time per loop is split into
sampling (DDIM denoising + decoding to uint8 images) and inversion (torch
Griffin-Lim), with the real-time factor (seconds of audio per second of
work). The same weights, saved and loaded by ``AudioDiffusionPipeline`` with a
DDIM scheduler, run the same steps beside it; its time includes librosa's
inversion, as its ``__call__`` does. Random weights: speed does not depend on
them.

    .venv/bin/python bench/generation.py            # small + teticio, 10/20/50 steps
    .venv/bin/python bench/generation.py --quick    # small, 10 steps: a smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from benchkit import (machine_header, markdown_table, median, progress, publish, set_threads, timed,
                      use_checkout)

use_checkout()

import torch  # noqa: E402

from livegen.audio.mel import MelCodec  # noqa: E402
from livegen.diffusion.architectures import new_model, parameter_count  # noqa: E402
from livegen.diffusion.checkpoint import LoopModel, load_model  # noqa: E402
from livegen.diffusion.cpu import keep_freed_memory  # noqa: E402
from livegen.diffusion.sampling import decode_images, generate  # noqa: E402

SIZES = ("small", "teticio")
STEPS = (10, 20, 50)
PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
WARMUP_STEPS = 2  # enough to allocate buffers and pick kernels; a full-length warm-up only costs time


@dataclass
class Row:
    size: str
    params: int
    mel: str
    steps: int
    batch: int
    sampling: float  # seconds per loop, livegen
    inversion: float
    audio_seconds: float  # length of one loop
    diffusers: float | None  # seconds per loop, AudioDiffusionPipeline
    kernels: str = ""  # which convolutions livegen ran

    @property
    def total(self) -> float:
        return self.sampling + self.inversion

    def cells(self) -> list[str]:
        theirs = ["skipped", "-"] if self.diffusers is None else [
            f"{self.diffusers:.2f}", f"{self.diffusers / self.total:.1f}x"]
        return [self.size, f"{self.params / 1e6:.1f}M", self.mel, self.kernels, self.steps, self.batch,
                f"{self.sampling:.2f}", f"{self.inversion:.2f}", f"{self.total:.2f}",
                f"{self.audio_seconds / self.total:.2f}", *theirs]


HEADERS = ["model", "params", "mel (bands x frames)", "convolutions", "steps", "batch", "sampling s/loop",
           "inversion s/loop", "total s/loop", "real-time factor", "diffusers s/loop", "diffusers / ours"]


# ---------------------------------------------------------------- livegen
def livegen_loops(model: LoopModel, steps: int, batch: int) -> tuple[float, float]:
    """One batch of loops, start to audio: (sampling seconds, inversion seconds) for the whole batch."""
    codec = MelCodec(model.mel)

    def sample():
        return decode_images(model, generate(model, range(batch), steps=steps, sampler="ddim", batch_size=batch))

    # decode_images and images_to_audio both copy to the CPU, so GPU work is finished when they return.
    sampling, images = timed(sample)
    inversion, _ = timed(codec.images_to_audio, images, device=model.device)
    return sampling, inversion


def time_livegen(model: LoopModel, steps: int, batch: int, repeats: int) -> tuple[float, float]:
    """Median seconds per loop, (sampling, inversion)."""
    runs = [livegen_loops(model, steps, batch) for _ in range(repeats)]
    return median(s for s, _ in runs) / batch, median(i for _, i in runs) / batch


# --------------------------------------------------------------- diffusers
def load_pipeline(folder: str, model: LoopModel):
    """The saved model as diffusers loads it, with DDIM as livegen samples."""
    import diffusers
    from diffusers import AudioDiffusionPipeline, DDIMScheduler

    # It warns that the UNet is not a UNet2DConditionModel (its type hint); the pipeline takes either.
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    pipe = AudioDiffusionPipeline.from_pretrained(folder)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(model.device)


def diffusers_loop(pipe, model: LoopModel, steps: int) -> float:
    """Seconds for one loop (batch 1), noise to audio including librosa's inversion."""
    generator = torch.Generator("cpu").manual_seed(0)
    # Same compute precision as ours (a no-op at fp32), so the ratio compares code, not dtypes.
    with model.autocast():
        seconds, _ = timed(pipe, batch_size=1, steps=steps, generator=generator, return_dict=False)
    return seconds


def time_diffusers(pipe, model: LoopModel, steps: int, repeats: int) -> float:
    return median(diffusers_loop(pipe, model, steps) for _ in range(repeats))


# --------------------------------------------------------------------- run
def load_both(size: str, args):
    """A random model of ``size`` saved once, then loaded by livegen and by diffusers: the same weights."""
    with tempfile.TemporaryDirectory(prefix=f"livegen-bench-{size}-") as folder:
        new_model(size).save(folder)
        model = load_model(folder, device=args.device, precision=args.precision, winograd=not args.baseline_child)
        pipe = None if args.skip_diffusers else load_pipeline(folder, model)
    return model, pipe


def bench_size(size: str, args) -> tuple[list[Row], str]:
    """The rows of one model size, and where it ran (precision and device)."""
    model, pipe = load_both(size, args)

    progress(f"{size}: warm-up")
    livegen_loops(model, WARMUP_STEPS, args.batch)
    if pipe is not None:
        diffusers_loop(pipe, model, WARMUP_STEPS)

    # With --compare-kernels, each row again with oneDNN alone, right after (same weights, same run).
    precision = PRECISION_NAMES.get(model.dtype, args.precision)
    if args.baseline_child:
        kernel_choices = (False,)
    elif args.compare_kernels and model.winograd_layers:
        kernel_choices = (True, False)
    else:
        kernel_choices = (True,)
    current = kernel_choices[0]  # what the model was loaded and warmed up with
    rows = []
    for steps in args.steps:
        theirs = None
        if pipe is not None:
            progress(f"{size}: {steps} steps, diffusers")
            theirs = time_diffusers(pipe, model, steps, args.repeats)
        for winograd in kernel_choices:
            if winograd != current:
                model.to(model.device, precision, winograd=winograd)
                livegen_loops(model, WARMUP_STEPS, args.batch)  # a warm-up in the new layout
                current = winograd
            kernels = kernel_names(model)
            progress(f"{size}: {steps} steps, livegen, {kernels}")
            sampling, inversion = time_livegen(model, steps, args.batch, args.repeats)
            row = Row(size, parameter_count(model), f"{model.mel.y_res} x {model.mel.x_res}", steps, args.batch,
                      sampling, inversion, model.mel.slice_seconds, theirs, kernels)
            progress("  " + " | ".join(str(c) for c in row.cells()))
            rows.append(row)
    return rows, f"{precision} on {model.device}"


def kernel_names(model: LoopModel) -> str:
    if model.device.type != "cpu":
        return model.device.type
    allocator = "freed memory kept" if keep_freed_memory() else "glibc's default malloc"
    if model.winograd_layers:
        return f"NNPACK Winograd ({model.winograd_layers} layers) + oneDNN, NCHW; {allocator}"
    return f"oneDNN, channels_last; {allocator}"


def baseline_rows(size: str, args) -> list[Row]:
    """The rows as livegen ran before its CPU work (oneDNN alone, glibc's default malloc): in a
    child process, since the allocator setting is process-wide."""
    command = [sys.executable, __file__, "--sizes", size, "--steps", *map(str, args.steps), "--batch",
               str(args.batch), "--repeats", str(args.repeats), "--precision", args.precision, "--skip-diffusers",
               "--baseline-child", *(["--threads", str(args.threads)] if args.threads else []),
               *(["--device", args.device] if args.device else [])]
    done = subprocess.run(command, env={**os.environ, "LIVEGEN_KEEP_FREED_MEMORY": "0"}, capture_output=True,
                          text=True, check=True)
    return [Row(**fields) for fields in json.loads(done.stdout.strip().splitlines()[-1])]


def report(rows: list[Row], args, setup: str) -> str:
    details = [
        f"livegen: precision {setup}, DDIM (eta 0), batch {args.batch}; "
        f"inversion: torch fast Griffin-Lim; loops of {rows[0].audio_seconds:.2f} s",
        "diffusers: AudioDiffusionPipeline (same weights, loaded from the saved folder) with DDIMScheduler, "
        "batch 1, under the same autocast precision; its time includes librosa mel_to_audio",
        f"Median of {args.repeats} run(s) after a {WARMUP_STEPS}-step warm-up of each; "
        "real-time factor = seconds of audio per second of work (above 1 is faster than real time)",
    ]
    return machine_header("Generation speed", details) + "\n\n" + markdown_table(HEADERS, [r.cells() for r in rows])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=("micro", "lite", "tiny", *SIZES), default=list(SIZES))
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS))
    parser.add_argument("--batch", type=int, default=1, help="livegen's batch size (diffusers stays at 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per cell; the median is reported")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--device", default=None, help="cpu, cuda, mps; default: the best available")
    parser.add_argument("--skip-diffusers", action="store_true", help="time livegen only")
    parser.add_argument("--compare-kernels", action="store_true",
                        help="on the CPU in fp32: each livegen row also with oneDNN alone (no Winograd layers), "
                             "and as before either (oneDNN alone and glibc's default malloc, in a child process)")
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small model, 10 steps only: a smoke test")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core); 1 on a shared machine")
    parser.add_argument("--output", default="generation.md", help="file name under bench/results/")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.steps = ["small"], [10]
    if args.batch < 1 or args.repeats < 1 or min(args.steps) < 1:
        parser.error("--batch, --repeats and --steps must be at least 1")
    return args


def main():
    args = parse_args()
    set_threads(args.threads)
    rows, setups = [], []
    for size in args.sizes:
        size_rows, setup = bench_size(size, args)
        if args.baseline_child:
            print(json.dumps([dataclasses.asdict(row) for row in size_rows]))
            return
        if args.compare_kernels and setup.endswith("cpu"):
            progress(f"{size}: as before, in a child process")
            size_rows += baseline_rows(size, args)
        rows += size_rows
        setups.append(setup)
    # Every size resolves device and precision the same way, so this is normally one entry.
    publish(report(rows, args, ", ".join(dict.fromkeys(setups))), args.output)


if __name__ == "__main__":
    main()
