"""``livegen`` command line: play | generate | devices | new-model | info."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .engine.settings import EngineSettings
from .engine.setkey import KEY_MODES
from .engine.transport import QUANTISE_BARS
from .loops.loudness import DEFAULT_TARGET_LUFS
from .loops.prep import BAR_LENGTHS, CANVASES
from .presets import SAMPLERS

CANVAS_HELP = ("fit (default): draw each slice wide enough for the loop length at the tempo (up to twice the "
               "model's width: 4-bar loops down to ~90 BPM); native: the model's own width (5.94 s for the shipped "
               "models, 2 bars at 128 BPM)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _tempo(text: str) -> float:
    from .limits import TEMPO

    value = float(text)
    if value not in TEMPO:
        raise argparse.ArgumentTypeError(TEMPO.outside("tempo", value))
    return value


def _loudness(text: str) -> float | None:
    """A levelling target in LUFS, or "off"."""
    from .limits import LOUDNESS

    if text.strip().lower() == "off":
        return None
    value = float(text)
    if value not in LOUDNESS:
        raise argparse.ArgumentTypeError(LOUDNESS.outside("loudness", value))
    return value


def _key_code(text: str) -> str:
    """A key (8A, Am, A minor ...) as its Camelot code."""
    from .loops.key import parse_key

    try:
        return parse_key(text).camelot
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _set_key(text: str) -> str | None:
    """The set's key: "auto", "off" (None) or a key (8A, Am, A minor ...)."""
    cleaned = text.strip().lower()
    if cleaned in ("auto", "off"):
        return None if cleaned == "off" else "auto"
    return _key_code(text)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livegen", description="Live AI loop generator.")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="render loops from a model to audio files")
    gen.add_argument("--model", required=True, help="genre preset name, model directory or Hugging Face Hub id")
    gen.add_argument("--count", type=_positive_int, default=4, help="loops to render (default 4)")
    gen.add_argument("--steps", type=_positive_int, help="sampling steps (default: the preset's, else 50)")
    gen.add_argument("--sampler", choices=list(SAMPLERS), help="default: the preset's, else ddim")
    gen.add_argument("--eta", type=float, help="DDIM eta: 0 draws a loop from its starting noise alone, 1 adds "
                                                "fresh noise each step as DDPM does (default: the preset's)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first loop; loop i uses seed + i")
    gen.add_argument("--loudness", type=_loudness, default=DEFAULT_TARGET_LUFS, metavar="LUFS",
                     help="level each loop to this integrated loudness, or 'off' for peak-normalised loops; a loop "
                          f"that would clip is turned down to fit (default {DEFAULT_TARGET_LUFS:g})")
    gen.add_argument("--batch", type=_positive_int, default=8, help="loops sampled at once")
    gen.add_argument("--genre", help="class label (name or index) for class-conditional models")
    gen.add_argument("--key", type=_key_code, help="loops in this key (8A, Am, C major ...): a key-conditioned model "
                                                   "is asked for it, and a loop still out of it is moved by up to 3 "
                                                   "semitones into a key that mixes")
    gen.add_argument("--bpm", type=_tempo, help="stretch every loop to this tempo")
    gen.add_argument("--bars", type=int, choices=sorted(BAR_LENGTHS), default=4,
                     help="longest loop in bars (default 4); a slice too short for it gives fewer")
    gen.add_argument("--canvas", choices=CANVASES, default="fit", help=CANVAS_HELP)
    gen.add_argument("--raw", action="store_true", help="write the whole slice, not cut to bars")
    gen.add_argument("--sample-rate", type=int, help="output sample rate (default: the model's)")
    gen.add_argument("--format", choices=["wav", "flac"], default="wav")
    gen.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (cuda > mps > cpu)")
    gen.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                     help="the UNet's precision. auto: fp16 on a GPU, fp32 on a CPU. bf16 on a CPU with AVX-512 BF16 or AMX "
                     "is 1.4-1.5x faster, but a loop then depends on the batch it was drawn in, not only its seed")
    gen.add_argument("--out", type=Path, default=Path("loops"), help="output folder (default ./loops)")

    new = commands.add_parser("new-model", help="write an untrained model dir of a named size")
    new.add_argument("path", type=Path)
    new.add_argument("--size", default="tiny", help="micro (tests), lite or tiny (2.5M), small (10.7M), teticio (113.7M)")
    new.add_argument("--genres", help="comma-separated genre names: makes the model class-conditional")
    new.add_argument("--seed", type=int, default=0)

    play = commands.add_parser(
        "play", help="play a live set: loops generated, tempo-locked and crossfaded on the bar",
        description="Play a live set. The set's flags come first; the engine's tuning is at the end.")
    engine = EngineSettings.__dataclass_fields__  # the defaults are the engine's own, shown from there

    def setting(group, flag: str, field: str, help_text: str, **options) -> None:
        """A flag for EngineSettings.<field>: left out of ``args`` unless given, so the engine's default holds."""
        default = engine[field].default
        shown = f" (default {default:g})" if isinstance(default, float) else (
            f" (default {default})" if default is not None and "default" not in help_text else "")
        group.add_argument(flag, dest=field, default=argparse.SUPPRESS, help=help_text + shown, **options)

    the_set = play.add_argument_group("the set")
    the_set.add_argument("--genre", action="append", dest="genres", metavar="NAME",
                         help="genre preset to play, or a model dir or Hub id as a genre of its own (repeat for "
                              "several; the first is selected). Default: techno")
    setting(the_set, "--bpm", "bpm", "master tempo", type=_tempo)
    setting(the_set, "--bars", "bars", "longest loop in bars (a slice too short for it gives fewer)", type=int,
            choices=sorted(BAR_LENGTHS))
    setting(the_set, "--quantise", "quantise", "launch on the next: beat, 1, 2 or 4 bars, or off",
            choices=list(QUANTISE_BARS))
    setting(the_set, "--auto-bars", "auto_bars", "launch a new loop every N bars by itself", type=_positive_int,
            metavar="N")
    setting(the_set, "--crossfade", "crossfade_ms", "crossfade length in ms", type=float, metavar="MS")
    setting(the_set, "--gain", "gain", "master gain", type=float)
    setting(the_set, "--loudness", "loudness", "level every loop to this integrated loudness in LUFS, or 'off' "
            "(the master gain and the limiter follow)", type=_loudness, metavar="LUFS")
    setting(the_set, "--key", "key", "keep the set in key: auto (the first loop with a key), a key (8A, Am, "
            "A minor ...) or off", type=_set_key, metavar="KEY")
    setting(the_set, "--key-mode", "key_mode", "how: pick (launch only loops in a fitting key), shift (move loops "
            "up to 3 semitones to fit) or off (show keys only)", choices=list(KEY_MODES))
    setting(the_set, "--seed", "seed", "first seed (default: random)", type=int)

    out = play.add_argument_group("output")
    out.add_argument("--out-device", help="sound device, by index or (part of) its name")
    out.add_argument("--host-api", help="PortAudio host API, by index or name (e.g. ALSA, JACK, Core Audio)")
    setting(out, "--channels", "channels", "2: master; 4: master on 1-2 and a cue preview of the next loop on 3-4",
            type=int, choices=[1, 2, 4])
    setting(out, "--sample-rate", "sample_rate", "output sample rate", type=int)
    setting(out, "--blocksize", "blocksize", "frames per audio callback", type=_positive_int)
    out.add_argument("--latency", default="low", help="output latency: low, high or seconds")
    out.add_argument("--headless", action="store_true", help="no sound card: play into --output, in real time")
    out.add_argument("--output", type=Path, help="headless: the file the set is written to (.wav or .flac)")
    out.add_argument("--duration", type=float, help="stop after this many seconds of play (default: until Ctrl-C)")

    keep = play.add_argument_group("record and crate")
    keep.add_argument("--record", type=Path, help="also record the master output to this .wav or .flac")
    keep.add_argument("--crate", type=Path, default=Path("crate"), help="where saved loops go (default ./crate)")
    setting(keep, "--status", "status_path", "append the engine state as a JSON line a second", type=Path,
            metavar="FILE")
    control = play.add_argument_group("control and sync")
    control.add_argument("--midi", metavar="PORT", help="MIDI input port (name or part of it) of the controller")
    control.add_argument("--midi-virtual", metavar="NAME", help="open a virtual MIDI input port for other software")
    control.add_argument("--midi-api", choices=["alsa", "jack", "coremidi", "winmm"],
                         help="rtmidi API (default: MIDO_BACKEND's, else rtmidi's own choice)")
    control.add_argument("--controller", metavar="NAME_OR_FILE",
                         help="mapping in presets/controllers (or a .toml file); default: picked by port name")
    control.add_argument("--learn", type=Path, metavar="FILE",
                         help="MIDI learn: press l, then an action key, then move a control; FILE is written")
    control.add_argument("--clock-in", action="store_true", help="follow MIDI clock (tempo and bar phase) on --midi")
    control.add_argument("--clock-out", metavar="PORT", help="send MIDI clock to this output port")
    control.add_argument("--link", action="store_true", help="join an Ableton Link session (tempo and phase)")
    setting(control, "--sync-delay", "sync_delay_ms",
            "how far the synced gear's sound lags its clock in ms (its audio latency, a MIDI interface's delay): "
            "our beats land that much later, our clock out goes out that much earlier; negative for the other way",
            type=float, metavar="MS")
    control.add_argument("--osc", metavar="[HOST:]PORT", help="OSC server for the same actions (host 127.0.0.1)")

    tuning = play.add_argument_group("tuning (sampling, worker, device)")
    setting(tuning, "--steps", "steps", "sampling steps (default: each preset's)", type=_positive_int)
    setting(tuning, "--sampler", "sampler", "default: each preset's", choices=list(SAMPLERS))
    setting(tuning, "--canvas", "canvas", CANVAS_HELP, choices=CANVASES)
    setting(tuning, "--depth", "depth", "loops kept ready per genre", type=_positive_int)
    setting(tuning, "--device", "device", "generation device: cuda, mps, cpu or auto")
    setting(tuning, "--precision", "precision",
            "the UNet's precision. auto: fp16 on a GPU, fp32 on a CPU. bf16 on a CPU with AVX-512 BF16 or AMX is "
            "1.4-1.5x faster, but a loop then depends on the batch it was drawn in, not only its seed",
            choices=["auto", "fp32", "bf16", "fp16"])
    setting(tuning, "--worker-threads", "worker_threads",
            "torch threads in the worker (default: all cores but one, which stays free for the audio; 1 on two "
            "cores)", type=_positive_int)
    setting(tuning, "--prep-processes", "prep_processes",
            "processes for the worker's loop prep (beat grid, resample, seam), beside its torch threads; meant "
            "for a GPU machine's spare cores, where these stages bound the worker (default 0: none)",
            type=_count, metavar="N")
    setting(tuning, "--compile", "compile",
            "run the worker's UNets through torch.compile (pays on a GPU; the worker's start takes longer by "
            "the compile, tens of seconds for a published-size model)", action="store_const", const="inductor")
    control.add_argument("--no-dashboard", action="store_true", help="plain status lines instead of the dashboard")

    commands.add_parser("devices", help="list sound output devices")

    info = commands.add_parser("info", help="describe a model dir")
    info.add_argument("model", help="genre preset name, model directory or Hugging Face Hub id")
    return parser


