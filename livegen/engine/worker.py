"""The generator worker: a separate process that owns torch and the models.

It takes ``LoopRequest``s down one pipe, makes each loop ready for the stage
(sample -> spectrogram image -> beat grid, whole bars, tempo stretch of the
image's frames, Griffin-Lim on those frames, seam, output rate: see
``livegen.loops.fromimage``), writes the audio into the loop-bank slot the request names and
sends a ``LoopReady`` descriptor up the other pipe. Loops with no usable beat,
silence or NaN come back as ``LoopFailed(dropped=True)`` for the engine to
replace. Nothing here runs in the main process, so torch never shares the
audio callback's interpreter.

Requests for new loops that arrive together are batched per genre.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections import OrderedDict
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

MODES = ("new", "variation", "continuation", "morph", "recut")
GUIDED_MIN_STEPS = 4  # the fewest sampling steps for variations, continuations and inversions


@dataclass(frozen=True)
class LoopRequest:
    loop_id: int
    slot: int
    genre: str
    seed: int
    steps: int
    sampler: str
    bpm: float
    eta: float = 0.0  # DDIM's: step noise from the seed (see GenrePreset)
    mode: str = "new"
    source_id: int | None = None  # the loop a variation / continuation / morph / recut works from
    strength: float = 0.5  # variation: how far from the source; morph: how far toward target_seed
    target_seed: int | None = None  # morph target
    source_mode: str | None = None  # recut: how the source was made ("new" can be made again from its seed)
    max_bars: int = 4  # the longest loop to cut (1, 2 or 4 bars); a slice too short for it gives fewer
    width: int | None = None  # model-space columns to draw at (a recut's remake: its source's); None: the canvas's
    key: str | None = None  # shift the loop to fit this key (Camelot code) if its own does not; None: leave it
    asked_key: str | None = None  # the key a key-conditioned model is asked for (Camelot code); None: any key
    pitch_shift: int = 0  # move the loop by exactly this many semitones (a recut of a shifted loop, key up/down)


@dataclass(frozen=True)
class LoopReady:
    request: LoopRequest
    frames: int
    bpm: float
    bars: int
    work_seconds: float  # worker time this loop took (its share of a batch)
    width: int  # model-space columns its slice was drawn at
    loudness: float | None = None  # integrated LUFS as written to the bank
    gain_db: float = 0.0  # what levelling gave it
    key: str | None = None  # Camelot code of its estimated key; None: no key
    key_confidence: float | None = None
    pitch_shift: int = 0  # semitones it was moved to fit the set's key


@dataclass(frozen=True)
class LoopFailed:
    request: LoopRequest
    reason: str
    dropped: bool  # True: the slice had no usable loop in it (counted, replaced); False: an error


@dataclass(frozen=True)
class GenreError:
    genre: str
    message: str


@dataclass(frozen=True)
class WorkerReady:
    device: str
    genres: list[str] = field(default_factory=list)
    threads: int = 1  # torch's intra-op threads in the worker
    compiled: str | None = None  # the torch.compile backend the UNets run through, if any
    prep_processes: int = 0  # processes running the loop prep's CPU stages


@dataclass(frozen=True)
class WorkerConfig:
    genres: dict  # genre name -> preset (livegen.presets.GenrePreset)
    bank_name: str
    bank_slots: int
    bank_frames: int
    sample_rate: int
    device: str = "auto"
    precision: str = "auto"
    threads: int = 1
    batch_size: int = 4
    cache_size: int = 64
    compile: str | None = None  # torch.compile backend for the UNets ("inductor"), traced at batch_size; None: eager
    prep_processes: int = 0  # processes for the loop prep's CPU stages (beat grid, resample, seam); 0: in the worker
    canvas: str = "fit"  # "fit": slices drawn wide enough for the loop length at the tempo; "native" (render.loop_canvas)
    bpm: float = 120.0  # the set's tempo and loop length at the start: a compiled UNet is warmed at the
    max_bars: int = 4  # width they draw at (another width compiles on its first loop)
    loudness: float | None = None  # each loop levelled to this integrated LUFS; None: left at loop prep's peak


class Drawn(NamedTuple):
    """One loop as sampling left it."""

    latent: object  # torch.Tensor (C, H, W), model space: variations and continuations start from it
    noise: object  # its starting noise where that alone makes it again (DDIM at eta 0), else None
    image: np.ndarray  # the uint8 spectrogram, not audio: a recut runs the image path again


class _Sources:
    """What the worker remembers of recent loops, for variations, continuations, morphs and recuts."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[int, Drawn] = OrderedDict()

    def put(self, loop_id: int, drawn: Drawn) -> None:
        self._items[loop_id] = drawn
        self._items.move_to_end(loop_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, loop_id: int | None) -> Drawn | None:
        return self._items.get(loop_id) if loop_id is not None else None


