"""Shared fixtures: tiny models built with the real code and saved in the real format."""

import os
import shutil
import warnings
from pathlib import Path

import pytest

from livegen.diffusion.architectures import ARCHITECTURES, new_model
from tests.jackserver import server_env, start_dummy_server, xrun_reports

warnings.filterwarnings("ignore", category=FutureWarning)

# 32 mel bands x 64 frames at hop 256: 0.74 s a slice; small enough for fast tests.
TINY = ARCHITECTURES["micro"]


def pytest_collection_modifyitems(items):
    """Every test that plays through a real JACK server is marked ``jack`` and ``slow``:
    ``pytest -m "not slow"`` is the fast core for the development loop."""
    for item in items:
        if "jack_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.jack)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    new_model(TINY, seed=1).save(path)
    return path


@pytest.fixture(scope="session")
def key_model_dir(tmp_path_factory):
    """Key-conditioned (untrained): a label for each genre and each key, on the semitone codec."""
    from dataclasses import replace

    from livegen.audio import MelConfig
    from livegen.diffusion.checkpoint import ANY_KEY
    from livegen.loops.key import KEY_CODES

    path = tmp_path_factory.mktemp("models") / "keys"
    codec = MelConfig(x_res=64, y_res=32, n_fft=512, hop_length=256, frequency_scale="semitone")
    model = new_model(replace(TINY, mel=codec), class_names=["techno", "house"], key_names=[*KEY_CODES, ANY_KEY],
                      seed=3)
    model.extra["grid"] = {"beats_per_bar": 4, "bars": 1, "frames_per_beat": 16}  # its noise still cuts into loops
    model.save(path)
    return path


@pytest.fixture(scope="session")
def genre_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "genres"
    new_model(TINY, class_names=["techno", "house", "breaks"], seed=2).save(path)
    return path


@pytest.fixture()
def tiny_model(tiny_model_dir):
    """The tiny model in fp32, whatever ``$LIVEGEN_PRECISION`` forces: the tests that take it compare
    batches with seeds one by one and morphs at tolerances only fp32 keeps (bf16 rounds a batch
    differently, and the clipped samplers amplify it)."""
    from livegen.diffusion import load_model

    return load_model(tiny_model_dir, "cpu", "fp32")


# ---------------------------------------------------------------- a real JACK server (dummy backend)
# Named for this run: a server left over by a run that died (seen here after an aborted run) must not take
# this run's clients while this run reads its own server's log.
SERVER = f"livegen-test-{os.getpid()}"


class JackServer:
    def __init__(self, log: Path):
        self.env = server_env(SERVER)
        self.log = log

    def xruns(self) -> list[str]:
        return xrun_reports(self.log)


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