def _resolve_model(name: str, device: str = "auto", precision: str = "auto"):
    """A model dir, Hub id or genre preset; returns (model, its preset)."""
    from .diffusion import load_model
    from .presets import load_genre

    preset = load_genre(name)
    return load_model(preset.model, device, precision), preset


def _generate(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .loops import write_loop
    from .loops.key import key_label
    from .loops.loudness import fit_peak
    from .render import RenderSettings, loop_filename, render

    console = Console(stderr=True)
    model, preset = _resolve_model(args.model, args.device, args.precision)
    settings = RenderSettings(
        steps=args.steps or preset.steps, sampler=args.sampler or preset.sampler,
        eta=preset.eta if args.eta is None else args.eta, batch_size=args.batch, genre=args.genre or preset.label,
        bpm=args.bpm, tempo_hint=preset.tempo_hint, raw=args.raw, sample_rate=args.sample_rate, bars=args.bars,
        canvas=args.canvas, loudness=args.loudness, key=args.key,
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
                        "raw": settings.raw, "asked_key": settings.key,
                        "asked_the_model": settings.key is not None and model.is_key_conditional}
            loop = fit_peak(item.loop)
            path = write_loop(args.out, loop_filename(model.name, item.seed, settings, loop), loop, metadata, args.format)
            audio_seconds += item.loop.seconds
            written += 1
            progress.console.print(f"{path}  {item.loop.seconds:.2f}s"
                                   + (f"  {loop.bars} bar(s) at {loop.bpm:.1f} BPM" if loop.bars else "")
                                   + (f"  {key_label(loop.key)}" if loop.key_confidence is not None else "")
                                   + (f"  {loop.loudness:.1f} LUFS" if loop.loudness is not None else ""))
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
    print(f"model      {model.path}" + (f" ({model.hub_id})" if model.hub_id else ""))
    tempo = "any tempo" if preset.bpm_range is None else f"{preset.bpm_range[0]:g}-{preset.bpm_range[1]:g} BPM"
    print(f"preset     {preset.name}: {preset.sampler} {preset.steps} steps, {tempo}, label {preset.label}")
    print(f"unet       {parameter_count(model) / 1e6:.1f}M parameters, sample {model.sample_shape}")
    print(f"scheduler  {type(model.scheduler).__name__}, {model.scheduler.config.num_train_timesteps} train steps")
    print(f"mel        {cfg.y_res}x{cfg.x_res} @ {cfg.sample_rate} Hz, hop {cfg.hop_length}, "
          f"{cfg.slice_seconds:.2f}s a slice")
    print(f"vqvae      {'yes' if model.vqvae is not None else 'no'}")
    print(f"genres     {', '.join(model.class_names) or '-'}")
    for key, value in sorted(model.extra.items()):
        print(f"{key:<10} {value}")
    return 0


def _devices(args) -> int:
    from .engine import output_devices

    found = output_devices()
    if not found:
        print("no sound output device found (PortAudio lists none); `livegen play --headless --output set.wav` "
              "plays into a file instead")
        return 1
    for index, name, api, channels in found:
        print(f"{index:>3}  {name}  ({api}, {channels} out)")
    return 0


def engine_settings(args) -> EngineSettings:
    """The engine's settings from ``play``'s flags: those given, the engine's own defaults for the rest."""
    given = {name: value for name, value in vars(args).items() if name in EngineSettings.__dataclass_fields__}
    given["genres"] = args.genres or ["techno"]
    settings = EngineSettings(**given)
    settings.max_block = max(settings.max_block, settings.blocksize)
    return settings


def _play(args) -> int:
    from .engine import AudioFile, Engine, OutputError, SoundCard

    if args.headless and args.output is None:
        print("livegen: --headless needs --output FILE (.wav or .flac) to play into", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("livegen: --duration must be positive", file=sys.stderr)
        return 2
    latency = args.latency if args.latency in ("low", "high") else float(args.latency)
    settings = engine_settings(args)
    if args.headless:
        output = AudioFile(Path(args.output), blocksize=settings.blocksize)
    else:
        output = SoundCard(args.out_device, args.host_api, settings.blocksize, latency)
    engine = Engine(settings, output)
    try:
        engine.start()
    except (OutputError, ValueError) as err:
        engine.stop()
        engine.close()
        print(f"livegen: {err}", file=sys.stderr)
        return 2
    log = sys.stderr
    surface = None
    try:
        surface = _ControlSurface(engine, args)
        print(f"livegen: loading {', '.join(settings.genres)} and making the first loop ...", file=log)
        engine.wait_until_playing()
        if args.record:
            engine.start_recording(args.record)
        state = engine.snapshot()
        for name, error in state["genre_errors"].items():
            print(f"livegen: genre {name} is out of this set: {error}", file=log)
        print(f"livegen: playing on {state['output']['name']} at {settings.bpm:g} BPM "
              f"(worker on {state['worker']['device']})"
              + (", Ctrl-C stops" if args.duration is None else f" for {args.duration:g}s"), file=log)
        surface.run(args.duration, interactive=not args.headless and not args.no_dashboard)
    except KeyboardInterrupt:
        pass
    finally:
        if surface is not None:
            surface.stop()
        recorded = engine.stop_recording()
        if recorded is not None:
            print(f"livegen: recorded {recorded}", file=log)
        engine.stop()
        engine.close()
    if args.headless:
        print(f"livegen: wrote {args.output}", file=log)
    return 0


def status_line(state: dict) -> str:
    """One bar of a set without the dashboard: tempo, the playing loop and its key, the set's key."""
    from .loops.key import key_label

    playing = state["playing"] or {}
    loop_key = f" {key_label(playing.get('key'))}" if playing.get("key_confidence") is not None else ""
    shift = playing.get("pitch_shift") or 0
    moved = f" (moved {shift:+d})" if shift else ""
    set_key = state.get("key") or {}
    kept = f"  set key {set_key['label']} {set_key['mode']}" if set_key.get("key") else ""
    return (f"bar {state['bar']:>4}  {state['bpm']:g} BPM  playing {playing.get('genre')}{loop_key}{moved} "
            f"seed {playing.get('seed')}{kept}  ready {state['buffer']}  underflows {state['underflows']}  "
            f"worker restarts {state['worker']['restarts']}")


class _ControlSurface:
    """What `play` runs beside the engine: MIDI, sync, OSC, and the dashboard with the keyboard."""

    def __init__(self, engine, args):
        from .control import Controls, load_mapping, mapping_for_port
        from .control.keyboard import KeyboardControl

        self.engine, self.args = engine, args
        self.controls = Controls(engine, crate=args.crate)
        self.parts = []
        self.midi = None
        if args.midi or args.midi_virtual:
            from .control.midi import MidiControl, find_port, midi_backend

            if args.controller:
                mapping = load_mapping(args.controller)
            elif args.midi:
                mapping = mapping_for_port(find_port(midi_backend(args.midi_api).get_input_names(), args.midi))
            else:
                mapping = load_mapping("generic")
            self.midi = MidiControl(self.controls, mapping, port=args.midi, virtual=args.midi_virtual,
                                    api=args.midi_api, follow_clock=args.clock_in).start()
            self.parts.append(self.midi)
        elif args.clock_in:
            raise SystemExit("livegen: --clock-in follows the clock on --midi (or --midi-virtual)")
        if args.clock_out:
            from .control.clock import MidiClockSender
            from .control.midi import find_port, midi_backend

            backend = midi_backend(args.midi_api)
            port = backend.open_output(find_port(backend.get_output_names(), args.clock_out, "MIDI output"))
            self.parts.append(MidiClockSender(engine, port.send).start())
        if args.link:
            from .control.clock import LinkSync

            self.parts.append(LinkSync(engine).start())
        if args.osc:
            from .control.osc import OscServer

            host, _, port = args.osc.rpartition(":")
            self.parts.append(OscServer(self.controls, host or "127.0.0.1", int(port)).start())
        self.keyboard = KeyboardControl(self.controls, self.midi, learn_to=args.learn)

    def run(self, duration: float | None, interactive: bool) -> None:
        started = time.monotonic()
        if interactive and sys.stdout.isatty() and sys.stdin.isatty():
            self._run_dashboard(started, duration)
            return
        shown = -1
        while duration is None or time.monotonic() - started < duration:
            time.sleep(0.05)
            state = self.engine.snapshot()
            if state["bar"] != shown and state["beat"] == 0:
                shown = state["bar"]
                print(status_line(state), file=sys.stderr)

    def _run_dashboard(self, started: float, duration: float | None) -> None:
        from .ui.dashboard import Dashboard, loop_thumbnail
        from .ui.keys import KeyReader

        thumbnail, thumbnail_id = None, None
        with Dashboard() as dashboard, KeyReader() as keys:
            while duration is None or time.monotonic() - started < duration:
                key = keys.read(timeout=0.1)
                if key is not None and not self.keyboard.press(key):
                    return
                state = self.engine.snapshot()
                playing = state["playing"]
                if playing is not None and playing["id"] != thumbnail_id:
                    thumbnail_id = playing["id"]
                    thumbnail = loop_thumbnail(self.engine.loop_audio(playing), self.engine.settings.sample_rate)
                dashboard.update(state, thumbnail, log=list(self.controls.log))

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()


# The errors that mean bad input (a message, not a traceback), by module. Only a module that has been
# imported can have raised one, so checking through sys.modules keeps torch out of `play`'s process.
_USER_ERRORS = (("livegen.diffusion", "CheckpointError"), ("livegen.diffusion", "SamplingError"),
                ("livegen.audio", "CodecError"), ("livegen.presets", "PresetError"), ("livegen.engine", "EngineError"),
                ("livegen.control.mapping", "MappingError"), ("livegen.control.midi", "MidiError"))


def _is_user_error(err: Exception) -> bool:
    for module_name, error_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(err, getattr(module, error_name)):
            return True
    return False


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    handlers = {"generate": _generate, "new-model": _new_model, "info": _info, "play": _play,
                "devices": _devices}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if not _is_user_error(err):
            raise
        print(f"livegen: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
