"""The learnt key estimator: trained end to end on rendered clips, and the shipped one on clips of a new seed."""

import json

import numpy as np
import pytest

from livegen.loops.key import Key, mirex_score, parse_key
from livegen.loops.keynet import NO_KEY, class_of, estimate_key_net, key_of, load_key_net, shift_class
from training.corpus import GENRES, RATE, load_kits, render_clip, render_palette

HELD_OUT_SEED = 31  # neither the estimator's training seeds nor bench/keys.py's


def test_classes_name_every_key_once_and_move_with_a_shift():
    keys = [key_of(i) for i in range(NO_KEY + 1)]
    assert keys[-1] is None and len(set(keys[:-1])) == 24
    assert all(class_of(key) == i for i, key in enumerate(keys))
    assert key_of(shift_class(class_of(parse_key("Am")), 3)) == parse_key("Cm")
    assert key_of(shift_class(class_of(parse_key("B")), 2)) == parse_key("C#")
    assert shift_class(NO_KEY, 5) == NO_KEY


def test_a_folder_that_is_not_an_estimator_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=str(tmp_path)):
        load_key_net(tmp_path)


def _clips(palette_cache, seed: int, per_genre: int, tonal: bool):
    kits = load_kits()
    palette = render_palette(sorted({p for g in GENRES.values() for p in (*g.bass_program, *g.chord_program)}),
                             palette_cache)
    for index, genre in enumerate(GENRES.values()):
        for clip in range(per_genre):
            yield render_clip(genre, kits, palette, np.random.default_rng([seed, index, clip]), tonal=tonal)


@pytest.mark.slow
def test_training_writes_an_estimator_that_loads_and_reads(tmp_path, palette):
    from training.key_estimator import KeyNetSettings, train_key_net

    settings = KeyNetSettings(clips=8, validation_clips=4, steps=3, batch=4, width=2)
    figures = train_key_net(tmp_path / "net", settings, palette_cache=palette, log=lambda line: None)
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    assert config["validation"] == figures and config["training"]["steps"] == 3
    net = load_key_net(tmp_path / "net")
    assert net.width == 2 and not net.training
    audio, _ = next(_clips(palette, HELD_OUT_SEED, 1, tonal=True))
    estimate = estimate_key_net(audio, RATE, net)
    assert 0.0 < estimate.confidence <= 1.0 and (estimate.key is None or isinstance(estimate.key, Key))


@pytest.mark.slow
def test_the_shipped_estimator_reads_clips_it_never_heard(palette):
    """Corpus clips of a new seed in their key, and drums alone as no key (weights in livegen/loops/key-net)."""
    net = load_key_net()
    scores = [mirex_score(estimate_key_net(audio, RATE, net).key, parse_key(meta["key"]))
              for audio, meta in _clips(palette, HELD_OUT_SEED, 4, tonal=True)]
    assert np.mean(scores) >= 0.75, scores
    alone = [estimate_key_net(audio, RATE, net).key for audio, _ in _clips(palette, HELD_OUT_SEED, 2, tonal=False)]
    assert sum(key is None for key in alone) >= 6, alone
    # The same clips read at the engine's rate, in stereo, as the live worker holds its loops.
    import librosa

    audio, meta = next(_clips(palette, HELD_OUT_SEED, 1, tonal=True))
    stereo = np.repeat(librosa.resample(audio, orig_sr=RATE, target_sr=48000)[:, None], 2, axis=1)
    assert estimate_key_net(stereo, 48000, net).key == estimate_key_net(audio, RATE, net).key
