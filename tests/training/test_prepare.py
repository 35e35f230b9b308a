import numpy as np
import pytest
import soundfile

from livegen.audio import MelCodec
from livegen.diffusion.architectures import ARCHITECTURES
from tests.synth import drum_pattern
from training.prepare import load_images, prepare

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
    (root / "hiphop" / "cover.jpg").write_bytes(b"\xff\xd8")  # not an audio extension: not looked at
    return root


def test_folder_to_dataset(audio_dir, tmp_path):
    messages = []
    report = prepare(audio_dir, tmp_path / "data", CONFIG, log=messages.append)
    images, labels, genres = load_images(tmp_path / "data")
    assert genres == ["hiphop", "techno"]
    # a.flac 2.0 s -> 2 slices; b.wav 1.6 s -> 2; c.ogg 1.6 s -> 2; silent.wav -> 0 (2 silent slices)
    assert report.slices == len(images) == 6 and report.silent == 2 and report.files == 4
    assert images.shape[1:] == (CONFIG.y_res, CONFIG.x_res) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 1, 1]
    skipped = {name.split("/")[-1]: why for name, why in report.skipped}
    assert set(skipped) == {"broken.wav", "empty.flac", "notes.mp3"}
    assert all(any(name in m for m in messages) for name in skipped)
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
