"""The live engine through a real JACK server: what JACK played is captured and checked.

Each test runs ``tests/engine/jack_session.py`` in its own process (PortAudio
must start after the server) on the shipped default genre model.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[2]
RATE, BPM = 48000, 126.0
BAR = 4 * 60 / BPM * RATE


# On these shared 2-core virtual machines the JACK server now and then finds a client's real-time
# thread not yet scheduled when its cycle ends (ours, or jack_rec's), and PortAudio flags every such
# xrun as an output underflow. The capture shows they lose no audio here (check_no_gaps compares
# every frame); a few of ours are tolerated, and the bench reports the rate over 10 minutes.
OUR_XRUNS_TOLERATED = 3


def check_xruns(server, before: int, final: dict) -> None:
    ours = [line for line in server.xruns()[before:] if "client = PortAudio " in line]
    assert len(ours) <= OUR_XRUNS_TOLERATED, (f"{len(ours)} xruns of the engine's client; PortAudio counted "
                                              f"{final['underflows']} underflows: {ours}")


def run_session(tmp_path, server, *args, seconds=30, during=None):
    """Play a session; ``during(out)`` runs in this process while it plays."""
    env = server.env
    out = tmp_path / "session"
    process = subprocess.Popen([sys.executable, "-m", "tests.engine.jack_session", str(out), "--seconds",
                                str(seconds), "--bpm", str(BPM), *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        during(out)
    stdout, stderr = process.communicate(timeout=600)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    session = json.loads((out / "session.json").read_text())
    capture, rate = soundfile.read(out / "capture.wav", dtype="float32")
    record, _ = soundfile.read(out / "record.wav", dtype="float32")
    assert rate == RATE
    return out, session, capture, record


def align(capture, record):
    """Where the capture's first frame sits in the recording (the capture starts a little later)."""
    probe = capture[:4096, 0]
    assert np.abs(probe).max() > 0.01, "the capture begins silent"
    window = np.lib.stride_tricks.sliding_window_view(record[:RATE * 2, 0], len(probe))
    errors = np.abs(window - probe).max(axis=1)
    offset = int(errors.argmin())
    assert errors[offset] < 1e-4, "the capture does not match the recording anywhere"
    return offset


def check_no_gaps(capture, record, min_seconds=25):
    """JACK played exactly what the mixer made, frame for frame: no gaps, no dropped blocks."""
    offset = align(capture, record)
    n = min(len(capture), len(record) - offset)
    assert n > RATE * min_seconds
    difference = np.abs(capture[:n] - record[offset:offset + n])
    assert difference.max() < 1e-4, f"capture and recording part at {difference.argmax() // 2 / RATE:.3f}s"
    return offset


def max_jump(audio):
    return float(np.abs(np.diff(audio)).max())


def test_thirty_seconds_of_play_tempo_locked_gapless_and_click_free(tmp_path, jack_server):
    xruns_before = len(jack_server.xruns())
    out, session, capture, record = run_session(tmp_path, jack_server, "--auto-bars", "1")
    final = session["final"]
    check_xruns(jack_server, xruns_before, final)
    assert final["late_launches"] == 0
    assert final["worker"]["restarts"] == 0
    assert sum(final["generated"].values()) >= 8  # the worker kept generating while it played
    check_no_gaps(capture, record)

    launches = session["launches"]
    assert len(launches) >= 12  # one a bar at 126 BPM over 30 s
    first = launches[0]["sample"]
    start = session["record_start"]
    gain, fade = session["gain"], session["fade"]
    loops = {e["loop"]: np.load(out / f"loop-{e['loop']}.npy") for e in launches}
    inner_jump = max(max_jump(audio) for audio in loops.values()) * gain
    for this, following in zip(launches, launches[1:] + [None]):
        # On the bar line, within one sample of the grid.
        bars = (this["sample"] - first) / BAR
        assert abs(this["sample"] - (first + round(bars) * BAR)) <= 1.0, this
        assert this["sample"] == this["grid_sample"]
        if this["sample"] < start:
            continue  # launched before the recording began
        # What was recorded from the launch sample on is the loop from its first sample.
        audio = loops[this["loop"]]
        at = this["sample"] - start
        end = len(audio) if following is None else min(len(audio), following["sample"] - fade - this["sample"])
        end = min(end, len(record) - at)
        np.testing.assert_allclose(record[at:at + end, 0], audio[:end] * gain, atol=2e-4)
        # No click where it came in (the crossfade) nor where it goes round.
        for point in [at] + [at + k * len(audio) for k in range(1, 4)]:
            window = record[max(0, point - fade - 64):point + 64, 0]
            if len(window) > 1 and point < len(record):
                assert max_jump(window) <= inner_jump + 1e-3, (this, point)


def test_killing_the_worker_does_not_stop_the_music(tmp_path, jack_server):
    xruns_before = len(jack_server.xruns())
    out, session, capture, record = run_session(tmp_path, jack_server, "--auto-bars", "1", "--kill-worker-at", "5",
                                                seconds=35)
    final = session["final"]
    assert session["killed"] is not None
    assert final["worker"]["restarts"] == 1
    assert any(e["event"] == "worker_restart" for e in session["events"])
    check_no_gaps(capture, record)  # it kept playing through the crash and the reload
    check_xruns(jack_server, xruns_before, final)
    # New loops arrived from the new worker and were launched after the kill.
    assert sum(final["generated"].values()) > session["killed"]["generated"]
    after = [e for e in session["launches"] if e["sample"] > session["killed"]["sample"]]
    newest_before = max(e["loop"] for e in session["launches"] if e["sample"] <= session["killed"]["sample"])
    assert any(e["loop"] > newest_before + 3 for e in after), "no loop made after the restart was launched"


def test_a_midi_flood_loses_no_audio(tmp_path, jack_server, monkeypatch):
    """3000 knob moves a second for 10 s into the engine's MIDI input while it plays through JACK.

    Every message is handled and no audio is lost. Xruns are not asserted here: on these 2-core
    machines a flood still costs the engine's client some (README, Status), which is open work.
    """
    import time

    import rtmidi

    for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER"):
        monkeypatch.setenv(key, jack_server.env[key])
    sent = []

    def flood(out):
        deadline = time.monotonic() + 240
        while not (out / "midi-ready").exists():
            assert time.monotonic() < deadline, "the session never opened its MIDI input"
            time.sleep(0.2)
        port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "livegen-test-flood")
        names = port.get_ports()
        port.open_port(next(i for i, name in enumerate(names) if "livegen-flood-in" in name))
        try:
            for i in range(30000):
                port.send_message([0xB0, 74, i % 128])  # the generic mapping's filter knob
                if i % 30 == 29:
                    time.sleep(0.01)
            sent.append(30000)
        finally:
            port.close_port()
            port.delete()

    xruns_before = len(jack_server.xruns())
    out, session, capture, record = run_session(tmp_path, jack_server, "--auto-bars", "2",
                                                "--midi-virtual", "livegen-flood-in", seconds=25, during=flood)
    assert sent == [30000]
    assert session["midi_received"] >= 29000  # (JACK may drop a few from a full port buffer)
    check_no_gaps(capture, record, min_seconds=20)
    ours = [line for line in jack_server.xruns()[xruns_before:] if "client = PortAudio " in line]
    print(f"xruns of the engine's client during the flood: {len(ours)}")
