"""Shared fixtures: tiny models built with the real code and saved in the real format."""

import warnings

import pytest

from livegen.diffusion.architectures import ARCHITECTURES, new_model

warnings.filterwarnings("ignore", category=FutureWarning)

# 32 mel bands x 64 frames at hop 256: 0.74 s a slice; small enough for fast tests.
TINY = ARCHITECTURES["micro"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    new_model(TINY, seed=1).save(path)
    return path


@pytest.fixture(scope="session")
def genre_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "genres"
    new_model(TINY, class_names=["techno", "house", "breaks"], seed=2).save(path)
    return path


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from livegen.diffusion import load_model

    return load_model(tiny_model_dir, "cpu")
