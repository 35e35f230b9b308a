"""``python -m training corpus | prepare | train | distill | bake-guidance | eval | key-eval | key-net``: data, training and evaluation of livegen models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _progress(total: int, description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        transient=True)
    task = progress.add_task(description, total=total)
    return progress, (lambda: progress.advance(task))


def corpus(args) -> int:
    from .corpus import GENRES, build_corpus

    genres = args.genres.split(",") if args.genres else list(GENRES)
    progress, tick = _progress(args.clips * len(genres), "rendering corpus")
    with progress:
        written = build_corpus(args.out, clips_per_genre=args.clips, genres=genres, seed=args.seed, on_clip=tick,
                               seconds=args.seconds)
    print(f"{args.out}: {written} new clip(s), {args.clips} per genre for {', '.join(genres)}")
    return 0


def prepare(args) -> int:
    from livegen.audio import MelConfig
    from livegen.diffusion.architectures import ARCHITECTURES
    from livegen.loops.grid import Grid

    from .prepare import find_audio, prepare as run_prepare

    config = ARCHITECTURES[args.size].mel if args.size else MelConfig(
        x_res=args.x_res, y_res=args.y_res, sample_rate=args.sample_rate, hop_length=args.hop_length,
        n_fft=args.n_fft)
    grid = None
    if args.grid:
        if config.x_res % (args.beats_per_bar * args.frames_per_beat):
            raise ValueError(f"--grid: {config.x_res} frames are not whole bars of {args.beats_per_bar} beats x "
                             f"{args.frames_per_beat} frames")
        grid = Grid(beats_per_bar=args.beats_per_bar, bars=config.x_res // (args.beats_per_bar * args.frames_per_beat),
                    frames_per_beat=args.frames_per_beat)
    progress, tick = _progress(len(find_audio(args.audio_dir)), "audio files")
    with progress:
        report = run_prepare(args.audio_dir, args.data_dir, config, grid=grid, expected_bpm=args.expected_bpm,
                             on_file=tick, log=progress.console.print)
    what = f"{grid.bars}-bar windows" if grid else "slices"
    print(f"{args.data_dir}: {report.slices} {what} from {report.files} file(s); {report.silent} silent, "
          f"{report.unsure} with an unsure beat and {len(report.skipped)} unreadable file(s) skipped")
    return 0


def train(args) -> int:
    from .train import TrainSettings, train as run_train

    settings = TrainSettings(
        size=args.size, class_conditional=args.class_conditional, key_conditional=args.key_conditional,
        key_drop=args.key_drop, batch_size=args.batch, grad_accum=args.grad_accum,
        lr=args.lr, warmup_steps=args.warmup_steps, max_steps=args.max_steps, minutes=args.minutes,
        ema_decay=args.ema_decay, mixed_precision=args.mixed_precision, save_every=args.save_every,
        sample_every=args.sample_every, sample_steps=args.sample_steps, seed=args.seed,
        snr_gamma=args.snr_gamma, noise_offset=args.noise_offset, init=args.init)
    run_train(args.data_dir, args.model_dir, settings)
    return 0


def evaluate(args) -> int:
    from .eval import evaluate as run_eval, write_listening_page, write_report

    report = run_eval(args.model_dir, args.data_dir, count=args.count, steps=args.steps, sampler=args.sampler,
                      eta=args.eta, seed=args.seed,
                      fidelity_steps=tuple(args.fidelity_steps), reference_steps=args.reference_steps,
                      fidelity_count=args.fidelity_count, device=args.device, loops_per_genre=args.loops,
                      bpm=args.bpm, corpus_dir=args.corpus, keys=args.keys, log=print)
    print(report.table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_report(report, args.json)
    if args.report:
        print(f"listening page: {write_listening_page(report, args.report)}")
    return 0


def key_eval(args) -> int:
    import json

    from livegen.diffusion import load_model

    from .keyeval import measure_key_hits, report_dict

    model = load_model(args.model_dir, args.device)
    steps = args.steps or int(model.extra.get("default_steps", 50))
    eta = float(model.extra.get("default_eta", 0.0)) if args.eta is None else args.eta
    report = measure_key_hits(model, keys=args.keys, loops_per_key=args.loops_per_key, steps=steps,
                              sampler=str(model.extra.get("default_sampler", "ddim")), eta=eta, seed=args.seed,
                              data_dir=args.data, log=print)
    print(report.table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report_dict(report), indent=2) + "\n")
    return 0


def distill(args) -> int:
    from .distill import DistillSettings, distill as run_distill

    settings = DistillSettings(
        teacher_steps=args.teacher_steps, student_steps=tuple(args.student_steps), pairs=args.pairs,
        heldout=args.heldout, batch_size=args.batch, teacher_batch=args.teacher_batch, lr=args.lr,
        max_steps=args.max_steps, minutes=args.minutes, texture_weight=args.texture_weight, init=args.init,
        mixed_precision=args.mixed_precision,
        save_every=args.save_every, seed=args.seed, device=args.device)
    run_distill(args.teacher_dir, args.student_dir, settings)
    return 0


def bake_guidance(args) -> int:
    from .bake_guidance import BakeSettings, bake_guidance as run_bake

    settings = BakeSettings(scale=args.scale, batch_size=args.batch, lr=args.lr, max_steps=args.max_steps,
                            minutes=args.minutes, save_every=args.save_every, seed=args.seed, tune=args.tune)
    run_bake(args.teacher_dir, args.student_dir, args.data_dir, settings)
    return 0


def key_net(args) -> int:
    from .key_estimator import KeyNetSettings, train_key_net

    settings = KeyNetSettings(clips=args.clips, steps=args.steps, batch=args.batch, lr=args.lr, width=args.width,
                              validation_clips=args.validation_clips, seed=args.seed)
    figures = train_key_net(args.out, settings, palette_cache=args.palette)
    print(f"{args.out}: validation MIREX score {figures['mirex']:.3f}, exact {figures['exact']:.3f}, "
          f"drums alone read as no key {figures['no_key_right']:.3f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    c = commands.add_parser("corpus", help="render the demo corpus from Debian's instrument packages")
    c.add_argument("out", type=Path, help="output folder (one sub-folder per genre)")
    c.add_argument("--clips", type=int, default=400, help="clips per genre (default 400)")
    c.add_argument("--seconds", type=float, default=12.0,
                   help="length of a clip (default 12; grid data wants several 4-bar windows a clip, e.g. 24)")
    c.add_argument("--genres", help="comma-separated subset of techno,house,hiphop,breaks")
    c.add_argument("--seed", type=int, default=0)

    p = commands.add_parser("prepare", help="audio folder -> data set of mel images")
    p.add_argument("audio_dir", type=Path)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--size", help="take the mel settings of a model size (tiny, small, teticio)")
    p.add_argument("--x-res", type=int, default=256)
    p.add_argument("--y-res", type=int, default=256)
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--hop-length", type=int, default=512)
    p.add_argument("--n-fft", type=int, default=2048)
    p.add_argument("--grid", action="store_true",
                   help="windows of whole bars from a downbeat, a fixed number of frames a beat (a grid model's data)")
    p.add_argument("--frames-per-beat", type=int, default=16, help="with --grid (default 16: 4 bars in 256 frames)")
    p.add_argument("--beats-per-bar", type=int, default=4, help="with --grid")
    p.add_argument("--expected-bpm", type=float, default=120.0,
                   help="with --grid: the beat tracker's likely tempo for files without a sidecar tempo")

    t = commands.add_parser("train", help="train a model (also under accelerate launch)")
    t.add_argument("data_dir", type=Path, help="a data set made by prepare")
    t.add_argument("model_dir", type=Path, help="where the model (and checkpoints, samples) go; resumes from it")
    t.add_argument("--size", default="tiny", help="micro, tiny, small or teticio (the data set must match)")
    t.add_argument("--class-conditional", action="store_true", help="one model for all genres, by label")
    t.add_argument("--key-conditional", action="store_true",
                   help="with --class-conditional: each clip's key (from prepare) as a second label, so the "
                        "model can be asked for a key")
    t.add_argument("--key-drop", type=float, default=0.15,
                   help="share of clips shown with the 'any' key, for loops made without one (default 0.15)")
    t.add_argument("--batch", type=int, default=16, help="batch per process")
    t.add_argument("--grad-accum", type=int, default=1)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup-steps", type=int, default=100)
    t.add_argument("--max-steps", type=int, default=1000)
    t.add_argument("--minutes", type=float, help="stop (and save) after this much wall-clock time")
    t.add_argument("--ema-decay", type=float, default=0.999)
    t.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    t.add_argument("--save-every", type=int, default=200)
    t.add_argument("--sample-every", type=int, default=0, help="render sample loops every N steps (0: never)")
    t.add_argument("--sample-steps", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--snr-gamma", type=float, help="min-SNR loss weighting, e.g. 5 (default: plain noise MSE)")
    t.add_argument("--noise-offset", type=float, default=0.0,
                   help="std of a per-image constant added to the training noise, e.g. 0.1: the model learns "
                        "each loop's level instead of taking it from the starting noise (default 0)")
    t.add_argument("--init", help="start from this model dir's weights (same size and genres)")

    d = commands.add_parser("distill", help="a few-step student of a trained model (1, 2 or 4 DDIM steps)")
    d.add_argument("teacher_dir", type=Path, help="a trained epsilon-prediction model")
    d.add_argument("student_dir", type=Path, help="where the student goes; resumes from its checkpoints/")
    d.add_argument("--teacher-steps", type=int, help="the teacher's DDIM steps (default: its default, else 8)")
    d.add_argument("--student-steps", type=int, nargs="+", default=[1, 2, 4])
    d.add_argument("--pairs", type=int, default=4096, help="teacher loops to learn from")
    d.add_argument("--heldout", type=int, default=64, help="further teacher loops for the reported distance")
    d.add_argument("--batch", type=int, default=64)
    d.add_argument("--teacher-batch", type=int, default=256)
    d.add_argument("--lr", type=float, default=1e-4)
    d.add_argument("--max-steps", type=int, default=2000)
    d.add_argument("--minutes", type=float, help="stop (and save) after this much training time")
    d.add_argument("--texture-weight", type=float, default=0.0,
                   help="weight of the per-band transient term against smoothing (0: plain squared error)")
    d.add_argument("--init", help="start from this student's weights (a longer run in parts)")
    d.add_argument("--mixed-precision", default="no", choices=["no", "bf16"])
    d.add_argument("--save-every", type=int, default=500)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default=None)

    b = commands.add_parser("bake-guidance", help="a key-conditioned model whose one pass a step does what its "
                                                  "key guidance did with two")
    b.add_argument("teacher_dir", type=Path, help="a key-conditioned model with key_guidance above 1")
    b.add_argument("student_dir", type=Path, help="where the student goes; resumes from its checkpoints/")
    b.add_argument("data_dir", type=Path, help="the teacher's prepared data set (windows with keys)")
    b.add_argument("--scale", type=float, help="the guidance to bake (default: the teacher's key_guidance)")
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--lr", type=float, default=1e-3)
    b.add_argument("--max-steps", type=int, default=2000)
    b.add_argument("--minutes", type=float, help="stop (and save) after this much time")
    b.add_argument("--save-every", type=int, default=100)
    b.add_argument("--tune", default="conditioning", choices=["conditioning", "all"],
                   help="train only where the label and the step enter the UNet (default), or every weight")
    b.add_argument("--seed", type=int, default=0)

    e = commands.add_parser("eval", help="the sound of a model's loops beside the ceiling; Frechet distance, "
                                         "sampler fidelity")
    e.add_argument("model_dir", type=Path)
    e.add_argument("data_dir", type=Path, help="the prepared data set (its held-out files are the reference)")
    e.add_argument("--count", type=int, default=32, help="slices for the Frechet distance (and real ones to compare)")
    e.add_argument("--steps", type=int, help="sampling steps (default: the model's own, else 50)")
    e.add_argument("--sampler", choices=["ddim", "ddpm", "dpm++"])
    e.add_argument("--eta", type=float, help="DDIM eta of the loops measured (default: the model's own, else 0)")
    e.add_argument("--fidelity-steps", type=int, nargs="*", default=[10, 20, 50])
    e.add_argument("--reference-steps", type=int, default=1000)
    e.add_argument("--fidelity-count", type=int, default=2)
    e.add_argument("--device", default=None)
    e.add_argument("--json", type=Path, help="also write the figures to this file")
    e.add_argument("--loops", type=int, default=8, help="loops per genre whose sound is measured (default 8)")
    e.add_argument("--seed", type=int, default=1000,
                   help="first seed of the loops, and of the draw of held-out slices (default 1000)")
    e.add_argument("--bpm", type=float, help="the loops' tempo (default: each genre preset's)")
    e.add_argument("--corpus", type=Path, help="the audio folder of the data set (default: as prepare recorded it)")
    e.add_argument("--keys", nargs="+", help="a key-conditioned model's loops ask for these Camelot keys in turn "
                   "(default: none)")
    e.add_argument("--report", type=Path, help="write a listening page (loops, ceiling, pictures, figures) here")

    ke = commands.add_parser("key-eval", help="a key-conditioned model: the share of its loops in the key asked for")
    ke.add_argument("model_dir", type=Path)
    ke.add_argument("--data", type=Path, help="its prepared data set: also score the held-out windows (the ceiling)")
    ke.add_argument("--keys", nargs="+", help="Camelot codes to ask for (default: all 24)")
    ke.add_argument("--loops-per-key", type=int, default=2, help="loops a genre for each key (default 2)")
    ke.add_argument("--steps", type=int, help="sampling steps (default: the model's own)")
    ke.add_argument("--eta", type=float, help="DDIM eta (default: the model's own)")
    ke.add_argument("--seed", type=int, default=2000, help="first seed of the loops (default 2000)")
    ke.add_argument("--device", default=None)
    ke.add_argument("--json", type=Path, help="also write the figures to this file")

    k = commands.add_parser("key-net", help="train the learnt key estimator on freshly rendered demo-corpus clips")
    k.add_argument("out", type=Path, help="folder for the estimator (the shipped one: livegen/loops/key-net)")
    k.add_argument("--clips", type=int, default=2400, help="training clips (12 s each, 15%% drums alone)")
    k.add_argument("--validation-clips", type=int, default=128)
    k.add_argument("--steps", type=int, default=3000)
    k.add_argument("--batch", type=int, default=32)
    k.add_argument("--lr", type=float, default=2e-3)
    k.add_argument("--width", type=int, default=8, help="channels of the first convolutions")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--palette", type=Path, help="a rendered note palette to reuse (a corpus's .palette.npz)")

    args = parser.parse_args(argv)
    from .corpus import CorpusError

    try:
        return {"corpus": corpus, "prepare": prepare, "train": train, "distill": distill, "bake-guidance": bake_guidance,
                "eval": evaluate, "key-eval": key_eval, "key-net": key_net}[args.command](args)
    except (CorpusError, FileNotFoundError, ValueError) as err:
        print(f"training: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
