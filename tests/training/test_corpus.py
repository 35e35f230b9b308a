import json

import numpy as np
import pytest
import soundfile

from livegen.loops import find_beat_grid
from training.corpus import GENRES, build_corpus


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory, palette):
    out = tmp_path_factory.mktemp("corpus")
    assert build_corpus(out, clips_per_genre=2, seed=3, palette_cache=palette) == 2 * len(GENRES)
    return out


@pytest.mark.slow
def test_every_genre_renders_clips_in_its_tempo_range(corpus_dir):
    for name, genre in GENRES.items():
        clips = sorted((corpus_dir / name).glob("*.flac"))
        assert len(clips) == 2
        for clip in clips:
            audio, rate = soundfile.read(clip)
            meta = json.loads(clip.with_suffix(".json").read_text())
            assert rate == 22050 and len(audio) == int(12.0 * rate)
            assert genre.bpm[0] <= meta["bpm"] <= genre.bpm[1]
            assert 0.5 < np.abs(audio).max() <= 0.9


@pytest.mark.slow
def test_clips_have_a_steady_beat_at_their_tempo(corpus_dir):
    """The beat grid of a clip's first slice agrees with the tempo it was rendered at."""
    for name in GENRES:
        clip = sorted((corpus_dir / name).glob("*.flac"))[0]
        audio, rate = soundfile.read(clip, dtype="float32")
        bpm = json.loads(clip.with_suffix(".json").read_text())["bpm"]
        grid = find_beat_grid(audio[: int(5.94 * rate)], rate, expected_bpm=bpm)
        found = 60 * rate / grid.period
        assert min(abs(found / bpm - r) for r in (0.5, 1.0, 2.0)) < 0.02, (name, found, bpm)


@pytest.mark.slow
def test_same_seed_same_corpus_and_resume(corpus_dir, palette, tmp_path):
    assert build_corpus(tmp_path, clips_per_genre=1, genres=["house"], seed=3, palette_cache=palette) == 1
    a, _ = soundfile.read(tmp_path / "house" / "house_0000.flac")
    b, _ = soundfile.read(corpus_dir / "house" / "house_0000.flac")
    np.testing.assert_array_equal(a, b)
    assert build_corpus(tmp_path, clips_per_genre=1, genres=["house"], seed=3,
                        palette_cache=palette) == 0  # nothing left to do
    other = tmp_path / "other"
    build_corpus(other, clips_per_genre=1, genres=["house"], seed=4, palette_cache=palette)
    c, _ = soundfile.read(other / "house" / "house_0000.flac")
    assert not np.array_equal(a, c)


@pytest.mark.slow
def test_each_clip_is_in_the_key_its_sidecar_names_and_both_modes_come(corpus_dir, palette):
    """The progression starts on the tonic and the bass plays each chord's root, in major or minor."""
    from livegen.loops.key import parse_key
    from training.corpus import PROGRESSIONS, load_kits, render_clip, render_palette

    genre = GENRES["house"]
    notes = render_palette(sorted({*genre.bass_program, *genre.chord_program}), palette)  # cached by corpus_dir
    kits = load_kits()
    modes = set()
    for clip in range(12):
        _, meta = render_clip(genre, kits, notes, np.random.default_rng([11, clip]), seconds=4.0)
        key = parse_key(meta["key"])
        assert key.tonic == meta["tonic"] == meta["root"] % 12 and key.minor == (meta["mode"] == "minor")
        assert meta["progression"][0] == ("0m" if key.minor else "0M")  # it starts on the tonic chord
        assert tuple(meta["progression"]) in {tuple(f"{d}{q}" for d, q in p) for p in PROGRESSIONS[meta["mode"]]}
        modes.add(meta["mode"])
    assert modes == {"major", "minor"}
