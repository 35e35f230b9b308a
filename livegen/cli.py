"""``livegen`` command line: generate | new-model | info."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .diffusion.sampling import SAMPLERS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livegen", description="Live AI loop generator.")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="render loops from a model to audio files")
    gen.add_argument("--model", required=True, help="model directory or genre preset name")
    gen.add_argument("--count", type=_positive_int, default=4, help="loops to render (default 4)")
    gen.add_argument("--steps", type=_positive_int, help="sampling steps (default: the preset's, else 50)")
    gen.add_argument("--sampler", choices=list(SAMPLERS), help="default: the preset's, else ddim")
    gen.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 like DDPM")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first loop; loop i uses seed + i")
    gen.add_argument("--batch", type=_positive_int, default=8, help="loops sampled at once")
    gen.add_argument("--genre", help="class label (name or index) for class-conditional models")
    gen.add_argument("--bpm", type=float, help="stretch every loop to this tempo")
    gen.add_argument("--raw", action="store_true", help="write the whole slice, not cut to bars")
    gen.add_argument("--sample-rate", type=int, help="output sample rate (default: the model's)")
    gen.add_argument("--format", choices=["wav", "flac"], default="wav")
    gen.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (cuda > mps > cpu)")
    gen.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    gen.add_argument("--out", type=Path, default=Path("loops"), help="output folder (default ./loops)")

    new = commands.add_parser("new-model", help="write an untrained model dir of a named size")
    new.add_argument("path", type=Path)
    new.add_argument("--size", default="tiny", help="micro (tests), lite or tiny (2.5M), small (10.7M), teticio (113.7M)")
    new.add_argument("--genres", help="comma-separated genre names: makes the model class-conditional")
    new.add_argument("--seed", type=int, default=0)

    info = commands.add_parser("info", help="describe a model dir")
    info.add_argument("model", help="model directory or genre preset name")
    return parser


def _resolve_model(name: str, device: str = "auto", precision: str = "auto"):
    """A model dir, or a genre preset naming one; returns (model, preset or None)."""
    from .diffusion import load_model
    from .presets import load_genre

    path = Path(name).expanduser()
    if path.is_dir():
        return load_model(path, device, precision), None
    preset = load_genre(name)
    return load_model(preset.model, device, precision), preset


def _generate(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .render import RenderSettings, loop_filename, render, write_loop

    console = Console(stderr=True)
    model, preset = _resolve_model(args.model, args.device, args.precision)
    settings = RenderSettings(
        steps=args.steps or (preset.steps if preset else 50),
        sampler=args.sampler or (preset.sampler if preset else "ddim"),
        eta=args.eta, batch_size=args.batch, genre=args.genre or (preset.label if preset else None),
        bpm=args.bpm, raw=args.raw, sample_rate=args.sample_rate,
    )
    seeds = [args.seed + i for i in range(args.count)]
    console.print(f"[bold]{model.name}[/] on {model.device} ({str(model.dtype).removeprefix('torch.')}), "
                  f"{settings.sampler} {settings.steps} steps, {args.count} loop(s)")
    written, skipped = 0, 0
    started = time.perf_counter()
    audio_seconds = 0.0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        batches = -(-args.count // settings.batch_size)
        task = progress.add_task("sampling", total=batches * settings.steps)  # one tick per batch step
        for item in render(model, seeds, settings, on_step=lambda n: progress.advance(task, n)):
            if item.loop is None:
                skipped += 1
                progress.console.print(f"[yellow]seed {item.seed}: skipped, {item.error}[/] (--raw keeps whole slices)")
                continue
            metadata = {"model": str(model.path), "seed": item.seed, "steps": settings.steps,
                        "sampler": settings.sampler, "eta": settings.eta, "genre": settings.genre,
                        "raw": settings.raw}
            path = write_loop(args.out, loop_filename(model.name, item.seed, settings, item.loop), item.loop,
                              metadata, args.format)
            audio_seconds += item.loop.seconds
            written += 1
            progress.console.print(f"{path}  {item.loop.seconds:.2f}s"
                                   + (f"  {item.loop.bars} bar(s) at {item.loop.bpm:.1f} BPM" if item.loop.bars else ""))
    elapsed = time.perf_counter() - started
    console.print(f"{written} written, {skipped} skipped in {elapsed:.1f}s"
                  + (f" ({audio_seconds / elapsed:.1f}x real time)" if written else ""))
    return 0 if written else 1


def _new_model(args) -> int:
    from .diffusion.architectures import ARCHITECTURES, new_model, parameter_count

    if args.size not in ARCHITECTURES:
        print(f"livegen: unknown size {args.size!r}; choose {', '.join(ARCHITECTURES)}", file=sys.stderr)
        return 2
    genres = [g.strip() for g in args.genres.split(",") if g.strip()] if args.genres else None
    model = new_model(args.size, class_names=genres, seed=args.seed)
    model.extra["note"] = f"untrained ({args.size}, seed {args.seed}): for testing the chain, it makes noise"
    model.save(args.path)
    print(f"{args.path}: untrained {args.size} model, {parameter_count(model) / 1e6:.1f}M parameters")
    return 0


def _info(args) -> int:
    from .diffusion.architectures import parameter_count

    model, preset = _resolve_model(args.model)
    cfg = model.mel
    print(f"model      {model.path}")
    if preset:
        print(f"preset     {preset.name}: {preset.sampler} {preset.steps} steps, {preset.bpm_range[0]:g}-"
              f"{preset.bpm_range[1]:g} BPM, label {preset.label}")
    print(f"unet       {parameter_count(model) / 1e6:.1f}M parameters, sample {model.sample_shape}")
    print(f"scheduler  {type(model.scheduler).__name__}, {model.scheduler.config.num_train_timesteps} train steps")
    print(f"mel        {cfg.y_res}x{cfg.x_res} @ {cfg.sample_rate} Hz, hop {cfg.hop_length}, "
          f"{cfg.slice_seconds:.2f}s a slice")
    print(f"vqvae      {'yes' if model.vqvae is not None else 'no'}")
    print(f"genres     {', '.join(model.class_names) or '-'}")
    for key, value in sorted(model.extra.items()):
        print(f"{key:<10} {value}")
    return 0


def main(argv=None) -> int:
    from .audio import CodecError
    from .diffusion import CheckpointError, SamplingError
    from .presets import PresetError

    args = _build_parser().parse_args(argv)
    handlers = {"generate": _generate, "new-model": _new_model, "info": _info}
    try:
        return handlers[args.command](args)
    except (CheckpointError, CodecError, PresetError, SamplingError) as err:
        print(f"livegen: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
