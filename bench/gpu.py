"""GPU speed check (issue 7, "Speed to the limit"): real-time factor of batched generation.

For the shipped default model (``presets/models/lite-genres-distilled``: the
``lite`` UNet, 2.5M parameters, 64 x 256 mel, DDIM at its presets' 1 step; its
teacher ``lite-genres`` at 8 steps), the
``small`` size (10.7M, 128 x 256) and teticio's published size (``teticio``,
113.7M, 256 x 256; random weights: speed does not depend on them), at several
batch sizes, precisions and layouts, one batch of loops is timed from seeds to
finished audio on the host:

    sampling   DDIM denoising (the seeds' CPU noise draws included) + decoding to
               uint8 images on the host (``generate`` + ``decode_images``)
    inversion  mel power -> torch fast Griffin-Lim (32 iterations) on the device
    host       audio copied to the host and peak-normalised

which is what ``MelCodec.images_to_audio`` does, split so each part shows (the
split is checked against it on the first row). Real-time factor = seconds of
audio made per second of work. Not included: cutting and stretching a loop to
whole bars (``livegen.loops.prep``, CPU, librosa + pedalboard).

Rows run in order of importance under a time budget (``--budget``): a row
predicted to overrun it is skipped and says so; the table is rewritten after
every row, so a run stopped from outside still leaves what it measured.
torch.compile rows run in a child process with a hard timeout.

    python3 bench/gpu.py                          # on the GPU, the full plan (bench/gpu.sh runs it)
    .venv/bin/python bench/gpu.py --device cpu --quick   # a smoke test of every code path here
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from benchkit import REPO, RESULTS, machine_header, markdown_table, median, progress, use_checkout

use_checkout()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from livegen.audio.griffinlim import GriffinLim  # noqa: E402
from livegen.audio.mel import MelCodec, peak_normalise  # noqa: E402
from livegen.diffusion.architectures import new_model, parameter_count  # noqa: E402
from livegen.diffusion.checkpoint import LoopModel, load_model  # noqa: E402
from livegen.diffusion.sampling import decode_images, generate  # noqa: E402
from livegen.presets import load_genre  # noqa: E402

SHIPPED_DIR = REPO / "presets" / "models"  # the default model and its teacher, by folder name
TEACHER, TEACHER_STEPS = "lite-genres", 8  # the default model before the distilled student (8 DDIM steps)
LONG_RUN = 4.0  # seconds: rows with runs this long take 2 timed runs, not 3
WARMUP_STEPS = 2  # the UNet's shapes do not depend on the step count: this warms every kernel
CHILD_TAG = "GPU_BENCH_ROW "
MIN_CHILD_SECONDS = 45.0  # no compile child is started with less budget than this left
CHILDREN: list[subprocess.Popen] = []  # ended with their compile workers if this process is stopped


def shipped_default() -> tuple[str, int]:
    """The model folder and step count the shipped genre presets play (the distilled student at 1 step)."""
    try:
        preset = load_genre("techno")
        return Path(preset.model).name, preset.steps
    except Exception:  # noqa: BLE001 - a missing preset only changes a default
        return TEACHER, TEACHER_STEPS


DEFAULT, DEFAULT_STEPS = shipped_default()
TARGETS = {DEFAULT: 1000.0, TEACHER: 1000.0, "small": 1000.0, "teticio": 200.0}  # real-time factor, the issue's


# -------------------------------------------------------------------- the plan
@dataclass
class Row:
    model: str
    precision: str  # fp32, bf16, fp16, or "best": the fastest measured so far for this model
    options: str  # "-" (the library's layout), "channels_last", "compile", "compile reduce-overhead"
    batch: int
    steps: int
    # filled in by the run
    params: int = 0
    loop_seconds: float = 0.0
    runs: int = 0
    total: float | None = None  # median seconds per batch
    sampling: float | None = None
    inversion: float | None = None
    host: float | None = None
    peak_gib: float | None = None
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model, self.precision, self.options

    @property
    def rtf(self) -> float | None:
        return None if not self.total else self.batch * self.loop_seconds / self.total

    def cells(self) -> list:
        def f(v, fmt=".3f"):
            return "-" if v is None else format(v, fmt)
        params = f"{self.params / 1e6:.1f}M" if self.params else "-"
        loops = None if not self.total else self.batch / self.total
        return [self.model, params, self.precision, self.options, self.batch, self.steps, self.runs or "-",
                f(self.total), f(self.sampling), f(self.inversion), f(self.host), f(loops, ".1f"),
                "-" if self.rtf is None else f"**{self.rtf:.0f}x**" if self.rtf >= TARGETS.get(self.model, 1e30)
                else f"{self.rtf:.1f}x", f(self.peak_gib, ".1f"), self.note or ""]


HEADERS = ["model", "params", "precision", "options", "batch", "steps", "runs", "s/batch", "sampling s",
           "inversion s", "host s", "loops/s", "real-time factor", "peak GPU GiB", "notes"]


def gpu_plan(compile_rows: bool) -> list[Row]:
    """Most important first: the two targets at the likely-best precision, then the rest."""
    plan: list[Row] = []

    def add(model, precision, options, batches, steps):
        plan.extend(Row(model, precision, options, b, steps) for b in batches)

    s = DEFAULT_STEPS
    add(DEFAULT, "bf16", "-", (1, 16, 64, 256), s)
    add("teticio", "bf16", "-", (1, 16, 64, 128), 10)
    add(DEFAULT, "fp16", "-", (1, 16, 64, 256), s)
    add("teticio", "fp16", "-", (1, 16, 64, 128), 10)
    add(DEFAULT, "fp32", "-", (1, 16, 64, 256), s)
    add("teticio", "fp32", "-", (1, 16, 64), 10)
    add("small", "bf16", "-", (1, 16, 64, 256), 10)
    add("small", "fp16", "-", (64, 256), 10)
    add("small", "fp32", "-", (16, 64, 256), 10)
    add(DEFAULT, "best", "channels_last", (256,), s)
    add("teticio", "best", "channels_last", (64,), 10)
    add("small", "best", "channels_last", (256,), 10)
    add(DEFAULT, "best", "-", (512, 1024), s)
    if s != 10:
        add(DEFAULT, "best", "-", (256,), 10)
    if compile_rows:  # the default model is the one furthest from its target: its compile comes first
        add(DEFAULT, "best", "compile reduce-overhead", (256,), s)
    add("teticio", "best", "-", (256,), 10)
    add("teticio", "best", "-", (64,), 50)
    if compile_rows:
        add("small", "best", "compile", (256,), 10)
        add("teticio", "best", "compile", (64,), 10)
    return plan


def published_size_plan(compile_rows: bool) -> list[Row]:
    """Only teticio's size, the layouts and compilation the full plan's budget cut (``--focus teticio``)."""
    plan = [Row("teticio", "bf16", "channels_last", b, 10) for b in (64, 128)]
    plan.append(Row("teticio", "fp16", "channels_last", 64, 10))
    plan.append(Row("teticio", "bf16", "-", 64, 10))  # the full plan's best row, again in this run
    if compile_rows:
        plan.append(Row("teticio", "bf16", "compile channels_last", 64, 10))
    return plan


def default_model_plan(compile_rows: bool) -> list[Row]:
    """Only the shipped default model at its presets' steps, and its teacher at 8 (``--focus default``)."""
    plan = [Row(DEFAULT, precision, "-", b, DEFAULT_STEPS) for precision in ("fp32", "fp16") for b in (64, 256, 1024)]
    plan.append(Row(DEFAULT, "best", "channels_last", 256, DEFAULT_STEPS))
    plan += [Row(TEACHER, "fp32", "-", b, TEACHER_STEPS) for b in (64, 256)]
    if compile_rows:
        plan.append(Row(DEFAULT, "best", "compile reduce-overhead", 256, DEFAULT_STEPS))
    return plan