class Worker:
    def __init__(self, config: WorkerConfig, results):
        import torch

        from ..diffusion import load_model
        from ..presets import PresetError
        from .loopbank import LoopBank

        torch.set_num_threads(config.threads)  # the audio thread keeps a core of its own
        self.config = config
        self.results = results
        self.bank = LoopBank(config.bank_slots, config.bank_frames, name=config.bank_name)
        self.sources = _Sources(config.cache_size)
        self.models = {}  # genre -> LoopModel (genres naming one dir share it)
        by_path = {}
        for name, preset in config.genres.items():
            try:
                if isinstance(preset, Exception):
                    raise preset
                key = str(preset.model)
                if key not in by_path:
                    by_path[key] = load_model(preset.model, config.device, config.precision)
                model = by_path[key]
                if preset.label is not None:
                    model.class_label(preset.label)  # fails early on a label the model lacks
                self.models[name] = model
            except (PresetError, OSError, ValueError, RuntimeError) as err:
                results.send(GenreError(name, str(err)))
        self.key_net = None  # without the key estimator loops still play, with no key estimated
        try:
            from ..loops.keynet import load_key_net

            self.key_net = load_key_net()
        except ValueError as err:
            print(f"livegen worker: loops get no key estimate: {err}", file=sys.stderr, flush=True)
        if config.compile:
            for model in self._distinct_models():
                model.compile(config.batch_size, backend=config.compile)
        # On a GPU the loop prep's CPU stages bound the worker (bench/results/worker-gpu.md: the GPU was 4%
        # busy); they are mostly Python and numpy under the interpreter lock, so they run in processes of
        # their own. Spawned after lower_priority: they inherit it.
        self.pool = None
        if config.prep_processes:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(config.prep_processes, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_prep_process_start)
        self._warm_up()
        device = next(iter(self.models.values())).device if self.models else "none"
        results.send(WorkerReady(str(device), sorted(self.models), torch.get_num_threads(), config.compile,
                                 config.prep_processes))

    def _distinct_models(self) -> list:
        """Each loaded model once (genres naming one dir share it)."""
        return list({id(model): model for model in self.models.values()}.values())

    def _warm_up(self) -> None:
        """Run the image path once per codec config before the set needs it (each has its own Griffin-Lim
        and FFT plans), in every prep process. A compiled UNet compiles on its first pass (tens of
        seconds): one step of each at the width the set starts with, so its first loops do not wait."""
        from ..diffusion import denoise
        from ..loops import loops_from_images
        from ..loops.fromimage import LIVE_ITERATIONS, POOL_CHUNK

        warm = {(id(model), self._canvas(name, self.config.bpm, self.config.max_bars)): model
                for name, model in self.models.items() if model.compiled_unet is not None}
        for (_, width), model in warm.items():
            labels = [0] if model.is_class_conditional else None
            denoise(model, [0], steps=1, sampler="ddim", class_labels=labels, width=width)

        configs = {model.mel: model for model in self.models.values()}
        for mel, model in configs.items():
            # A click every half second (120 BPM), fading over a few frames.
            image = np.zeros((mel.y_res, mel.x_res), np.uint8)
            beat = 0.5 * mel.sample_rate / mel.hop_length
            for start in np.arange(0, mel.x_res, beat).astype(int):
                fade = np.linspace(255, 60, 6)[:mel.x_res - start]
                image[:, start:start + len(fade)] = fade.astype(np.uint8)
            # A chunk of images for every prep process, so each is started and has run it (a LoopError,
            # for a codec too small for a bar, is returned, not raised).
            loops_from_images([image] * max(1, self.config.prep_processes * POOL_CHUNK), mel, bpm=120.0,
                              out_rate=self.config.sample_rate, device=model.device, n_iter=LIVE_ITERATIONS,
                              pool=self.pool)

    # ------------------------------------------------------------ serving
    def serve(self, requests) -> None:
        pending: list[LoopRequest] = []
        while True:
            if not pending:
                pending.append(requests.recv())
            while requests.poll() and len(pending) < 256:  # take in what else has come
                pending.append(requests.recv())
            if any(item is None for item in pending):
                return
            # One group at a time, then look at the pipe again: a recut or a variation asked for
            # meanwhile goes ahead of the new loops still waiting.
            group = next(self._groups(pending))
            pending = [r for r in pending if r not in group]
            self._run(group)

    def _groups(self, batch: list[LoopRequest]):
        """Work in order of urgency: recuts, then other modes, then new loops with the same genre,
        steps and sampler together (one batch)."""
        news: dict[tuple, list[LoopRequest]] = {}
        for request in sorted(batch, key=lambda r: r.mode != "recut"):
            if request.mode == "new":
                key = (request.genre, request.asked_key, request.steps, request.sampler, request.eta,
                       self._width(request))
                news.setdefault(key, []).append(request)
            else:
                yield [request]
        for group in news.values():
            for i in range(0, len(group), self.config.batch_size):
                yield group[i:i + self.config.batch_size]

    def _width(self, request: LoopRequest) -> int | None:
        """Model-space width a new loop (or the remake of one) is drawn at; None for a genre with no model."""
        if request.width is not None and request.genre in self.models:
            return request.width
        return self._canvas(request.genre, request.bpm, request.max_bars)

    def _canvas(self, genre: str, bpm: float, max_bars: int) -> int | None:
        """The width the worker's canvas draws a genre's loops of up to ``max_bars`` bars at ``bpm`` at."""
        from ..render import loop_canvas

        model = self.models.get(genre)
        if model is None:
            return None
        return loop_canvas(model, self.config.canvas, max_bars, bpm, self.config.genres[genre].tempo_hint)

    def _run(self, group: list[LoopRequest]) -> None:
        head = group[0]
        model = self.models.get(head.genre)
        if model is None:
            for request in group:
                self.results.send(LoopFailed(request, f"genre {head.genre!r} has no model loaded", dropped=False))
            return
        started = time.perf_counter()
        try:
            made = self._sample(model, group)
        except Exception as err:  # one bad request must not end the worker
            for request in group:
                self.results.send(LoopFailed(request, f"{type(err).__name__}: {err}", dropped=False))
            traceback.print_exc()
            return
        sampled = time.perf_counter() - started
        for request, drawn in zip(group, made):
            self.sources.put(request.loop_id, drawn)
        width = made[0].latent.shape[-1]
        # Requests of one group may carry different tempos or lengths (changed while they waited).
        for bpm, max_bars in dict.fromkeys((r.bpm, r.max_bars) for r in group):
            members = [(r, drawn.image) for r, drawn in zip(group, made) if (r.bpm, r.max_bars) == (bpm, max_bars)]
            started = time.perf_counter()
            try:
                loops = self._loops(model, [image for _, image in members], bpm, max_bars)
            except BrokenProcessPool:
                raise  # a prep process died (out of memory, killed): end the worker, the engine restarts it
            except Exception as err:  # as above: fail these requests, keep the worker
                for request, _ in members:
                    self.results.send(LoopFailed(request, f"{type(err).__name__}: {err}", dropped=False))
                traceback.print_exc()
                continue
            share = sampled / len(group) + (time.perf_counter() - started) / len(members)
            for (request, _), loop in zip(members, loops):
                self._finish(request, loop, share, width)

    def _loops(self, model, images: list, bpm: float, max_bars: int) -> list:
        """Spectrogram images -> a Loop or a LoopError each, at ``bpm``, up to ``max_bars``, the engine's rate."""
        from ..loops import bar_choices, loops_from_images
        from ..loops.fromimage import LIVE_ITERATIONS

        return loops_from_images(images, model.mel, bpm=bpm, out_rate=self.config.sample_rate, device=model.device,
                                 n_iter=LIVE_ITERATIONS, bar_choices=bar_choices(max_bars), pool=self.pool,
                                 grid=model.grid)

    def _levelled_and_keyed(self, request: LoopRequest, loop):
        """The loop at the set's loudness, its key estimated and, if the request asks, moved to the set's
        key (by exactly ``request.pitch_shift``, or by the least that fits ``request.key``)."""
        from ..loops.key import fit_key, parse_key, with_key
        from ..loops.loudness import level
        from ..loops.prep import shift_pitch

        def finish(made):
            made = made if self.config.loudness is None else level(made, self.config.loudness)
            return made if self.key_net is None else with_key(made)

        loop = finish(loop)
        if request.pitch_shift:
            return finish(replace(shift_pitch(loop, request.pitch_shift), pitch_shift=request.pitch_shift))
        if request.key is not None and loop.key_confidence is not None:
            moved = fit_key(loop, parse_key(request.key))
            return loop if moved is loop else finish(moved)
        return loop

    def _finish(self, request: LoopRequest, loop, work: float, width: int) -> None:
        from ..loops import LoopError

        try:
            if isinstance(loop, LoopError):
                raise loop
            loop = self._levelled_and_keyed(request, loop)
            self.bank.write(request.slot, loop.audio)
        except (LoopError, ValueError) as err:
            self.results.send(LoopFailed(request, str(err), dropped=True))
            return
        self.results.send(LoopReady(request, len(loop.audio), loop.bpm, loop.bars, work, width, loop.loudness,
                                    loop.gain_db, loop.key, loop.key_confidence, loop.pitch_shift))

    def _sample(self, model, group: list[LoopRequest]) -> list[Drawn]:
        """Sampling for a group: one Drawn per request."""
        from ..diffusion import decode_images
        from ..diffusion.sampling import (Keep, continuation_input, denoise, initial_noise, invert,
                                          morph, seed_generators)

        head = group[0]
        label = model.class_label(self.config.genres[head.genre].label, head.asked_key)  # other models ignore the key
        labels = None if label is None else [label] * len(group)
        seeds = [r.seed for r in group]
        source = self.sources.get(head.source_id)
        remake = head.mode == "recut" and source is None and head.source_mode == "new"
        if head.mode != "new" and source is None and not remake:
            raise LookupError(f"loop {head.source_id} is no longer held by the worker "
                              "(it restarted, or the loop is older than its cache)")

        if head.mode == "recut" and not remake:  # same image, new tempo or length: only the image path runs again
            return [source]
        # A new loop's width comes from its length and tempo; what works from a source keeps the source's.
        width = source.latent.shape[-1] if source is not None and not remake else self._width(head)
        noise = initial_noise(model, seed_generators(seeds), width)
        options = dict(steps=head.steps, sampler=head.sampler, eta=head.eta, class_labels=labels)
        # A variation or continuation enters the schedule part way down, so it needs a few steps
        # to follow its source (at 1 step it could only copy it or ignore it).
        guided = dict(options, steps=max(head.steps, GUIDED_MIN_STEPS))
        if head.mode == "new" or remake:  # a new loop's seed and recipe make it again exactly
            x = denoise(model, seeds, noise=noise, **options)
        elif head.mode == "variation":
            x = denoise(model, seeds, noise=noise, start=source.latent[None], strength=head.strength, **guided)
        elif head.mode == "continuation":
            shifted, columns = continuation_input(model, source.latent[None].to(model.device),
                                                  model_overlap(model, width))
            x = denoise(model, seeds, noise=noise, keep=Keep(shifted, columns), **guided)
        elif head.mode == "morph":
            start_noise = source.noise[None] if source.noise is not None else invert(
                model, source.latent[None], steps=guided["steps"], class_labels=labels)
            target = initial_noise(model, seed_generators([head.target_seed]), width)
            x, noise = morph(model, start_noise, target, head.strength, steps=head.steps, class_labels=labels,
                             seeds=seeds)
        else:
            raise ValueError(f"unknown mode {head.mode!r} (modes: {', '.join(MODES)})")
        images = decode_images(model, x)
        # The starting noise is kept where it alone decides the loop (DDIM eta 0): morphs start from it.
        exact = head.mode == "morph" or (head.mode == "new" and head.sampler == "ddim" and head.eta == 0)
        x, noise = x.detach().cpu(), noise.detach().cpu()
        return [Drawn(x[i], noise[i] if exact else None, images[i]) for i in range(len(group))]


