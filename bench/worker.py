"""The live worker's throughput: finished, tempo-locked loops per second, as the engine gets them.

The real generator worker (``livegen.engine.worker``) is spawned as the
engine spawns it, with its own loop bank in shared memory, and kept busy: at
least two batches of new-loop requests are always waiting, in blocks of one
genre (the worker batches requests of one genre, steps and sampler). Each
row starts a fresh worker (its start, compile included, is timed apart),
lets one batch through as a warm-up, then counts for ``--seconds``:

    loops/s            finished loops the worker wrote to the bank per second of wall clock
    real-time factor   seconds of finished loop audio (cut to whole bars, at the set's
                       tempo) per second of wall clock: sampling, inversion and loop prep
                       all included, as in the engine
    slices/s           spectrograms made per second, dropped ones (no usable beat) included

On a CUDA device the GPU's busy share is sampled every 0.2 s (torch.cuda.utilization).

    python3 bench/worker.py --device cuda --batches 64 --prep-processes 0 8 --compile-too  # on the GPU (bench/gpu.sh)
    .venv/bin/python bench/worker.py --device cpu --batches 4 --seconds 20  # here
    .venv/bin/python bench/worker.py --device cpu --isa native avx2  # as on an AVX2-only CPU too
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit import machine_header, markdown_table, progress, publish, use_checkout

use_checkout()

from livegen.engine.loopbank import LoopBank, slot_frames_for  # noqa: E402
from livegen.engine.worker import (GenreError, LoopFailed, LoopReady, LoopRequest, WorkerConfig,  # noqa: E402
                                   WorkerReady, worker_main)
from livegen.loops.prep import CANVASES  # noqa: E402
from livegen.presets import PRESETS_DIR, GenrePreset, load_genre  # noqa: E402

SAMPLE_RATE = 48000

# What an AVX2-only CPU (no AVX-512) runs, forced on this one: torch's own kernels, oneDNN's convolutions,
# MKL, numpy's SIMD loops and OpenBLAS each pick their code path from one of these at import.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"}
ISAS = {"native": {}, "avx2": AVX2_ONLY}
GENRES = ("techno", "house", "hiphop", "breaks")


@dataclass
class Row:
    model: str
    steps: int
    batch: int
    compile: str | None
    prep: int = 0  # prep processes
    canvas: str = "fit"
    isa: str = "native"
    asked_key: str | None = None  # the key a key-conditioned model is asked for (None: any)
    start_s: float = 0.0
    loops: int = 0
    dropped: int = 0
    seconds: float = 0.0
    audio_s: float = 0.0
    gpu_busy: float | None = None
    note: str = ""

    def cells(self) -> list:
        key = self.asked_key or "-"
        if not self.seconds:
            return [self.model, self.isa, key, self.steps, self.batch, self.compile or "-", self.prep, self.canvas,
                    f"{self.start_s:.1f}", "-", "-", "-", "-", "-", self.note]
        made = self.loops + self.dropped
        return [self.model, self.isa, key, self.steps, self.batch, self.compile or "-", self.prep, self.canvas,
                f"{self.start_s:.1f}",
                f"{made / self.seconds:.1f}", f"{self.loops / self.seconds:.1f}", f"{self.dropped}/{made}",
                f"{self.audio_s / self.seconds:.1f}x",
                "-" if self.gpu_busy is None else f"{self.gpu_busy:.0f}%", self.note]


HEADERS = ["model", "instruction set", "asked key", "steps", "batch", "compile", "prep processes", "canvas", "worker start s", "slices/s", "loops/s", "dropped",
           "real-time factor", "GPU busy", "notes"]


def presets_for(model: str, steps: int | None, folder: Path) -> dict[str, GenrePreset]:
    """The shipped genre presets ("default": the default model; "fast": the one-step student's "-fast"
    presets; a shipped model's name: the default presets on that model), or one genre on a random
    model of a named size."""
    shipped = PRESETS_DIR / "models" / model
    if model in ("default", "fast") or shipped.is_dir():
        presets = {name: load_genre(name if model != "fast" else f"{name}-fast") for name in GENRES}
        if shipped.is_dir():
            presets = {name: dataclasses.replace(p, model=shipped) for name, p in presets.items()}
        if steps:
            presets = {name: dataclasses.replace(p, steps=steps) for name, p in presets.items()}
        return presets
    from livegen.diffusion.architectures import new_model

    path = folder / model
    if not path.exists():
        new_model(model, seed=0).save(path)
    return {model: GenrePreset(model, path, None, steps or 10, "ddim")}


class GpuSampler:
    """The GPU's busy share (nvidia's utilisation counter), read every 0.2 s between start and stop."""

    def __init__(self, device: str):
        self.readings: list[float] = []
        self._stop = threading.Event()
        self._thread = None
        if device.startswith("cuda"):
            self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.2):
            try:
                self.readings.append(float(torch.cuda.utilization(0)))
            except Exception:  # noqa: BLE001 - no NVML: no figure
                return

    def __enter__(self):
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.readings) if self.readings else None


def run_row(row: Row, args, folder: Path) -> Row:
    presets = presets_for(row.model, row.steps, folder)
    row.steps = next(iter(presets.values())).steps
    in_flight = 2 * row.batch
    bank = LoopBank(in_flight + row.batch, slot_frames_for(SAMPLE_RATE, args.bpm / 1.5))
    context = multiprocessing.get_context("spawn")
    down_recv, down_send = context.Pipe(duplex=False)
    up_recv, up_send = context.Pipe(duplex=False)
    config = WorkerConfig(genres=presets, bank_name=bank.name, bank_slots=bank.slots, bank_frames=bank.slot_frames,
                          sample_rate=SAMPLE_RATE, device=args.device, precision=args.precision,
                          threads=args.threads, batch_size=row.batch, compile=row.compile,
                          prep_processes=row.prep, canvas=row.canvas, bpm=args.bpm)
    process = context.Process(target=worker_main, args=(config, down_recv, up_send), daemon=not row.prep)
    started = time.monotonic()
    with isa_environment(row.isa):  # a spawned child takes the environment as it is at its start
        process.start()
    try:
        while True:  # the worker's start: imports, model load, compile, warm-up
            if not up_recv.poll(1.0):
                if not process.is_alive():
                    row.note = f"the worker died at its start (exit {process.exitcode}; its error is above)"
                    return row
                if time.monotonic() - started > args.start_timeout:
                    row.note = f"worker not ready within {args.start_timeout:.0f} s"
                    return row
                continue
            message = up_recv.recv()
            if isinstance(message, GenreError):
                row.note = f"genre {message.genre}: {message.message}"
                return row
            if isinstance(message, WorkerReady):
                break
        row.start_s = time.monotonic() - started
        progress(f"{row.model} batch {row.batch} compile {row.compile} prep {row.prep}: worker ready in {row.start_s:.1f} s "
                 f"on {message.device} x{message.threads}")

        names, next_id, waiting = list(presets), 0, 0

        def top_up() -> None:
            nonlocal next_id, waiting
            while waiting + row.batch <= in_flight:  # a block of one genre: one batch in the worker
                genre = names[(next_id // row.batch) % len(names)]
                for _ in range(row.batch):
                    down_send.send(LoopRequest(next_id, bank.take(), genre, seed=next_id, steps=row.steps,
                                               sampler=presets[genre].sampler, eta=presets[genre].eta, bpm=args.bpm,
                                               asked_key=row.asked_key))
                    next_id += 1
                waiting += row.batch

        def answer():
            nonlocal waiting
            message = up_recv.recv()
            if isinstance(message, (LoopReady, LoopFailed)):
                bank.give_back(message.request.slot)
                waiting -= 1
            return message

        top_up()
        warm = 0
        while warm < row.batch:
            warm += isinstance(answer(), (LoopReady, LoopFailed))
            top_up()
        with GpuSampler(args.device) as gpu:
            begin = time.monotonic()
            while time.monotonic() - begin < args.seconds:
                message = answer()
                if isinstance(message, LoopReady):
                    row.loops += 1
                    row.audio_s += message.frames / SAMPLE_RATE
                elif isinstance(message, LoopFailed):
                    if not message.dropped:
                        row.note = f"failed: {message.reason}"
                        return row
                    row.dropped += 1
                top_up()
            row.seconds = time.monotonic() - begin
        row.gpu_busy = gpu.mean
        return row
    finally:
        try:
            down_send.send(None)
        except (BrokenPipeError, OSError):
            pass
        process.join(10)
        if process.is_alive():
            process.kill()
        bank.close()


@contextlib.contextmanager
def isa_environment(isa: str):
    saved = {name: os.environ.get(name) for name in ISAS[isa]}
    os.environ.update(ISAS[isa])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="the worker's torch threads (default 1)")
    parser.add_argument("--models", nargs="+", default=["default"],
                        help="'default' (the shipped genre presets: the default model at their steps), 'fast' (the "
                             "one-step student's presets), a shipped model's name (the default presets on it, "
                             "e.g. lite-genres-grid) or an architecture name with random weights (e.g. teticio: "
                             "slices/s only)")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the presets'; 10 for random models)")
    parser.add_argument("--batches", type=int, nargs="+", default=[4])
    parser.add_argument("--compile-too", action="store_true", help="each row again with --compile (inductor)")
    parser.add_argument("--prep-processes", type=int, nargs="+", default=[0],
                        help="the worker's loop-prep processes, a row for each (default 0: in the worker)")
    parser.add_argument("--canvas", nargs="+", choices=CANVASES, default=["fit"],
                        help="the worker's canvas, a row for each (default fit, as the engine runs it)")
    parser.add_argument("--isa", nargs="+", choices=list(ISAS), default=["native"],
                        help="the worker's instruction set, a row for each: native, or avx2 (AVX-512 turned off in "
                             "torch, oneDNN, MKL, numpy and OpenBLAS, as on an AVX2-only CPU)")
    parser.add_argument("--asked-keys", nargs="+", default=["-"], metavar="KEY",
                        help="Camelot keys a key-conditioned model is asked for, a row each ('-': any key; default)")
    parser.add_argument("--bpm", type=float, default=128.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="counted per row, after the warm-up batch")
    parser.add_argument("--start-timeout", type=float, default=240.0)
    parser.add_argument("--output", default="worker.md", help="file name under bench/results, or a path")
    args = parser.parse_args()

    rows = [Row(model, args.steps or 0, batch, backend, prep, canvas, isa, None if key == "-" else key)
            for model in args.models for backend in ([None, "inductor"] if args.compile_too else [None])
            for prep in args.prep_processes for canvas in args.canvas for batch in args.batches for isa in args.isa
            for key in args.asked_keys]
    with tempfile.TemporaryDirectory() as folder:
        for index, row in enumerate(rows):
            run_row(row, args, Path(folder))
            progress(" | ".join(str(c) for c in row.cells()))
            write(rows[:index + 1], args)
    return 0


def write(rows: list[Row], args) -> None:
    text = machine_header("Live worker throughput", [
        f"worker: livegen.engine.worker in a spawned process, as the engine runs it; device {args.device}, "
        f"precision {args.precision}, {args.threads} torch thread(s); loops at {args.bpm:g} BPM, "
        f"{SAMPLE_RATE} Hz, up to 4 bars",
        "default = the shipped genre presets (4 genres in turn, one block of `batch` requests each); "
        "random models: one genre, random weights (their slices have no beat: dropped, so slices/s only)",
        f"each row: a fresh worker (start timed), one batch of warm-up, then {args.seconds:g} s counted with "
        "two batches always waiting",
    ]) + "\n\n" + markdown_table(HEADERS, [row.cells() for row in rows])
    output = Path(args.output)
    if output.parent == Path("."):
        publish(text, args.output)
    else:
        output.write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    sys.exit(main())