def quick_plan(compile_rows: bool) -> list[Row]:
    """Every code path once, small and short (2 steps): a smoke test that runs on a CPU."""
    plan = [Row(DEFAULT, "fp32", "-", 1, 2), Row(DEFAULT, "fp32", "-", 2, 2), Row(DEFAULT, "bf16", "-", 2, 2),
            Row("small", "fp32", "-", 1, 2), Row("teticio", "fp32", "-", 1, 2),
            Row(DEFAULT, "best", "-", 2, 2), Row(DEFAULT, "best", "channels_last", 2, 2)]
    if compile_rows:
        plan.append(Row(DEFAULT, "fp32", "compile", 1, 2))
    return plan


# ------------------------------------------------------------------ the models
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Models:
    """Each model loaded once, switched between precisions and layouts in place."""

    def __init__(self, device: torch.device):
        self.device = device
        self.loaded: dict[str, LoopModel] = {}
        self.hook = None

    def get(self, name: str, precision: str, options: str) -> LoopModel:
        if name not in self.loaded:
            progress(f"loading {name}")
            if (SHIPPED_DIR / name).is_dir():
                model = load_model(SHIPPED_DIR / name, device=self.device, precision="fp32")
            else:
                model = new_model(name).to(self.device, "fp32")
            self.loaded[name] = model
        model = self.loaded[name]
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        # .to() resets the layout: the library's (contiguous on GPUs, channels_last on CPUs).
        model.to(self.device, precision)
        if options == "channels_last":
            model.unet.to(memory_format=torch.channels_last)
            self.hook = model.unet.register_forward_pre_hook(
                lambda _module, args: (args[0].contiguous(memory_format=torch.channels_last), *args[1:]))
        return model


