import json

import numpy as np
import pytest
import soundfile

from livegen.audio import MelCodec
from livegen.diffusion.architectures import ARCHITECTURES
from tests.synth import drum_pattern
from livegen.loops.grid import Grid
from training.prepare import data_grid, load_images, load_split, prepare

CONFIG = ARCHITECTURES["micro"].mel  # 0.74 s slices


@pytest.fixture()
def audio_dir(tmp_path):
    root = tmp_path / "audio"
    (root / "techno" / "deeper").mkdir(parents=True)
    (root / "hiphop").mkdir()
    soundfile.write(root / "techno" / "a.flac", drum_pattern(128, 2.0), 22050)
    stereo = np.stack([drum_pattern(130, 1.6, 44100), drum_pattern(130, 1.6, 44100, seed=1)], axis=1)
    soundfile.write(root / "techno" / "deeper" / "b.wav", stereo, 44100)  # nested: still "techno"
    soundfile.write(root / "hiphop" / "c.ogg", drum_pattern(90, 1.6, 32000), 32000)
    soundfile.write(root / "hiphop" / "silent.wav", np.zeros(22050 * 2, np.float32), 22050)
    (root / "hiphop" / "broken.wav").write_bytes(b"RIFF\x00\x00junk" * 10)
    (root / "hiphop" / "empty.flac").write_bytes(b"")
    (root / "hiphop" / "notes.mp3").write_text("not audio at all")
    (root / "hiphop" / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(50000))  # mpg123 complains
    (root / "hiphop" / "cover.jpg").write_bytes(b"\xff\xd8")  # not an audio extension: not looked at
    return root


def test_folder_to_dataset(audio_dir, tmp_path, capfd):
    messages = []
    report = prepare(audio_dir, tmp_path / "data", CONFIG, log=messages.append)
    images, labels, genres = load_images(tmp_path / "data")
    assert genres == ["hiphop", "techno"]
    # a.flac 2.0 s -> 2 slices; b.wav 1.6 s -> 2; c.ogg 1.6 s -> 2; silent.wav -> 0 (2 silent slices)
    assert report.slices == len(images) == 6 and report.silent == 2 and report.files == 4
    assert images.shape[1:] == (CONFIG.y_res, CONFIG.x_res) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 1, 1]
    skipped = {name.split("/")[-1]: why for name, why in report.skipped}
    assert set(skipped) == {"broken.wav", "empty.flac", "notes.mp3", "noise.mp3"}
    assert all(any(name in m for m in messages) for name in skipped)
    # an existing file is not said not to exist (libsndfile's words), and the decoders' notes stay off the terminal
    assert not any("does not exist" in why for why in skipped.values()), skipped
    assert "50000 bytes" in skipped["noise.mp3"] and "mp3" in skipped["noise.mp3"]
    assert "Illegal Audio-MPEG-Header" not in capfd.readouterr().err
    # the images are the codec's, from the audio at the codec's rate
    audio, _ = soundfile.read(audio_dir / "techno" / "a.flac", dtype="float32")
    expected = MelCodec(CONFIG).audio_to_images(audio)
    from datasets import load_from_disk

    rows = load_from_disk(str(tmp_path / "data" / "dataset"))
    first = [np.asarray(r["image"]) for r in rows if r["audio_file"] == "techno/a.flac"]
    np.testing.assert_array_equal(np.stack(first), expected)


def test_prepare_resumes(audio_dir, tmp_path):
    data = tmp_path / "data"
    prepare(audio_dir, data, CONFIG, log=lambda m: None)
    stamp = {p: p.stat().st_mtime_ns for p in (data / ".prepare").glob("*.npz")}
    soundfile.write(audio_dir / "hiphop" / "d.wav", drum_pattern(94, 0.8), 22050)
    report = prepare(audio_dir, data, CONFIG, log=lambda m: None)
    assert report.slices == 7
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())  # old files were not read again
    with pytest.raises(ValueError, match="other mel settings"):
        prepare(audio_dir, data, ARCHITECTURES["tiny"].mel)


GRID = Grid(beats_per_bar=4, bars=1, frames_per_beat=16)  # the micro codec's 64 frames: one bar


def kick_columns(image: np.ndarray) -> np.ndarray:
    """Columns where the low bands rise most: the kicks (and the synthetic snare's noise)."""
    flux = np.maximum(0, np.diff(image[:8].astype(float), axis=1)).mean(axis=0)
    return np.sort(np.argsort(flux)[-2:] + 1)


