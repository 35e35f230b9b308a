"""The ``livegen`` command, run as a user runs it (a subprocess), on tiny models."""

import json
import os
import subprocess
import sys

import pytest
import soundfile

from livegen.loops.loudness import DEFAULT_TARGET_LUFS, loop_loudness

PYTHON = [sys.executable, "-m", "livegen.cli"]


def run(*args, env=None):
    return subprocess.run([*PYTHON, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_generate_raw_writes_loops_with_sidecars(tiny_model_dir, tmp_path):
    out = tmp_path / "loops"
    result = run("generate", "--model", tiny_model_dir, "--count", 3, "--steps", 4, "--seed", 10, "--batch", 2,
                 "--raw", "--format", "flac", "--sample-rate", 44100, "--out", out)
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.flac"))
    assert [f.name.rsplit("_", 1)[0] for f in files] == [f"tiny_seed{s}_ddim4_raw" for s in (10, 11, 12)]
    for path in files:
        audio, rate = soundfile.read(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        # its estimated key, in the name too (an untrained model's noise has none)
        assert 0 <= meta["key_confidence"] <= 1 and path.stem.endswith(f"_{meta['key'] or 'nokey'}")
        assert rate == 44100 and meta["sample_rate"] == 44100 and len(audio) == meta["frames"]
        assert meta["steps"] == 4 and meta["sampler"] == "ddim" and meta["raw"] is True
        # levelled to the default loudness as heard, the peak kept under full scale
        assert meta["loudness"] == pytest.approx(DEFAULT_TARGET_LUFS, abs=0.05) or abs(audio).max() > 0.98
        assert meta["loudness"] == pytest.approx(loop_loudness(audio, rate), abs=0.05)
        assert abs(audio).max() <= 0.99
    assert "3 written, 0 skipped" in result.stderr
    assert f"{DEFAULT_TARGET_LUFS:.1f} LUFS" in result.stderr


def test_generate_in_a_key_asks_a_key_conditioned_model_and_moves_loops_that_miss(key_model_dir, genre_model_dir,
                                                                                   tmp_path):
    for model, asks in ((key_model_dir, True), (genre_model_dir, False)):
        out = tmp_path / model.name
        result = run("generate", "--model", model, "--genre", "techno", "--key", "A minor", "--count", 2,
                     "--steps", 2, "--raw", "--out", out)
        assert result.returncode == 0, result.stderr
        for sidecar in out.glob("*.json"):
            meta = json.loads(sidecar.read_text())
            assert meta["asked_key"] == "8A" and meta["asked_the_model"] is asks
            assert -3 <= meta["pitch_shift"] <= 3  # a loop out of the key is moved by 3 semitones at most
    result = run("generate", "--model", key_model_dir, "--genre", "techno", "--key", "H minor", "--out", tmp_path)
    assert result.returncode == 2 and "not a key: 'H minor'" in result.stderr


def test_generate_with_loudness_off_leaves_the_loops_at_loop_preps_peak(tiny_model_dir, tmp_path):
    out = tmp_path / "loops"
    result = run("generate", "--model", tiny_model_dir, "--count", 2, "--steps", 2, "--raw", "--loudness", "off",
                 "--out", out)
    assert result.returncode == 0, result.stderr
    for path in sorted(out.glob("*.wav")):
        audio, _ = soundfile.read(path)
        assert 0.85 < abs(audio).max() < 0.95
        assert json.loads(path.with_suffix(".json").read_text())["loudness"] is None
    refused = run("generate", "--model", tiny_model_dir, "--loudness", "-2", "--out", out)
    assert refused.returncode == 2 and "loudness -2 LUFS is outside -40 to -5 LUFS" in refused.stderr


def test_same_seed_same_file(tiny_model_dir, tmp_path):
    for name in ("a", "b"):
        assert run("generate", "--model", tiny_model_dir, "--count", 1, "--steps", 3, "--seed", 5, "--raw",
                   "--out", tmp_path / name).returncode == 0
    a, _ = soundfile.read(next((tmp_path / "a").glob("*.wav")))
    b, _ = soundfile.read(next((tmp_path / "b").glob("*.wav")))
    assert (a == b).all()


def test_genre_preset_by_name(genre_model_dir, tmp_path):
    presets = tmp_path / "presets"
    (presets / "genres").mkdir(parents=True)
    (presets / "genres" / "house.toml").write_text(
        f'model = "{genre_model_dir}"\nlabel = "house"\nsteps = 3\nsampler = "ddpm"\nbpm_range = [118, 126]\n')
    result = run("generate", "--model", "house", "--count", 1, "--raw", "--out", tmp_path / "out",
                 env={"LIVEGEN_PRESETS": str(presets)})
    assert result.returncode == 0, result.stderr
    meta = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert meta["genre"] == "house" and meta["steps"] == 3 and meta["sampler"] == "ddpm"
    info = run("info", "house", env={"LIVEGEN_PRESETS": str(presets)})
    assert "techno, house, breaks" in info.stdout and "118-126 BPM" in info.stdout


def test_generate_draws_a_slice_wide_enough_for_four_bars(tmp_path):
    # The shipped slice model's own slice (5.94 s) holds 2 bars at 128 BPM; the fitted canvas, 4.
    for canvas, bars in (("fit", 4), ("native", 2)):
        result = run("generate", "--model", "techno-fast", "--bpm", 128, "--count", 2, "--seed", 3, "--canvas", canvas,
                     "--out", tmp_path / canvas)
        assert result.returncode == 0, result.stderr
        files = sorted((tmp_path / canvas).glob("*.wav"))
        assert [f.name.rsplit("_", 2)[1] for f in files] == [f"128.0bpm-{bars}bars"] * 2, canvas
        for path in files:
            assert len(soundfile.read(path)[0]) == round(bars * 4 * 60 / 128 * 22050)


def test_bad_model_gives_a_clear_error(tmp_path):
    result = run("generate", "--model", "no-such-genre", "--out", tmp_path)
    assert result.returncode == 2 and "no model dir or genre preset 'no-such-genre'" in result.stderr
    (tmp_path / "broken").mkdir()
    result = run("generate", "--model", tmp_path / "broken", "--out", tmp_path)
    assert result.returncode == 2 and "model_index.json: missing" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_new_model_then_info(tmp_path):
    result = run("new-model", tmp_path / "m", "--size", "tiny", "--genres", "techno,house")
    assert result.returncode == 0, result.stderr
    info = run("info", tmp_path / "m")
    assert "2.5M parameters" in info.stdout and "techno, house" in info.stdout and "untrained" in info.stdout


def hub_cache(root, hub_id, model_dir, revision="0123456789abcdef0123456789abcdef01234567"):
    """A Hugging Face Hub cache holding ``model_dir`` as ``hub_id``'s main revision, in the hub client's
    own layout (models--OWNER--NAME/refs/main -> snapshots/REVISION/...), as a download leaves it."""
    import shutil

    repo = root / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(model_dir, repo / "snapshots" / revision)
    return {"HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_published_model_by_hub_id_loads_from_the_hub_cache(tiny_model_dir, tmp_path):
    env = hub_cache(tmp_path / "hub", "someone/tiny-loops", tiny_model_dir)
    info = run("info", "someone/tiny-loops", env=env)
    assert info.returncode == 0, info.stderr
    assert "(someone/tiny-loops)" in info.stdout and "snapshots" in info.stdout
    result = run("generate", "--model", "someone/tiny-loops", "--count", 1, "--steps", 2, "--seed", 3, "--raw",
                 "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr
    assert [p.name.rsplit("_", 1)[0] for p in (tmp_path / "out").glob("*.wav")] == ["tiny-loops_seed3_ddim2_raw"]
    # A genre preset may name it too (no dir of that name beside the preset).
    presets = tmp_path / "presets"
    (presets / "genres").mkdir(parents=True)
    (presets / "genres" / "published.toml").write_text('model = "someone/tiny-loops"\nsteps = 2\n')
    info = run("info", "published", env={**env, "LIVEGEN_PRESETS": str(presets)})
    assert info.returncode == 0 and "(someone/tiny-loops)" in info.stdout, info.stderr


def test_published_model_with_bin_weights_only(tmp_path):
    from livegen.diffusion.architectures import ARCHITECTURES, new_model

    new_model(ARCHITECTURES["micro"], seed=4).save(tmp_path / "bin", safe_serialization=False)
    assert not list((tmp_path / "bin" / "unet").glob("*.safetensors"))
    env = hub_cache(tmp_path / "hub", "someone/old-format", tmp_path / "bin")
    info = run("info", "someone/old-format", env=env)
    assert info.returncode == 0 and "(someone/old-format)" in info.stdout, info.stderr


def test_unknown_hub_id_offline_says_so(tmp_path):
    result = run("info", "someone/not-downloaded", env={"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "someone/not-downloaded: no model directory of that name" in result.stderr


def test_generate_loops_of_one_bar_from_the_shipped_default(tmp_path):
    result = run("generate", "--model", "techno", "--count", 3, "--seed", 40, "--bpm", 128, "--bars", 1,
                 "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    sidecars = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert sidecars and all(meta["bars"] == 1 for meta in sidecars)
    for meta in sidecars:
        assert meta["frames"] == round(4 * 60 / 128 * meta["sample_rate"])


def test_generate_without_a_tempo_keeps_loops_near_the_genres_range(tmp_path):
    result = run("generate", "--model", "hiphop", "--count", 4, "--seed", 11, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    tempi = [json.loads(p.read_text())["bpm"] for p in tmp_path.glob("*.json")]
    # hip-hop's range is 84-96: readings an octave off are folded toward its middle, 90
    assert tempi and all(90 / 2 ** 0.5 <= bpm <= 90 * 2 ** 0.5 for bpm in tempi), tempi


def test_a_seed_gives_the_same_loop_in_any_batch_at_the_default_precision(tmp_path):
    """The shipped default at the precision ``auto`` picks (the environment's override removed): a loop
    depends on its seed, not on the batch it was drawn in. In fp32 a batch's rounding moves about 100 of
    49152 pixels of the image by one level, and the loop's spectrum by up to 1.6%; in bf16 the same
    seeds' spectra differed by 13-17% (their waveforms by 44-58%)."""
    env = {k: v for k, v in os.environ.items() if k != "LIVEGEN_PRECISION"}
    loops = {}
    for batch in (1, 3):
        out = tmp_path / f"batch{batch}"
        result = subprocess.run([*PYTHON, "generate", "--model", "techno", "--count", "3", "--seed", "40",
                                 "--batch", str(batch), "--out", str(out)],
                                capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr
        loops[batch] = {path.name: soundfile.read(path)[0] for path in sorted(out.glob("*.wav"))}
    assert list(loops[1]) == list(loops[3]) and len(loops[1]) == 3
    for name, audio in loops[1].items():
        other = loops[3][name]
        assert audio.shape == other.shape, name
        difference = _spectral_difference(audio, other)
        assert difference < 0.05, f"{name}: batch 1 and batch 3 differ by {difference:.1%}"


def _spectral_difference(a, b) -> float:
    """Relative L2 distance of two clips' STFT magnitudes (Griffin-Lim's phases are not the loop)."""
    import librosa
    import numpy as np

    magnitude_a = np.abs(librosa.stft(np.asarray(a, np.float32).T, n_fft=2048))
    magnitude_b = np.abs(librosa.stft(np.asarray(b, np.float32).T, n_fft=2048))
    return float(np.linalg.norm(magnitude_a - magnitude_b) / np.linalg.norm(magnitude_a))


def test_play_flags_reach_the_engine_settings_and_the_rest_keep_the_engines_defaults():
    from livegen.cli import _build_parser, engine_settings
    from livegen.engine import EngineSettings

    args = _build_parser().parse_args(["play", "--genre", "house", "--bpm", "124", "--sync-delay", "12",
                                       "--status", "s.jsonl", "--crossfade", "5", "--blocksize", "8192",
                                       "--worker-threads", "3", "--compile"])
    settings = engine_settings(args)
    assert (settings.genres, settings.bpm, settings.sync_delay_ms, str(settings.status_path),
            settings.crossfade_ms, settings.blocksize, settings.worker_threads, settings.compile) == \
        (["house"], 124.0, 12.0, "s.jsonl", 5.0, 8192, 3, "inductor")
    assert settings.max_block == 8192  # a block bigger than the mixer's default still fits
    plain, defaults = engine_settings(_build_parser().parse_args(["play"])), EngineSettings(genres=["techno"])
    assert plain == defaults


def test_a_status_line_names_the_loops_key_its_shift_and_the_set_key():
    from livegen.cli import status_line

    state = {"bar": 12, "bpm": 128.0, "buffer": {"techno": 2}, "underflows": 0, "worker": {"restarts": 0},
             "playing": {"genre": "techno", "seed": 5, "key": "9A", "key_confidence": 0.8, "pitch_shift": -1},
             "key": {"key": "8A", "label": "8A Am", "mode": "shift", "auto": False}}
    assert "playing techno 9A Em (moved -1) seed 5  set key 8A Am shift" in status_line(state)
    state["playing"].update(key=None, pitch_shift=0)
    state["key"] = {"key": None, "label": None, "mode": "off", "auto": False}
    line = status_line(state)
    assert "playing techno no key seed 5  ready" in line and "set key" not in line
    state["playing"] = None  # before the first loop
    assert "playing None seed None" in status_line(state)