def labels_for(model: LoopModel, batch: int) -> list[int] | None:
    """Genres mixed through the batch, as a set with several genres loaded would ask."""
    if not model.is_class_conditional:
        return None
    return [i % model.unet.config.num_class_embeds for i in range(batch)]


def one_batch(model: LoopModel, steps: int, batch: int) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    """Seeds to finished audio on the host, for one batch: ((sampling, inversion, host) seconds, images, audio)."""
    device = model.device
    codec = MelCodec(model.mel)
    inverter = GriffinLim.for_config(model.mel, device=device)
    sync(device)
    t0 = time.perf_counter()
    x = generate(model, range(batch), steps=steps, sampler="ddim", batch_size=batch,
                 class_labels=labels_for(model, batch))
    images = decode_images(model, x)  # uint8 on the host: the device is idle when it returns
    t1 = time.perf_counter()
    # MelCodec.images_to_audio, split in two (checked against it on the first row)
    power = codec.image_to_mel_power(images).to(inverter.device)
    audio = inverter(power, n_iter=model.mel.n_iter, seed=0, momentum=0.99)
    sync(device)
    t2 = time.perf_counter()
    audio = peak_normalise(audio.cpu().numpy())
    t3 = time.perf_counter()
    return (t1 - t0, t2 - t1, t3 - t2), images, audio


def check_split(model: LoopModel, images: np.ndarray, audio: np.ndarray) -> str:
    """The split inversion against MelCodec.images_to_audio on the same images."""
    reference = MelCodec(model.mel).images_to_audio(images, device=model.device)
    diff = float(np.abs(reference - audio).max())
    verdict = "same" if diff < 1e-3 else "DIFFERENT"
    return f"split inversion vs MelCodec.images_to_audio: max abs difference {diff:.2e} ({verdict})"