def test_grid_windows_from_sidecar_tempi_hop_by_a_bar(tmp_path):
    root = tmp_path / "audio"
    (root / "techno").mkdir(parents=True)
    for name, bpm in (("a", 120.0), ("b", 150.0)):
        # bar 1 at t = 0; its first kick is dropped, as the demo corpus sometimes does
        audio = drum_pattern(bpm, 8.0, offset=0.0, seed=1)
        audio[: int(0.05 * 22050)] = 0
        soundfile.write(root / "techno" / f"{name}.wav", audio, 22050)
        (root / "techno" / f"{name}.json").write_text(json.dumps({"bpm": bpm, "genre": "techno"}))
    report = prepare(root, tmp_path / "data", CONFIG, grid=GRID, log=lambda m: None)
    rows = load_split(tmp_path / "data")
    # 8 s: four 2 s bars at 120 BPM, five 1.6 s bars at 150
    assert report.slices == len(rows.images) == 9 and report.unsure == 0
    assert rows.grid == GRID and data_grid(tmp_path / "data") == GRID
    at_150 = [i for i, f in enumerate(rows.files) if f.endswith("b.wav")]
    assert [rows.starts[i] for i in at_150] == pytest.approx([0, 1.6, 3.2, 4.8, 6.4])
    assert all(rows.bpms[i] == 150 for i in at_150)
    for image in rows.images[1:]:  # kick on beat 1 (column 0) and 3 (32), snare on 2 and 4
        assert set(kick_columns(image)) <= {0, 1, 15, 16, 31, 32, 33, 47, 48}, kick_columns(image)
    with pytest.raises(ValueError, match="another grid"):
        prepare(root, tmp_path / "data", CONFIG, log=lambda m: None)


def test_grid_windows_by_the_beat_tracker_start_on_the_kick_and_skip_noise(tmp_path):
    root = tmp_path / "audio"
    (root / "house").mkdir(parents=True)
    rng = np.random.default_rng(0)
    # a bar and a half of noise, then the pattern: the downbeat is the first kick, at 0.75 s
    audio = np.concatenate([np.zeros(int(0.75 * 22050), np.float32), drum_pattern(125, 9.0, offset=0.0)])
    soundfile.write(root / "house" / "tracked.wav", audio, 22050)
    soundfile.write(root / "house" / "noise.wav", rng.normal(0, 0.2, 22050 * 8).astype(np.float32), 22050)
    report = prepare(root, tmp_path / "data", CONFIG, grid=GRID, expected_bpm=125, log=lambda m: None)
    rows = load_split(tmp_path / "data")
    tracked = [i for i, f in enumerate(rows.files) if f.endswith("tracked.wav")]
    assert len(tracked) >= 3
    bar = 4 * 60 / 125
    for i in tracked:
        assert rows.bpms[i] == pytest.approx(125, rel=0.01)
        bars_from_first_kick = (rows.starts[i] - 0.75) / bar
        assert abs(bars_from_first_kick - round(bars_from_first_kick)) * bar < 0.03  # on a downbeat
    assert not any(f.endswith("noise.wav") for f in rows.files) and report.files == 2


def test_grid_data_needs_images_of_whole_bars(tmp_path, audio_dir):
    with pytest.raises(ValueError, match="frames wide"):
        prepare(audio_dir, tmp_path / "data", CONFIG, grid=Grid(bars=2), log=lambda m: None)


def test_a_sidecar_with_a_bad_tempo_names_its_file(tmp_path):
    root = tmp_path / "audio"
    (root / "techno").mkdir(parents=True)
    for name in ("a", "b"):
        soundfile.write(root / "techno" / f"{name}.wav", drum_pattern(120, 3.0), 22050)
    (root / "techno" / "a.json").write_text(json.dumps({"bpm": "fast"}))
    (root / "techno" / "b.json").write_text(json.dumps({"bpm": 120}))
    report = prepare(root, tmp_path / "data", CONFIG, grid=GRID, log=lambda m: None)
    assert report.slices == 1 and report.files == 1  # b.wav's one bar of 2 s in 3 s
    assert len(report.skipped) == 1 and "a.json" in report.skipped[0][1] and "fast" in report.skipped[0][1]


def test_a_folder_with_nothing_usable_says_so(tmp_path):
    (tmp_path / "audio").mkdir()
    soundfile.write(tmp_path / "audio" / "quiet.wav", np.zeros(22050 * 2, np.float32), 22050)
    with pytest.raises(ValueError, match="no usable slices"):
        prepare(tmp_path / "audio", tmp_path / "data", CONFIG, log=lambda m: None)
