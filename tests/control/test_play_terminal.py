"""`livegen play` in a terminal: dashboard and keys, end to end, through the JACK test server."""

import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_keys_drive_the_set_and_the_dashboard_draws(tmp_path, jack_server):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120 x 40 terminal
    status = tmp_path / "status.jsonl"
    env = {**jack_server.env, "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "livegen.cli", "play", "--genre", "techno", "--host-api", "JACK", "--bpm", "124",
         "--quantise", "off", "--status", str(status), "--duration", "120", "--seed", "9", "--key", "Am"],
        cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    screen = bytearray()

    def drain():  # the terminal must be read, or the dashboard's writes would block
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    def state():
        lines = status.read_text().splitlines() if status.exists() else []
        return json.loads(lines[-1]) if lines else {}

    try:
        wait_for(lambda: (state().get("playing") or {}).get("id") is not None
                 and state().get("buffer", {}).get("techno", 0) >= 1, 240, "the set to play with a loop ready",
                 state)
        launches = state()["launches"]
        os.write(master, b" ")  # space: trigger
        wait_for(lambda: state()["launches"] > launches, 10, "space to launch a loop", state)
        os.write(master, b"a")  # auto launch on
        wait_for(lambda: state()["auto_bars"] == 8, 5, "a to turn auto launch on", state)
        os.write(master, b".")  # volume up a step
        wait_for(lambda: abs(state()["gain"] - 0.85) < 1e-6, 5, "the volume key", state)
        assert state()["key"] == {"key": "8A", "label": "8A Am", "mode": "pick", "auto": False}
        os.write(master, b"k")  # key up a semitone
        wait_for(lambda: state()["key"]["key"] == "3A", 5, "k to move the set's key up", state)
        os.write(master, b"j")  # and down again
        wait_for(lambda: state()["key"]["key"] == "8A", 5, "j to move it down", state)
        os.write(master, b"K")  # key lock off
        wait_for(lambda: state()["key"]["mode"] == "off", 5, "K to stop keeping the key", state)
        os.write(master, b"\x1b[A")  # arrow up: one BPM faster
        wait_for(lambda: state()["bpm"] == 125.0, 30, "arrow up to raise the tempo", state)
        os.write(master, b"Q")  # quit
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    text = screen.decode("utf-8", "replace")
    assert "BPM" in text and "techno" in text and "underflows" in text  # the dashboard was drawn