def measure(model: LoopModel, row: Row, repeats: int, deadline: float,
            warmups: int = 1) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Warm up (first call per shape: cudnn autotuning, FFT plans, compiling), then up to ``repeats`` timed runs.

    Fills in ``row``; returns the warm-up seconds and the last run's images and audio.
    """
    device = model.device
    row.params, row.loop_seconds = parameter_count(model), model.mel.slice_seconds
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm = []
    for _ in range(warmups):
        seconds, _, _ = one_batch(model, min(WARMUP_STEPS, row.steps), row.batch)
        warm.append(seconds)
    # A run's likely length from the last warm-up: sampling scales with the steps.
    sampling, inversion, host = warm[-1]
    estimate = sampling * row.steps / min(WARMUP_STEPS, row.steps) + inversion + host
    runs = []
    for i in range(repeats):
        if i and (time.monotonic() + estimate > deadline or (i >= 2 and estimate > LONG_RUN)):
            break
        seconds, images, audio = one_batch(model, row.steps, row.batch)
        runs.append(seconds)
        estimate = sum(seconds)
    row.runs = len(runs)
    row.total = median(sum(r) for r in runs)
    row.sampling, row.inversion, row.host = (median(r[i] for r in runs) for i in range(3))
    if device.type == "cuda":
        row.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    return [sum(w) for w in warm], images, audio


# ------------------------------------------------------------ torch.compile child
def child_main(spec: dict) -> None:
    """One compiled row in this (child) process; the result goes to stdout as one JSON line."""
    device = torch.device(spec["device"])
    setup_backends(device)
    row = Row(**{k: spec[k] for k in ("model", "precision", "options", "batch", "steps")})
    models = Models(device)
    model = models.get(row.model, row.precision, "channels_last" if "channels_last" in row.options else "-")
    mode = "reduce-overhead" if "reduce-overhead" in row.options else None
    model.compile(row.batch, mode=mode)  # as the live worker compiles (channels_last on a GPU)
    # Two warm-ups: the first compiles (and, with CUDA graphs, records), the second must be steady.
    deadline = time.monotonic() + spec["until"] - time.time()  # the parent's, less a margin to report back
    (first, second), _, _ = measure(model, row, spec["repeats"], deadline, warmups=2)
    row.note = f"compile + first warm-up {first:.0f} s (second {second:.2f} s)"
    print(CHILD_TAG + json.dumps(asdict(row)), flush=True)


def run_child(row: Row, args, seconds: float) -> Row:
    """Run ``row`` in a child process, killed (with its compile workers) after ``seconds``."""
    spec = {**{k: getattr(row, k) for k in ("model", "precision", "options", "batch", "steps")},
            "device": args.device, "repeats": args.repeats, "until": time.time() + seconds - 5}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    start = time.monotonic()
    # Its own process group, so a timeout also ends inductor's compile workers.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    CHILDREN.append(child)
    try:
        out, _ = child.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        kill_group(child)
        child.communicate()
        row.note = f"stopped: not done within its {seconds:.0f} s of the budget (compiling counts)"
        return row
    lines = [line for line in out.splitlines() if line.startswith(CHILD_TAG)]
    if child.returncode or not lines:
        row.note = f"failed in the child process (exit {child.returncode}; see the log)"
        return row
    done = json.loads(lines[-1][len(CHILD_TAG):])
    for key, value in done.items():
        setattr(row, key, value)
    row.note += f"; child process {time.monotonic() - start:.0f} s in all"
    return row


def kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(signum, _frame):
    """SIGTERM (bench/gpu.sh's timeout): end the compile child, keep the table written so far."""
    for child in CHILDREN:
        kill_group(child)
    raise SystemExit(f"stopped by signal {signum}")


# --------------------------------------------------------------------- the run
def setup_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per row: let cuDNN pick its fastest kernels


def resolve_best(row: Row, done: list[Row]) -> str:
    """The precision that gave this model its highest real-time factor so far (bf16 if none)."""
    measured = [r for r in done if r.model == row.model and r.options == "-" and r.rtf]
    if not measured:
        return "bf16"
    same_batch = [r for r in measured if r.batch == row.batch] or measured
    return max(same_batch, key=lambda r: (r.batch == row.batch, r.rtf)).precision


def predict(row: Row, done: list[Row], repeats: int) -> float | None:
    """Seconds a row will take (warm-up + runs) from the nearest measured row of its model; None if none.

    Scaled linearly up to a bigger batch (per loop a bigger batch costs no more), not down to a smaller one.
    """
    similar = [r for r in done if r.model == row.model and r.total and r.options == row.options
               and r.precision == row.precision] or [r for r in done if r.model == row.model and r.total]
    if not similar:
        return None
    ref = min(similar, key=lambda r: abs(r.batch - row.batch))
    ratio = max(1.0, row.batch / ref.batch)
    per_step = ref.sampling / ref.steps * ratio
    inversion = (ref.inversion + ref.host) * ratio
    return per_step * WARMUP_STEPS + inversion + repeats * (per_step * row.steps + inversion)


def too_big(row: Row, oom: dict) -> bool:
    limit = oom.get((row.model, row.precision, row.options))
    return limit is not None and row.batch >= limit


def summary(rows: list[Row]) -> list[str]:
    lines = []
    for model, steps, label in ((DEFAULT, DEFAULT_STEPS, f"default model (shipped {DEFAULT})"),
                                (TEACHER, TEACHER_STEPS, f"its teacher (shipped {TEACHER})"),
                                ("small", 10, "small size (DESIGN.md's config)"),
                                ("teticio", 10, "published size (teticio)")):
        measured = [r for r in rows if r.model == model and r.steps == steps and r.rtf]
        target = TARGETS[model]
        if not measured:
            lines.append(f"{label}, {steps} steps, target >= {target:.0f}x real time: not measured")
            continue
        best = max(measured, key=lambda r: r.rtf)
        verdict = "met" if best.rtf >= target else f"NOT met ({best.rtf / target:.0%} of it)"
        lines.append(f"{label}, {steps} steps, target >= {target:.0f}x real time: best {best.rtf:.0f}x "
                     f"({best.precision}, {best.options}, batch {best.batch}, {best.batch / best.total:.1f} loops/s): "
                     f"**{verdict}**")
    return lines


def gpu_details(device: torch.device) -> list[str]:
    if device.type != "cuda":
        return [f"Device: {device} (no GPU: a smoke test, not a measurement)"]
    props = torch.cuda.get_device_properties(device)
    return [f"Device: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs; "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
            "Backends: cudnn.benchmark on; fp32 rows use torch's defaults "
            f"(TF32 convolutions {torch.backends.cudnn.allow_tf32}, TF32 matmuls "
            f"{torch.backends.cuda.matmul.allow_tf32}); bf16/fp16 rows: weights fp32, UNet under autocast"]


def report(rows: list[Row], args, started: float, status: str, notes: list[str]) -> str:
    device = torch.device(args.device)
    details = [
        *gpu_details(device),
        "Work per batch: DDIM denoising (CPU noise draws per seed included) + uint8 images to the host "
        "(sampling), mel power -> torch fast Griffin-Lim, 32 iterations, on the device (inversion), "
        "audio to the host + peak normalisation (host); loops of 5.94 s; not included: cutting/stretching "
        "to bars (livegen.loops.prep, CPU)",
        f"Models: {DEFAULT} and {TEACHER} = presets/models/NAME (shipped weights, class-conditional, genres "
        f"mixed in each batch; the genre presets play {DEFAULT} at {DEFAULT_STEPS} DDIM step(s), the teacher "
        f"took {TEACHER_STEPS}); small and teticio: random weights",
        "options: '-' = the library's layout (contiguous on a GPU), channels_last = UNet weights and input "
        "channels_last; compile = LoopModel.compile as the live worker runs it (torch.compile, default mode or "
        "reduce-overhead = CUDA graphs; channels_last on a GPU), in a child process; precision 'best' rows took the precision fastest so far for that model",
        f"Each row: a {WARMUP_STEPS}-step warm-up batch, then the median of up to {args.repeats} timed runs "
        f"(runs column); real-time factor = batch x 5.94 s / (s/batch); bold: meets the issue's target",
        f"Time budget {args.budget:.0f} s for the rows; {time.monotonic() - started:.0f} s used. Status: {status}",
        *notes,
    ]
    return "\n".join([
        machine_header("GPU generation speed (issue 7)", details), "",
        markdown_table(HEADERS, [r.cells() for r in rows]), "",
        "### Targets", "", *[f"- {line}" for line in summary(rows)],
    ])


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def run_plan(plan: list[Row], done: list[Row], notes: list[str], models: Models, args, deadline: float,
             save) -> None:
    """Run (or skip) every row in order, appending to ``done`` and saving the table after each."""
    device = models.device
    oom: dict = {}
    for row in plan:
        if row.precision == "best":
            row.precision = resolve_best(row, done)
        left = deadline - time.monotonic()
        label = f"{row.model} {row.precision} {row.options} batch {row.batch} steps {row.steps}"
        guess = predict(row, done, args.repeats)
        if too_big(row, oom):
            row.note = "skipped: a smaller batch ran out of memory"
        elif left <= 0:
            row.note = "skipped: over the time budget (all spent)"
        elif guess is not None and guess > left:
            row.note = f"skipped: over the time budget ({left:.0f} s left, predicted {guess:.0f} s)"
        elif row.options.startswith("compile"):
            if left < MIN_CHILD_SECONDS:
                row.note = f"skipped: over the time budget ({left:.0f} s left, a compile needs {MIN_CHILD_SECONDS:.0f})"
            else:
                progress(f"{label}: compiling in a child process (up to {left:.0f} s)")
                run_child(row, args, left)
        else:
            progress(f"{label}: running" + (f" (predicted {guess:.1f} s)" if guess is not None else ""))
            try:
                model = models.get(row.model, row.precision, row.options)
                _, images, audio = measure(model, row, args.repeats, deadline)
                if not any("split inversion" in n for n in notes):
                    notes.append(check_split(model, images, audio))
                del images, audio
            except torch.cuda.OutOfMemoryError:
                row.total = None
                row.note = "out of GPU memory"
                oom[row.key] = row.batch
            except Exception as err:  # noqa: BLE001 - one failing row must not lose the others
                traceback.print_exc()
                row.total = None
                row.note = f"failed: {type(err).__name__}: {str(err)[:120]}"
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        done.append(row)
        progress("  " + " | ".join(str(c) for c in row.cells()))
        save("in progress: the run was stopped before its end if this line stays")


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    started = time.monotonic()
    deadline = started + args.budget
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch sees no CUDA GPU; on a CPU run: bench/gpu.py --device cpu --quick")
    setup_backends(device)
    output = Path(args.output) if args.output else (Path(os.environ["OUT"]) / "gpu.md" if os.environ.get("OUT")
                                                    else RESULTS / "gpu.md")
    compile_rows = not args.no_compile if device.type == "cuda" else args.compile
    plan = (quick_plan(compile_rows) if args.quick
            else published_size_plan(compile_rows) if args.focus == "teticio"
            else default_model_plan(compile_rows) if args.focus == "default"
            else gpu_plan(compile_rows))
    models = Models(device)
    done: list[Row] = []
    notes: list[str] = []

    def save(status: str):
        write(output, report(done, args, started, status, notes))

    save("in progress: the run was stopped before its end if this line stays")
    signal.signal(signal.SIGTERM, stop)
    try:
        run_plan(plan, done, notes, models, args, deadline, save)
    except SystemExit as err:
        save(f"{err} after {len(done)} of {len(plan)} rows")
        raise
    skipped = sum(r.note.startswith("skipped: over the time budget") for r in done)
    status = (f"complete, all {len(plan)} planned rows" if not skipped
              else f"{skipped} of {len(plan)} planned rows skipped: over the time budget")
    text = report(done, args, started, status, notes)
    write(output, text)
    print(text)
    progress(f"\nwritten to {output}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --quick: a smoke test)")
    parser.add_argument("--quick", action="store_true", help="every code path once, batch <= 2, 2 steps")
    parser.add_argument("--budget", type=float, default=210.0,
                        help="seconds for all rows (rows that would overrun it are skipped)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (the median is reported)")
    parser.add_argument("--focus", choices=["teticio", "default"],
                        help="teticio: only the published size's layout and compile rows; default: only the "
                             "shipped default model (and its teacher)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows on a GPU")
    parser.add_argument("--compile", action="store_true", help="a torch.compile row on a CPU too (slow)")
    parser.add_argument("--output", default=None,
                        help="markdown file; default $OUT/gpu.md when OUT is set, else bench/results/gpu.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 1)
    if args.repeats < 1 or args.budget <= 0:
        parser.error("--repeats and --budget must be positive")
    return args


if __name__ == "__main__":
    main()
