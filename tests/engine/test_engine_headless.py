"""The engine without a sound card: the file sink, status lines, recording, tempo, modes, bad genres.

All of it runs the real worker process on the shipped default genre model.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from livegen.control.actions import Controls
from livegen.engine import AudioFile, Engine, EngineSettings
from livegen.engine.engine import EngineError
from livegen.engine.settings import default_worker_threads
from livegen.loops.loudness import short_term_loudness
from livegen.presets import PRESETS_DIR
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (PRESETS_DIR / "models" / "lite-genres-distilled").resolve()


@pytest.fixture()
def presets_with_a_broken_genre(tmp_path):
    presets = tmp_path / "presets"
    (presets / "genres").mkdir(parents=True)
    (presets / "genres" / "techno.toml").write_text(f'model = "{SHIPPED}"\nlabel = "techno"\nsteps = 1\n')
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model_index.json").write_text("{ not json")
    (presets / "genres" / "broken.toml").write_text(f'model = "{broken}"\n')
    return presets, broken


@pytest.mark.slow
def test_play_headless_writes_the_set_status_and_recording(tmp_path, presets_with_a_broken_genre):
    presets, broken = presets_with_a_broken_genre
    env = {**os.environ, "LIVEGEN_PRESETS": str(presets), "JACK_NO_START_SERVER": "1"}
    out, status, record = tmp_path / "set.wav", tmp_path / "status.jsonl", tmp_path / "rec.flac"
    result = subprocess.run(
        [sys.executable, "-m", "livegen.cli", "play", "--genre", "techno", "--genre", "broken", "--genre", str(SHIPPED),
         "--headless",
         "--output", str(out), "--duration", "12", "--auto-bars", "1", "--bpm", "120", "--status", str(status),
         "--record", str(record), "--seed", "3", "--prep-processes", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # The broken genre is reported by name and file; the good one plays on.
    assert "genre broken is out of this set" in result.stderr and "model_index.json" in result.stderr
    # each bar's status line names the playing loop and the key read in it
    assert re.search(r"bar +\d+  120 BPM  playing techno (no key|\d{1,2}[AB] [A-G][#b]?m?) seed \d+", result.stderr), \
        result.stderr[-2000:]

    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == 48000 and audio.shape[1] == 2
    assert 11.0 < len(audio) / rate < 14.0
    assert np.isfinite(audio).all()
    loudness = np.abs(audio[: len(audio) // 480 * 480, 0]).reshape(-1, 480).max(axis=1)
    # A gap plays zeros; the quietest 10 ms between hits of the shipped loops peak near 0.006-0.015.
    assert loudness.min() > 0.001, "a silent 10 ms in the set"

    recorded, _ = soundfile.read(record, dtype="float32")
    assert len(recorded) > 10 * rate

    lines = [json.loads(line) for line in status.read_text().splitlines()]
    assert len(lines) >= 12
    final = lines[-1]
    for key in ("bpm", "bar", "beat", "playing", "next", "buffer", "generated", "dropped", "underflows", "worker"):
        assert key in final
    # underflows while the worker loaded are pre-roll, reported apart from the set's
    assert isinstance(final["preroll_underflows"], int)
    assert all(line["underflows"] == 0 for line in lines if line["playing"] is None)
    assert final["bpm"] == 120.0
    assert final["launches"] >= 4  # auto mode: one a bar (2 s at 120 BPM) once loops are ready
    assert final["generated"]["techno"] >= 4 and final["generated"]["broken"] == 0
    assert final["generated"][str(SHIPPED)] >= 1  # a model dir named as a genre of its own
    assert final["worker"]["threads"] == default_worker_threads()  # every core but one (1 on two cores)
    assert final["worker"]["prep_processes"] == 1 and final["worker"]["compiled"] is None
    assert "model_index.json" in final["genre_errors"]["broken"]
    assert final["playing"]["genre"] == "techno" and final["playing"]["bpm"] == 120.0
    # The file sink's thread renders each block in far less than its duration: a load above 0, below 1.
    loads = [line["dsp_load"] for line in lines]
    assert max(loads) > 0 and all(0 <= load < 1 for load in loads), loads
    assert sum(final["block_time"]["wall"]) == sum(final["block_time"]["cpu"]) > 0


def test_play_without_a_sound_card_says_so(tmp_path):
    env = {**os.environ, "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": "livegen-no-such-server"}
    result = subprocess.run([sys.executable, "-m", "livegen.cli", "play", "--genre", "techno"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no sound output device found" in result.stderr and "--headless" in result.stderr


@pytest.fixture(scope="module")
def gpu_like_set(tmp_path_factory):
    """A set as a GPU machine plays it, shared by the tests below in their order (each starts from
    where the last left the set).

    The one-step student: a slice model, whose fitted canvas these tests follow (the default is a grid
    model). Its UNet compiled (traced by dynamo; the "eager" backend skips inductor's minute-long first
    build here), so every mode goes through the compiled path's fixed batch, and its loop prep in a
    process of its own; four channels, the cue pair previewing the next loop."""
    folder = tmp_path_factory.mktemp("gpu-like-set")
    settings = EngineSettings(genres=["techno-fast"], bpm=128.0, depth=2, seed=21, quantise="beat", channels=4,
                              compile="eager", prep_processes=1)
    engine = Engine(settings, AudioFile(folder / "set.wav", blocksize=512))
    engine.start()
    try:
        engine.wait_until_playing(timeout=240)
        yield engine, folder, engine.snapshot()["playing"]
    finally:
        engine.stop()
        engine.close()


@pytest.mark.slow
def test_the_worker_runs_compiled_and_draws_wide_enough(gpu_like_set):
    engine, _, first = gpu_like_set
    worker = engine.snapshot()["worker"]
    assert (worker["compiled"], worker["prep_processes"]) == ("eager", 1)
    assert first["bpm"] == 128.0
    assert first["width"] == 352  # drawn wide enough for 4 bars at 128 BPM (the model's own: 256, 2 bars)


@pytest.mark.slow
def test_the_cue_pair_previews_the_loop_that_comes_next(gpu_like_set):
    engine, folder, first = gpu_like_set
    coming = wait_for(lambda: engine.snapshot()["next"], 60, "a loop ready to come next", engine.snapshot)
    wait_for(lambda: engine.mixer.cue_id == engine.snapshot()["next"]["id"] and engine.mixer.held() >= {engine.mixer.cue_id},
             5, "the cue to preview it", engine.snapshot)
    assert coming["id"] != first["id"]
    time.sleep(1.5)  # the file's header is written once a second: what was played by now can be read
    audio, _ = soundfile.read(folder / "set.wav", dtype="float32")
    assert audio.shape[1] == 4
    assert np.abs(audio[:, 2]).max() > 0.05 and np.array_equal(audio[:, 2], audio[:, 3])  # the cue pair
    assert not np.array_equal(audio[:, 0], audio[:, 2])


@pytest.mark.slow
def test_saving_the_playing_loop_keeps_where_it_came_from(gpu_like_set):
    engine, folder, _ = gpu_like_set
    playing = engine.snapshot()["playing"]
    path = engine.save_playing(folder / "crate")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["genre"] == "techno-fast" and sidecar["seed"] == playing["seed"]
    assert sidecar["bpm"] == playing["bpm"] and sidecar["eta"] == playing["eta"]
    saved, rate = soundfile.read(path, dtype="float32")
    assert len(saved) == round(sidecar["bars"] * 4 * 60 / sidecar["bpm"] * rate)


@pytest.mark.slow
def test_a_tempo_change_re_stretches_the_playing_loop(gpu_like_set):
    engine, _, _ = gpu_like_set
    playing = engine.snapshot()["playing"]
    engine.set_bpm(100.0)
    state = wait_for(lambda: (s := engine.snapshot())["bpm"] == 100.0 and s["playing"]["bpm"] == 100.0 and s,
                     60, "the set to reach 100 BPM", engine.snapshot)
    assert state["playing"]["seed"] == playing["seed"]  # the same loop, slower
    wait_for(lambda: engine.snapshot()["buffer"]["techno-fast"] >= 1, 60, "a loop at the new tempo")


@pytest.mark.slow
def test_each_mode_launches_a_loop_made_from_the_playing_one(gpu_like_set):
    engine, _, first = gpu_like_set
    bpm = engine.snapshot()["bpm"]
    for mode in ("variation", "continuation", "morph"):
        launched = engine.mixer.launch_count
        engine.trigger_mode(mode, strength=0.5)
        wait_for(lambda: engine.mixer.launch_count > launched and engine.snapshot()["playing"]["mode"] == mode,
                 90, f"a {mode} to launch", engine.snapshot)
        assert engine.snapshot()["playing"]["bpm"] == bpm
        assert engine.snapshot()["playing"]["width"] == first["width"]  # made from it, as wide
    engine.trigger()  # a manual trigger takes the next ready loop
    wait_for(lambda: engine.snapshot()["playing"]["mode"] == "new", 60, "a triggered loop", engine.snapshot)


@pytest.mark.slow
def test_loop_length_from_a_control_cuts_the_ready_loops_again(gpu_like_set):
    engine, _, _ = gpu_like_set
    playing = engine.snapshot()["playing"]
    Controls(engine).perform("bars", value=1)
    wait_for(lambda: (s := engine.snapshot())["bars"] == 1 and s["next"] and s["next"]["bars"] == 1, 60,
             "a one-bar loop to come next", engine.snapshot)
    assert engine.snapshot()["playing"]["id"] == playing["id"]  # the playing one plays on
    engine.trigger()
    wait_for(lambda: engine.snapshot()["playing"]["bars"] == 1, 60, "a one-bar loop to play", engine.snapshot)
    one_bar = engine.loops[engine.snapshot()["playing"]["id"]]
    assert one_bar.frames == round(4 * 60 / engine.snapshot()["bpm"] * engine.settings.sample_rate)


@pytest.mark.slow
def test_nudge_moves_the_loop_and_the_grid_together(gpu_like_set):
    """The playing loop and the grid jump 50 ms ahead together (a short crossfade into itself)."""
    engine, _, _ = gpu_like_set
    rate, before, bpm = engine.settings.sample_rate, engine.mixer.current, engine.snapshot()["bpm"]
    probe = engine.mixer.clock + 10 * rate  # a sample well past where the nudge lands
    beat_before, launches = engine.grid.beat_at(probe), engine.mixer.launch_count
    Controls(engine).perform("nudge", value=50)
    wait_for(lambda: engine.mixer.launch_count > launches, 10, "the nudge to land", engine.snapshot)
    after, shift = engine.mixer.current, round(0.05 * rate)
    assert after.loop_id == before.loop_id and (after.start - (before.start - shift)) % before.frames == 0
    wait_for(lambda: engine.grid.beat_at(probe) != beat_before, 1, "the grid to be republished")
    assert engine.grid.beat_at(probe) - beat_before == pytest.approx(shift * bpm / (60 * rate))


@pytest.mark.slow
def test_every_launch_of_the_set_landed_on_the_grid(gpu_like_set):
    engine, _, _ = gpu_like_set
    assert engine.snapshot()["late_launches"] == 0
    launches = [e for e in engine.events if e["event"] == "launch"][1:]
    assert len(launches) >= 6
    for launch in launches:
        assert launch["sample"] == launch["grid_sample"]  # on the beat grid, through the tempo change


def test_an_unknown_canvas_is_refused_by_name(tmp_path):
    with pytest.raises(EngineError, match="canvas must be one of fit, native, got 'wide'"):
        Engine(EngineSettings(genres=["techno"], canvas="wide"), AudioFile(tmp_path / "set.wav"))


@pytest.mark.slow
def test_a_fault_in_the_audio_callback_leaves_the_set_playing_within_a_second(tmp_path):

    rate = 48000
    engine = Engine(EngineSettings(genres=["techno-fast"], bpm=128.0, depth=1, seed=5, sample_rate=rate),
                    AudioFile(tmp_path / "set.wav", blocksize=256))
    engine.start()
    try:
        engine.wait_until_playing(timeout=240)
        time.sleep(1.0)
        playing, before = engine.playing, engine.mixer.current
        # A launch whose fade has the wrong shape: the callback raises inside the mixer (it began the launch,
        # so the state it publishes names a loop that never sounded).
        engine.mixer.launch(10**6, playing.slot, playing.frames, None, np.ones((64, 3), np.float32))
        wait_for(lambda: engine.mixer.faults == 1, 2, "the fault to be caught")
        faulted = time.monotonic()
        wait_for(lambda: (c := engine.mixer.current) is not None and c.loop_id == playing.loop_id
                 and engine.mixer.level > 0.01, 1.0, "the set to sound again within a second", engine.snapshot)
        back_after = time.monotonic() - faulted
        after = engine.mixer.current
        assert (after.start - before.start) % playing.frames == 0  # the loop resumed where the grid had got to
        event = wait_for(lambda: next((e for e in engine.events if e["event"] == "audio_fault"), None), 2,
                         "the fault's report")
        assert "ValueError" in event["message"] and "broadcast" in event["traceback"]
        assert "Traceback" in event["traceback"] and "_render" in event["traceback"]
        assert engine.snapshot()["audio_faults"] == 1
        time.sleep(1.0)
        played = engine.mixer.clock - next(e["sample"] for e in engine.events if e["event"] == "launch")
    finally:
        engine.stop()
        engine.close()
    # The file went on through the fault: every block from the first loop on, the silent gap short.
    audio, _ = soundfile.read(tmp_path / "set.wav", dtype="float32")
    assert played <= len(audio) < played + rate  # the file kept pace with the clock (it stopped just after)
    quiet = np.abs(audio[:, 0]) < 1e-4
    longest, run = 0, 0
    for silent in quiet[::64]:
        run = run + 1 if silent else 0
        longest = max(longest, run)
    assert longest * 64 < rate, f"{longest * 64 / rate:.2f} s of silence ({back_after:.2f} s to come back)"


@pytest.mark.slow
def test_the_worker_gets_its_share_beside_busy_background_jobs(tmp_path):
    """A DJ's laptop always has something running: two busy processes at nice 0, one per core here.
    At idle priority the worker got nothing and the first loop never came."""
    from livegen.engine.worker import WORKER_NICE

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    engine = Engine(EngineSettings(genres=["techno-fast"], bpm=128.0, depth=1, seed=9),
                    AudioFile(tmp_path / "set.wav", blocksize=512))
    try:
        started = time.monotonic()
        engine.start()
        worker = engine.snapshot()["worker"]["pid"]
        wait_for(lambda: os.getpriority(os.PRIO_PROCESS, worker) == WORKER_NICE, 60, "the worker to lower itself")
        assert os.sched_getscheduler(worker) == os.SCHED_OTHER
        engine.wait_until_playing(timeout=120)
        print(f"first loop after {time.monotonic() - started:.1f} s beside {len(busy)} busy processes")
    finally:
        engine.stop()
        engine.close()
        for process in busy:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_every_launched_loop_plays_at_the_set_loudness(tmp_path):
    """Loops leave loop prep at one peak and many loudnesses (11 LU apart in bench/results/loudness.md);
    levelled, each launch of the set must sound as loud as the last, measured on the output."""
    rate, bpm, bars = 48000, 128.0, 2
    # Loops of as many bars as a launch lasts: levelling reads a whole loop, so a launch plays it whole
    # (with 4-bar loops launched every 2 bars, one loop's first half read 1 LU under the other
    # launches: a spread of 1.15 LU, docs/known-issues.md).
    engine = Engine(EngineSettings(genres=["techno", "hiphop"], bpm=bpm, depth=2, seed=40, auto_bars=bars,
                                   bars=bars, sample_rate=rate, loudness=-20.0),
                    AudioFile(tmp_path / "set.wav", blocksize=256))
    engine.start()
    try:
        engine.wait_until_playing(timeout=240)
        engine.select_genre("hiphop")  # halfway, the other genre: loops of another kind of density
        wait_for(lambda: sum(e["event"] == "launch" for e in list(engine.events)) >= 4, 60, "four launches")
        engine.select_genre("techno")
        wait_for(lambda: sum(e["event"] == "launch" for e in list(engine.events)) >= 9, 60, "nine launches")
        launches = [e for e in list(engine.events) if e["event"] == "launch"]
        levelled = {e["loop"]: e for e in launches}
        playing = engine.snapshot()["playing"]
    finally:
        engine.stop()
        engine.close()
    assert playing["loudness"] == pytest.approx(-20.0, abs=0.05) and playing["gain_db"] != 0.0
    assert 0 < playing["key_confidence"] <= 1  # its key was estimated (it may have none)
    assert all("key" in launch for launch in launches)
    audio, _ = soundfile.read(tmp_path / "set.wav", dtype="float32")
    span = int(bars * 4 * 60 / bpm * rate)
    inside = [short_term_loudness(audio[e["sample"] + rate // 4:e["sample"] + span], rate)[0]
              for e in launches if e["sample"] + span <= len(audio)]  # each loop's own stretch, no crossfade
    assert len({levelled[e["loop"]]["genre"] for e in launches}) == 2
    assert max(inside) - min(inside) <= 1.0, [round(value, 2) for value in inside]
    assert len(inside) >= 6
    assert np.median(inside) == pytest.approx(-20.0 + 20 * np.log10(0.8), abs=0.5)  # the master gain follows


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pick", "shift"])
def test_a_set_in_key_launches_only_loops_that_mix_with_it(tmp_path, mode):
    """--key 8A. The default model is asked for 8A and makes most of its techno loops in a key that
    mixes with it; the rest pick lets go and shift moves (by up to 3 semitones). Every launch event
    names the key the worker read in the loop it launched, and the recording reads the same."""
    from livegen.loops.key import compatible, estimate_key, parse_key

    rate, bpm, bars = 48000, 130.0, 2
    set_key = parse_key("8A")
    engine = Engine(EngineSettings(genres=["techno"], bpm=bpm, depth=3, seed=70, auto_bars=bars, bars=bars,
                                   sample_rate=rate, key="8A", key_mode=mode),
                    AudioFile(tmp_path / "set.wav", blocksize=256))
    engine.start()

    def launches():
        return [e for e in list(engine.events) if e["event"] == "launch"]

    def kept_to_key() -> bool:  # the rule had something to do
        if mode == "pick":
            return engine.snapshot()["off_key"]["techno"] > 0
        return any(e["pitch_shift"] for e in launches())

    try:
        engine.wait_until_playing(timeout=240)
        wait_for(lambda: len(launches()) >= 8 and kept_to_key(), 150, f"eight launches, and a loop {mode}ed")
        played = launches()
        snapshot = engine.snapshot()
    finally:
        engine.stop()
        engine.close()
    assert snapshot["key"] == {"key": "8A", "label": "8A Am", "mode": mode, "auto": False}
    assert all(e["key"] is None or compatible(parse_key(e["key"]), set_key) for e in played), played
    assert all(e["asked_key"] == "8A" for e in played if e["mode"] == "new"), played  # the model was asked
    assert sum(e["key"] is not None for e in played) >= len(played) // 2, played  # the loops carry keys
    audio, _ = soundfile.read(tmp_path / "set.wav", dtype="float32")
    span = int(bars * 4 * 60 / bpm * rate)
    heard = [estimate_key(audio[e["sample"] + rate // 4:e["sample"] + span].mean(axis=1), rate).key
             for e in played if e["sample"] + span <= len(audio)]
    assert len(heard) >= 4  # the launches whose stretch the recording holds whole
    assert all(k is None or compatible(k, set_key) for k in heard), [k and k.camelot for k in heard]
