"""A real JACK server (dummy backend: paced like a sound card, no hardware) for the engine tests."""

import os
import shutil
import subprocess
import time

import pytest

SERVER = "livegen-test"


def _start_jackd(realtime: bool):
    flags = ["-R"] if realtime else ["--no-realtime"]
    process = subprocess.Popen(["jackd", "-n", SERVER, *flags, "-d", "dummy", "-r", "48000", "-p", "256"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    env = {**os.environ, "JACK_DEFAULT_SERVER": SERVER, "JACK_NO_START_SERVER": "1"}
    for _ in range(50):
        if process.poll() is not None:
            return None, process.stdout.read()
        if subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0:
            return process, ""
        time.sleep(0.1)
    process.kill()
    return None, "jackd did not come up in 5 s"


@pytest.fixture(scope="session")
def jack_env():
    """Environment for processes that should play into the test JACK server."""
    if shutil.which("jackd") is None or shutil.which("jack_rec") is None:
        pytest.skip("jackd2 is not installed (scripts/install.sh installs it)")
    # Real-time scheduling where the machine allows it, as on a performer's set-up.
    process, log = _start_jackd(realtime=True)
    if process is None:
        process, log = _start_jackd(realtime=False)
    if process is None:
        pytest.fail(f"could not start jackd: {log}")
    yield {**os.environ, "JACK_DEFAULT_SERVER": SERVER, "JACK_NO_START_SERVER": "1"}
    process.terminate()
    process.wait(10)