def model_overlap(model, width: int) -> float:
    """Seconds of the playing loop a continuation keeps: half its slice (``width`` model-space columns)."""
    frames = model.mel.x_res * width / model.sample_shape[2]
    return frames * model.mel.hop_length / model.mel.sample_rate / 2.0


def _prep_process_start() -> None:
    """A prep process: one torch thread, Ctrl-C is the engine's to handle, as in the worker; and it ends
    when the worker does, even when the worker is killed (the pool would wait on its queue for ever)."""
    import signal
    import threading

    import torch

    # The processes are the parallelism. With torch's default (a thread per core) in each, 8 prep
    # processes beside the worker's 15 threads on a 16-core GPU machine made it slower, not faster
    # (bench/results/worker-gpu.md: 217x against 348x without them).
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def follow_the_worker() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=follow_the_worker, name="follow-the-worker", daemon=True).start()


# The worker's niceness. Not SCHED_IDLE, which yields even to nice-19 jobs: with two busy processes on
# two cores the first loop never came. At nice 5 it takes a quarter of a core from a nice-0 job and
# nearly all of it from a nice-19 one, and still yields to the audio process (real-time, or nice -5)
# and the engine's control thread (nice 0).
WORKER_NICE = 5


def lower_priority() -> None:
    """The audio and the engine go first; the worker still gets its share beside background jobs."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), WORKER_NICE))
    except (AttributeError, OSError):  # not a POSIX system
        pass


def worker_main(config: WorkerConfig, requests, results) -> None:
    """Entry point of the worker process (spawned)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    lower_priority()
    worker = None
    try:
        worker = Worker(config, results)
        worker.serve(requests)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        if worker is not None and worker.pool is not None:
            worker.pool.shutdown(cancel_futures=True)
