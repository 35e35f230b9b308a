"""A live set through a JACK server, run as its own process by the engine tests.

    python -m tests.engine.jack_session OUT_DIR --seconds 30 [--kill-worker-at 12] [--hog-gil] [--genre ...]

It plays through sounddevice's JACK host API, records the master output, has
``jack_rec`` capture what JACK actually played, keeps a copy of every loop it
launches, and writes what it saw for the test to check:

    OUT_DIR/capture.wav  OUT_DIR/record.wav  OUT_DIR/loop-ID.npy  OUT_DIR/session.json
    OUT_DIR/playing (touched when the first loop is on stage)

It runs in a process of its own because PortAudio lists JACK's devices only if
the server is up when sounddevice is first imported.
"""

import argparse
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def hog_gil() -> None:
    """Pickle a big list over and over: each call holds the GIL for milliseconds, past any switch
    interval. In the engine's process this must not reach the audio callback."""
    data = list(range(300_000))
    while True:
        pickle.dumps(data)
        time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--kill-worker-at", type=float)
    parser.add_argument("--genre", action="append", default=[])
    parser.add_argument("--presets", type=Path)
    parser.add_argument("--bpm", type=float, default=126.0)
    parser.add_argument("--auto-bars", type=int, default=1)
    parser.add_argument("--midi-virtual", help="open a virtual JACK MIDI input driven by the generic mapping")
    parser.add_argument("--hog-gil", action="store_true",
                        help="keep a thread of this (the engine's) process in long GIL-holding C calls")
    args = parser.parse_args()

    from livegen.engine import Engine, EngineSettings, Recorder, SoundCard

    args.out.mkdir(parents=True, exist_ok=True)
    extra = {"presets_dir": args.presets} if args.presets else {}
    # The one-step student by default: these sessions measure the engine, with the worker load they were tuned on.
    settings = EngineSettings(genres=args.genre or ["techno-fast"], bpm=args.bpm, auto_bars=args.auto_bars, seed=11,
                              status_path=args.out / "status.jsonl", crossfade_ms=20.0, depth=3, blocksize=256,
                              gain=0.5, **extra)  # gain 0.5: the limiter never engages, so loops play bit-exact
    engine = Engine(settings, SoundCard(host_api="JACK", blocksize=256))
    engine.start()
    engine.wait_until_playing(timeout=240)
    (args.out / "playing").touch()
    # The test counts the server's xruns from when it sees "playing", then says so: our underflows are
    # counted from after that, so no underflow is counted whose xrun was not.
    deadline = time.monotonic() + 30
    while not (args.out / "counted").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    underflows_at_play = engine.snapshot()["underflows"]
    block_time_at_play = engine.mixer.state.block_times()
    midi = None
    if args.midi_virtual:
        from livegen.control import Controls, load_mapping
        from livegen.control.midi import MidiControl

        midi = MidiControl(Controls(engine), load_mapping("generic"), virtual=args.midi_virtual, api="jack").start()
        (args.out / "midi-ready").touch()
    recorder = Recorder(engine.mixer, args.out / "record.wav").start()
    # jack_rec starts once the recording holds its first frame: a capture that began first would
    # hold audio the recording never saw, and could not be aligned with it.
    deadline = time.monotonic() + 5
    while recorder.start_sample < 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    capture = subprocess.Popen(["jack_rec", "-f", str(args.out / "capture.wav"), "-d", str(int(args.seconds) + 4),
                                "-b", "24", "PortAudio:out_0", "PortAudio:out_1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if args.hog_gil:
        threading.Thread(target=hog_gil, daemon=True).start()
    started = time.monotonic()
    saved, killed_at, launches = set(), None, []
    while time.monotonic() - started < args.seconds:
        time.sleep(0.1)  # each loop stays on stage a bar or more: no need to look more often
        for event in list(engine.events):
            if event["event"] == "launch" and event["loop"] not in saved:
                saved.add(event["loop"])
                launches.append(event)
                info = engine._on_stage.get(event["loop"])  # still on stage: its slot holds its audio
                if info is not None:
                    np.save(args.out / f"loop-{info.loop_id}.npy", np.array(engine.bank.view(info.slot, info.frames)))
        if args.kill_worker_at is not None and killed_at is None and time.monotonic() - started > args.kill_worker_at:
            snapshot = engine.snapshot()
            os.kill(engine.worker_pid, signal.SIGKILL)
            killed_at = {"sample": engine.mixer.clock, "generated": sum(snapshot["generated"].values())}
    capture.send_signal(signal.SIGINT)  # jack_rec closes its file cleanly on SIGINT
    capture.wait(10)
    if midi is not None:
        midi.stop()
    recorder.stop()
    final = engine.snapshot().plain()
    engine.stop()
    events = [e for e in engine.events if e["event"] != "launch"]
    engine.close()
    session = {"launches": launches, "events": events, "final": final, "killed": killed_at,
               "record_start": recorder.start_sample, "underflows_at_play": underflows_at_play,
               "block_time_at_play": block_time_at_play, "gain": settings.gain,
               "fade": int(settings.crossfade_ms * settings.sample_rate / 1000), "output_latency": engine.mixer.output_latency,
               "midi_received": midi.received if midi is not None else 0}
    (args.out / "session.json").write_text(json.dumps(session, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
