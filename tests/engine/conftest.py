"""A real JACK server (dummy backend: paced like a sound card, no hardware) for the engine tests."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SERVER = "livegen-test"


def _start_jackd(realtime: bool, log):
    flags = ["-R"] if realtime else ["--no-realtime"]
    # Its output goes to a file: a pipe nobody reads would fill up and stall the server.
    process = subprocess.Popen(["jackd", "-n", SERVER, *flags, "-d", "dummy", "-r", "48000", "-p", "256"],
                               stdout=log, stderr=subprocess.STDOUT)
    env = {**os.environ, "JACK_DEFAULT_SERVER": SERVER, "JACK_NO_START_SERVER": "1"}
    for _ in range(50):
        if process.poll() is not None:
            return None, Path(log.name).read_text()
        if subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0:
            return process, ""
        time.sleep(0.1)
    process.kill()
    return None, "jackd did not come up in 5 s"


@pytest.fixture(scope="session")
def jack_env(tmp_path_factory):
    """Environment for processes that should play into the test JACK server."""
    if shutil.which("jackd") is None or shutil.which("jack_rec") is None:
        pytest.skip("jackd2 is not installed (scripts/install.sh installs it)")
    # Real-time scheduling where the machine allows it, as on a performer's set-up.
    log = open(tmp_path_factory.mktemp("jack") / "jackd.log", "w")
    process, text = _start_jackd(realtime=True, log=log)
    if process is None:
        process, text = _start_jackd(realtime=False, log=log)
    if process is None:
        pytest.fail(f"could not start jackd: {text}")
    yield {**os.environ, "JACK_DEFAULT_SERVER": SERVER, "JACK_NO_START_SERVER": "1"}
    process.terminate()
    process.wait(10)
    log.close()
