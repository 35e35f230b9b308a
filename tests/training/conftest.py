import pytest


@pytest.fixture(scope="session")
def palette(tmp_path_factory):
    """Where the demo corpus's note palette is cached: fluidsynth renders it once a session."""
    return tmp_path_factory.mktemp("palette") / "palette.npz"
