"""Seconds per finished loop, seeds to tempo-locked loop audio: the image path against the old one.

For a model dir (default: the one the genre presets use, the shipped default)
and each genre preset (its class label, tempo, steps and sampler), one batch of seeds is sampled (DDIM + decoding to uint8 images), then
turned into loops at the genre's tempo (the middle of its ``bpm_range``;
techno also at 128 BPM, the main figure) at 48 kHz two ways, in the same run:

- new: ``loops_from_images`` (beat grid from the image, mel-domain stretch,
  Griffin-Lim on the loop's frames only, ``LIVE_ITERATIONS`` as the live
  worker runs it), split into its stages;
- old: ``MelCodec.images_to_audio`` on whole images at the codec's n_iter,
  then ``make_loop`` on each clip (beat grid on librosa's onset strength, Rubber Band stretch).

Times are per loop (batch time / batch), the best of ``--repeats`` runs after
a warm-up (the machine is shared: the best run is the least disturbed one).
The real-time factor counts finished loop audio only: ``bars * 4 * 60 / bpm``
seconds per loop that came out (dropped slices give none), per second of work.
Then spectral convergence against Griffin-Lim iterations on the generated
images (and a prepared data set's held-out images with ``--data``), and the
tempo and phase error of both beat grids on synthetic drum patterns.

    .venv/bin/python bench/pipeline.py                     # the shipped default model, batch 8, 2 threads
    .venv/bin/python bench/pipeline.py --model presets/models/lite-genres   # the undistilled teacher, 8 steps
    .venv/bin/python bench/pipeline.py --data /work/data-lite --repeats 5
    .venv/bin/python bench/pipeline.py --quick             # techno only, 1 repeat, no convergence
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from benchkit import REPO, machine_header, markdown_table, progress, publish, set_threads, timed, use_checkout

use_checkout()

from livegen.audio import MelCodec  # noqa: E402
from livegen.audio.griffinlim import spectral_convergence  # noqa: E402
from livegen.diffusion import decode_images, generate, load_model  # noqa: E402
from livegen.loops import LoopError, loops_from_images, make_loop  # noqa: E402
from livegen.loops.fromimage import LIVE_ITERATIONS, frame_count, image_beat_grid, stretch_frames  # noqa: E402
from livegen.loops.prep import find_beat_grid, plan_cut  # noqa: E402
from livegen.presets import PRESETS_DIR, load_genre  # noqa: E402

OUT_RATE = 48000
ITERATIONS = (8, 12, 16, 24, 32)
FALLBACK_STEPS = 8  # for a model dir no preset names (the undistilled lite-genres' preset steps)


@dataclass
class Row:
    genre: str
    bpm: float
    steps: int
    sampling: float  # seconds per loop
    new: dict  # stage -> seconds per loop
    old: dict
    new_audio: float  # seconds of finished loop audio per loop made (dropped count as 0)
    old_audio: float
    new_kept: str
    old_kept: str

    def cells(self) -> list[str]:
        new, old = sum(self.new.values()), sum(self.old.values())
        rtf_new = self.new_audio / (self.sampling + new)
        rtf_old = self.old_audio / (self.sampling + old)
        return [self.genre, f"{self.bpm:g}", self.steps, f"{1000 * self.sampling:.0f}",
                f"{1000 * new:.0f}", f"{1000 * old:.0f}", f"{old / new:.1f}x",
                f"{1000 * (self.sampling + new):.0f}", f"{rtf_new:.1f}x", f"{rtf_old:.1f}x",
                f"{self.new_audio / new:.0f}x", f"{self.new_kept} / {self.old_kept}"]


HEADERS = ["genre", "BPM", "steps", "sampling ms/loop", "image->loop new ms/loop", "image->loop old ms/loop",
           "old / new", "total new ms/loop", "real-time factor new", "real-time factor old",
           "image->loop alone, new", "loops kept new / old"]


def genre_presets(names: list[str] | None):
    """The genre presets (all, or those named): label, tempo range, steps and sampler for each row."""
    presets = [load_genre(p) for p in sorted((PRESETS_DIR / "genres").glob("*.toml"))]
    chosen = [p for p in presets if not names or p.name in names]
    if not chosen:
        raise SystemExit(f"no genre presets {names} in {PRESETS_DIR / 'genres'}")
    return chosen


def default_model() -> Path:
    """The model the genre presets use (the shipped default)."""
    return genre_presets(None)[0].model


def new_path(images, mel, bpm):
    stages: dict[str, float] = {}
    loops = loops_from_images(images, mel, bpm=bpm, out_rate=OUT_RATE, n_iter=LIVE_ITERATIONS, timings=stages)
    return stages, loops


def old_path(images, mel, bpm):
    inversion, clips = timed(MelCodec(mel).images_to_audio, images, n_iter=mel.n_iter)
    loops = []

    def cut_all():
        for clip in clips:
            try:
                loops.append(make_loop(clip, mel.sample_rate, bpm=bpm, out_rate=OUT_RATE))
            except LoopError as err:
                loops.append(err)

    cutting, _ = timed(cut_all)
    return {"griffin-lim": inversion, "make_loop": cutting}, loops


def audio_seconds(loops) -> float:
    return sum(loop.bars * loop.beats_per_bar * 60 / loop.bpm for loop in loops if not isinstance(loop, LoopError))


def kept(loops) -> str:
    return f"{sum(not isinstance(loop, LoopError) for loop in loops)}/{len(loops)}"


def best(runs: list[dict]) -> dict:
    """The least disturbed run: the one with the smallest total."""
    return min(runs, key=lambda r: sum(r.values()))


def bench_genre(model, preset, bpm: float, args, all_images: list) -> Row:
    # A preset's steps are for its own model; another model dir (a teacher, say) takes FALLBACK_STEPS.
    steps = args.steps or (preset.steps if preset.model.resolve() == args.model.resolve() else FALLBACK_STEPS)
    label = model.class_label(preset.label)
    labels = None if label is None else [label] * args.batch
    batch = args.batch
    seeds = list(range(1000, 1000 + batch))
    sampling_runs, new_runs, old_runs = [], [], []
    for repeat in range(args.repeats):
        seconds, images = timed(lambda: decode_images(model, generate(model, seeds, steps=steps, sampler=preset.sampler,
                                                                      batch_size=batch, class_labels=labels)))
        sampling_runs.append(seconds)
        new_stages, new_loops = new_path(images, model.mel, bpm)
        old_stages, old_loops = old_path(images, model.mel, bpm)
        new_runs.append(new_stages)
        old_runs.append(old_stages)
        progress(f"  {preset.name} @ {bpm:g}: run {repeat + 1}: sampling {seconds / batch * 1000:.0f} ms/loop, "
                 f"new {sum(new_stages.values()) / batch * 1000:.0f}, old {sum(old_stages.values()) / batch * 1000:.0f}")
    all_images.append(images)
    per_loop = lambda stages: {k: v / batch for k, v in stages.items()}  # noqa: E731
    return Row(preset.name, bpm, steps, min(sampling_runs) / batch, per_loop(best(new_runs)), per_loop(best(old_runs)),
               audio_seconds(new_loops) / batch, audio_seconds(old_loops) / batch, kept(new_loops), kept(old_loops))


# ------------------------------------------------------------ convergence
def convergence(images: np.ndarray, mel, bpm: float) -> tuple[list[list], int]:
    """Mean spectral convergence per iteration count, whole images (old path) and the loops' stretched frames
    (new path); and how many images made a loop."""
    from livegen.audio.griffinlim import GriffinLim

    codec = MelCodec(mel)
    inverter = GriffinLim.for_config(mel)
    whole = codec.image_to_mel_power(images)
    pieces: dict[int, list] = {}
    for image in images:
        try:
            cut = plan_cut((mel.x_res - 1) * mel.hop_length, mel.sample_rate,
                           image_beat_grid(image, mel, expected_bpm=bpm), bpm=bpm, out_rate=OUT_RATE)
        except LoopError:
            continue
        frames = frame_count(cut, mel, 0.01)
        pieces.setdefault(frames, []).append(stretch_frames(codec.image_to_mel_power(image), cut, mel.hop_length,
                                                            frames))
    import torch

    scores = {}
    for n_iter in ITERATIONS:
        old = np.mean([spectral_convergence(a, p.numpy(), mel) for a, p in zip(inverter(whole, n_iter=n_iter), whole)])
        new = [spectral_convergence(a, p.numpy(), mel) for group in pieces.values()
               for a, p in zip(inverter(torch.stack(group), n_iter=n_iter), group)]
        scores[n_iter] = (old, float(np.mean(new)), len(new))
    ref_old, ref_new, _ = scores[max(ITERATIONS)]
    return [[n, f"{o:.4f}", f"{100 * (o / ref_old - 1):+.1f}%", f"{w:.4f}", f"{100 * (w / ref_new - 1):+.1f}%"]
            for n, (o, w, _) in scores.items()], sum(len(g) for g in pieces.values())


CONVERGENCE_HEADERS = ["Griffin-Lim iterations", "whole image (old path)", f"vs {max(ITERATIONS)}",
                       "loop frames, stretched (new path)", f"vs {max(ITERATIONS)}"]


# ------------------------------------------------------------ beat grids
def grid_precision(mel) -> list[list[str]]:
    """Tempo and phase error of the image's grid and of the old path's (on Griffin-Lim audio of the same image)."""
    from tests.synth import drum_pattern  # the checkout is on sys.path (use_checkout)

    codec = MelCodec(mel)
    rate = mel.sample_rate
    rows = {"image (new)": ([], []), "decoded audio (old)": ([], [])}
    for bpm in (84, 90, 100, 120, 128, 140, 160, 174):
        for offset in (0.03, 0.13, 0.27):
            audio = drum_pattern(bpm, seconds=mel.slice_size / rate, sample_rate=rate, offset=offset, seed=bpm)
            image = codec.audio_to_image(np.concatenate([audio, np.zeros(mel.slice_size - len(audio), np.float32)]))
            grids = {"image (new)": image_beat_grid(image, mel, expected_bpm=bpm),
                     "decoded audio (old)": find_beat_grid(codec.images_to_audio(image), rate, expected_bpm=bpm)}
            beat = 60 * rate / bpm
            for name, grid in grids.items():
                rows[name][0].append(100 * abs(60 * rate / grid.period / bpm - 1))
                rows[name][1].append(1000 * (((grid.start - offset * rate) / beat + 0.5) % 1 - 0.5) * beat / rate)
    return [[name, f"{max(tempo):.3f}%", f"{np.mean(tempo):.3f}%", f"{np.mean(phase):+.1f}",
             f"{np.std(phase):.1f}", f"{min(phase):+.1f} / {max(phase):+.1f}"]
            for name, (tempo, phase) in rows.items()]


GRID_HEADERS = ["beat grid from", "tempo error, max", "tempo error, mean", "phase ms, mean (+: late)", "phase ms, sd",
                "phase ms, min / max"]


# ------------------------------------------------------------------- run
def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="model dir (default: the genre presets' model, the shipped default)")
    parser.add_argument("--genres", nargs="+", help="genre presets to run (labels and tempos; default: all)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"sampling steps (default: each preset's for its own model, else {FALLBACK_STEPS})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row; the best is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    parser.add_argument("--data", type=Path, default=None,
                        help="a prepared data set (training/prepare.py): convergence on its held-out images too")
    parser.add_argument("--quick", action="store_true", help="techno only, 1 repeat, no convergence or grid tables")
    parser.add_argument("--output", default="pipeline.md", help="file name under bench/results/")
    args = parser.parse_args()
    args.model = args.model or default_model()
    if args.quick:
        args.genres, args.repeats = ["techno"], 1
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be at least 1")
    return args


def main():
    args = parse_args()
    set_threads(args.threads)
    model = load_model(args.model, "cpu")
    presets = genre_presets(args.genres)
    runs = [(p, 128.0) for p in presets if p.name == "techno"] + [(p, sum(p.bpm_range) / 2) for p in presets]

    progress("warm-up")
    warm = decode_images(model, generate(model, [0, 1], steps=2))
    new_path(warm, model.mel, 120.0)
    old_path(warm, model.mel, 120.0)

    rows, images = [], []
    for preset, bpm in runs:
        rows.append(bench_genre(model, preset, bpm, args, images))
    new_stages = ", ".join(rows[0].new)
    details = [
        f"Model: {args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model}, "
        f"mel {model.mel.y_res} x {model.mel.x_res}, {model.mel.sample_rate} Hz, n_fft {model.mel.n_fft}, "
        f"hop {model.mel.hop_length}; CPU, fp32; batch {args.batch}; output {OUT_RATE} Hz",
        f"new: loops_from_images, {LIVE_ITERATIONS} Griffin-Lim iterations (stages: {new_stages}); "
        f"old: images_to_audio at the codec's {model.mel.n_iter} iterations on all {model.mel.x_res} frames, "
        "then make_loop per clip (beat grid on librosa's onset strength, Rubber Band)",
        f"Best of {args.repeats} run(s) per row after a warm-up; real-time factor = seconds of finished loop audio "
        "(bars x 4 x 60 / BPM per loop kept) per second of work, sampling included; "
        "'image->loop alone' leaves sampling out",
    ]
    text = machine_header("Image to loop: the image path against Griffin-Lim on whole images + make_loop", details)
    text += "\n\n" + markdown_table(HEADERS, [r.cells() for r in rows])
    main_row = rows[0]
    stage_rows = [["new", stage, f"{1000 * s:.1f}"] for stage, s in main_row.new.items()]
    stage_rows += [["old", stage, f"{1000 * s:.1f}"] for stage, s in main_row.old.items()]
    text += (f"\n\nStages, {main_row.genre} at {main_row.bpm:g} BPM (ms per loop):\n\n"
             + markdown_table(["path", "stage", "ms/loop"], stage_rows))
    if not args.quick:
        progress("convergence")
        generated = np.concatenate(images)
        table, count = convergence(generated, model.mel, 128.0)
        text += (f"\n\nSpectral convergence (lower is better) against Griffin-Lim iterations, {len(generated)} "
                 f"generated images (all genres above); the new path's on the {count} that make a loop at 128 BPM, "
                 "its stretched frames with context:\n\n" + markdown_table(CONVERGENCE_HEADERS, table))
        if args.data is not None:
            from training.prepare import load_images

            real = load_images(args.data, "heldout")[0]
            real = real[np.random.default_rng(0).choice(len(real), min(64, len(real)), replace=False)]
            table, count = convergence(real, model.mel, 128.0)
            text += (f"\n\nThe same on {len(real)} held-out images of {args.data} ({count} make a loop):\n\n"
                     + markdown_table(CONVERGENCE_HEADERS, table))
        progress("beat grids")
        text += ("\n\nBeat grids on drum patterns (tests/synth.py) at 84-174 BPM, 3 offsets each, encoded to "
                 "images; phase = grid start minus the nearest hit:\n\n"
                 + markdown_table(GRID_HEADERS, grid_precision(model.mel)))
    publish(text, args.output)


if __name__ == "__main__":
    main()
