"""A JACK server with the dummy backend: paced like a sound card, no hardware needed.

Test and bench tooling, not part of the library: the engine tests and the bench
play into one. PortAudio lists JACK's devices only if the server is up when
sounddevice is first imported, so whatever plays into it must be started (as a
process) after ``start_dummy_server`` returns, with ``server_env``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


class JackServerError(RuntimeError):
    pass


def server_env(name: str) -> dict:
    """Environment for a process that should use server ``name`` (and never start one itself)."""
    return {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}


SERVER_STALL = "JackTimedDriver::Process XRun"  # the dummy driver's timer woke late: the whole server stalled
CLIENT_LATE = "was not finished"


def xrun_reports(log_path: Path) -> list[str]:
    """The xruns a server logged so far: a client late ("client = NAME was not finished"), or the
    dummy driver's own timer woken late ("JackTimedDriver::Process XRun"), the whole server stalled.
    The engine's client is named PortAudio (``late_clients(lines, "PortAudio")``)."""
    return [line for line in Path(log_path).read_text().splitlines()
            if CLIENT_LATE in line or SERVER_STALL in line]


def late_clients(lines: list[str], client: str) -> list[str]:
    """The reports among ``lines`` that name ``client`` as late."""
    return [line for line in lines if f"client = {client} " in line]


def server_stalls(lines: list[str]) -> list[str]:
    """The reports among ``lines`` of the server itself stalled (its dummy driver's timer woken late)."""
    return [line for line in lines if SERVER_STALL in line]


def start_dummy_server(name: str, log_path: Path, rate: int = 48000, period: int = 256) -> subprocess.Popen:
    """Start ``jackd -d dummy``, in real-time mode where the machine allows it; returns the process."""
    if shutil.which("jackd") is None:
        raise JackServerError("jackd is not installed (scripts/install.sh installs jackd2)")
    errors = []
    for flags in (["-R"], ["--no-realtime"]):
        # Its output goes to a file: a pipe nobody reads would fill up and stall the server.
        with open(log_path, "w") as log:
            process = subprocess.Popen(["jackd", "-n", name, *flags, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                                       stdout=log, stderr=subprocess.STDOUT)
        for _ in range(50):
            if process.poll() is not None:
                break
            if subprocess.run(["jack_lsp"], env=server_env(name), capture_output=True).returncode == 0:
                return process
            time.sleep(0.1)
        process.kill()
        process.wait()
        errors.append(f"jackd {' '.join(flags)}: {Path(log_path).read_text().strip()[-500:]}")
    raise JackServerError("could not start jackd: " + " | ".join(errors))
