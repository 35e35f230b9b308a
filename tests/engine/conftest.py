"""A real JACK server (dummy backend) for the engine tests."""

import shutil
from pathlib import Path

import pytest

from livegen.engine.jackserver import server_env, start_dummy_server

SERVER = "livegen-test"


class JackServer:
    def __init__(self, log: Path):
        self.env = server_env(SERVER)
        self.log = log

    def xruns(self) -> list[str]:
        """The server's xrun reports so far: which client was late ("client = X was not finished")."""
        return [line for line in self.log.read_text().splitlines() if "was not finished" in line]


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory):
    """A JACK dummy server for the session; processes that play into it take its ``env``."""
    if shutil.which("jackd") is None or shutil.which("jack_rec") is None:
        pytest.skip("jackd2 is not installed (scripts/install.sh installs it)")
    log = tmp_path_factory.mktemp("jack") / "jackd.log"
    process = start_dummy_server(SERVER, log)
    yield JackServer(log)
    process.terminate()
    process.wait(10)
