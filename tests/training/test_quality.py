"""The sound figures of loops, and a model's loops measured beside the ceiling and the corpus."""

import json
import shutil

import numpy as np
import pytest
import soundfile

from livegen.audio import MelConfig
from livegen.diffusion.architectures import Architecture, new_model
from tests.synth import drum_pattern
from training.prepare import is_held_out, prepare
from training.quality import beat_steadiness, loop_figures, measure_quality, quality_table

RATE = 22050
# 2.2 s slices (192 frames at hop 256): room for a whole bar at 200 BPM, small enough for a fast UNet.
ARCH = Architecture(MelConfig(x_res=192, y_res=32, n_fft=512, hop_length=256), (16, 32), norm_num_groups=8)
BPM = 200


def bass_line(bpm: float, seconds: float) -> np.ndarray:
    """A sine bass playing eighths on two notes: tonal, in the 40-2000 Hz band."""
    t = np.arange(int(seconds * RATE)) / RATE
    eighth = 30.0 / bpm
    notes = np.where((t // (4 * eighth)) % 2 == 0, 55.0, 82.4)
    envelope = np.exp(-(t % eighth) / (eighth / 2))
    return (0.5 * np.sin(2 * np.pi * notes * t) * envelope).astype(np.float32)


def test_figures_tell_music_from_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.3, RATE * 6).astype(np.float32)
    drums = drum_pattern(120, 6.0)
    music = drums + bass_line(120, 6.0)
    noise_f, drums_f, music_f = (loop_figures(a, RATE) for a in (noise, drums, music))
    assert drums_f["sharpness"] > 3 * noise_f["sharpness"]
    assert music_f["tonal"] > noise_f["tonal"] + 0.2
    assert drums_f["steadiness"] > 0.5 and noise_f["steadiness"] < 0.3
    # peak-normalised: the level does not change a figure; another rate is resampled first
    assert loop_figures(0.1 * music, RATE) == pytest.approx(music_f, rel=1e-3)
    assert beat_steadiness(drums, RATE) == pytest.approx(drums_f["steadiness"])


def test_beat_steadiness_separates_drums_from_noise():
    rng = np.random.default_rng(0)
    drums = beat_steadiness(drum_pattern(120), 22050)
    noise = beat_steadiness(rng.normal(0, 0.3, 22050 * 6).astype(np.float32), 22050)
    assert drums > 0.5 and noise < 0.3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two genres of drums and bass at 200 BPM, prepared at ARCH's mel settings, and a model of ARCH."""
    root = tmp_path_factory.mktemp("quality")
    for genre in ("techno", "house"):
        (root / "audio" / genre).mkdir(parents=True)
        names = [f"{genre}_{i}.wav" for i in range(40)]
        held = next(n for n in names if is_held_out(f"{genre}/{n}"))  # one held-out file per genre
        for i, name in enumerate([held] + [n for n in names if not is_held_out(f"{genre}/{n}")][:3]):
            audio = drum_pattern(BPM, 4.5, seed=i) + bass_line(BPM, 4.5)
            soundfile.write(root / "audio" / genre / name, audio, RATE)
    prepare(root / "audio", root / "data", ARCH.mel, log=lambda m: None)
    new_model(ARCH, class_names=["house", "techno"], seed=3).save(root / "model")
    return root


def test_measure_quality_sets_loops_beside_the_ceiling_and_the_corpus(corpus):
    from livegen.diffusion import load_model

    model = load_model(corpus / "model", "cpu")
    quality = measure_quality(model, corpus / "data", count=3, steps=2, sampler="ddim", bpm=BPM, examples=2)
    assert set(quality) == {"house", "techno"}
    for q in quality.values():
        assert q.bpm == BPM and q.loops + q.dropped == 3
        # the held-out drum slices (one file per genre, two slices) come through the loop path with a pulse
        assert q.ceiling and q.ceiling["steadiness"] > 0.4 and q.ceiling["sharpness"] > 2
        assert q.corpus and q.corpus["steadiness"] > 0.4  # found where prepare recorded the audio folder
        assert q.whole_slice and q.whole_slice["sharpness"] > 2
        assert 0 < len(q.examples["ceiling"]) <= 2
        for example in q.examples["ceiling"]:
            assert example.image.dtype == np.uint8 and example.image.shape[0] == ARCH.mel.y_res
            assert len(example.audio) == pytest.approx(60 / BPM * 4 * RATE, abs=2)  # one whole bar
        if q.loops:  # an untrained model's noise seldom has a beat; any loop it gives is measured
            assert q.generated and q.ratio("sharpness") is not None
    header, rows = quality_table(quality)
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)


def test_without_the_original_audio_the_corpus_column_is_not_available(corpus, tmp_path):
    from livegen.diffusion import load_model

    data = tmp_path / "data"
    shutil.copytree(corpus / "data", data)
    (data / ".prepare" / "source.json").write_text(json.dumps({"audio_dir": str(tmp_path / "gone")}))
    quality = measure_quality(load_model(corpus / "model", "cpu"), data, count=1, steps=1, sampler="ddim", bpm=BPM)
    assert all(not q.corpus and q.ceiling for q in quality.values())
    _, rows = quality_table(quality)
    assert all(row[5] == "n/a" for row in rows)  # steadiness is held against the corpus


def test_eval_command_writes_figures_and_a_listening_page(corpus, tmp_path):
    from training.__main__ import main

    code = main(["eval", str(corpus / "model"), str(corpus / "data"), "--count", "4", "--steps", "2",
                 "--fidelity-steps", "--loops", "2", "--bpm", str(BPM), "--json", str(tmp_path / "eval.json"),
                 "--report", str(tmp_path / "page")])
    assert code == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert set(figures["quality"]) == {"house", "techno"}
    assert figures["quality"]["techno"]["ceiling"]["steadiness"] > 0.4
    page = (tmp_path / "page" / "index.html").read_text()
    assert "techno: ceiling" in page and "transient sharpness" in page
    for name in ("src", "href"):
        for target in __import__("re").findall(rf'{name}="([^"#:]+)"', page):
            assert (tmp_path / "page" / target).is_file(), target
