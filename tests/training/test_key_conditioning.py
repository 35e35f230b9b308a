"""A key-conditioned model: keys in the data set, training with genre and key labels, asking for a key."""

import json

import numpy as np
import pytest
import soundfile
import torch

from livegen.diffusion import load_model
from livegen.diffusion.architectures import ARCHITECTURES
from livegen.diffusion.checkpoint import ANY_KEY, CheckpointError
from livegen.loops.key import KEY_CODES, estimate_key
from tests.synth import drum_pattern
from training.prepare import load_split, prepare
from training.train import TrainSettings, train

KEYS = {("techno", 0): "Am", ("techno", 1): "C", ("techno", 2): None, ("hiphop", 0): "F#m", ("hiphop", 1): "8B"}


def _chord(notes, seconds, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    return sum(0.05 * np.sin(2 * np.pi * 440.0 * 2 ** ((n - 69) / 12) * t) for n in notes).astype(np.float32)


@pytest.fixture(scope="module")
def keyed_data(tmp_path_factory):
    """Two genres of one-bar grid windows (micro's 64 frames); sidecars name the key of most files, one
    says none (drums alone), and one file's key is left to the estimator."""
    from livegen.loops.grid import Grid

    root = tmp_path_factory.mktemp("keyed")
    for genre in ("techno", "hiphop"):
        (root / "audio" / genre).mkdir(parents=True)
        for i in range(3):
            audio = drum_pattern(150, 5.0, offset=0.0, seed=i) + _chord((57, 60, 64), 5.0)
            soundfile.write(root / "audio" / genre / f"{i}.wav", audio, 22050)
            facts = {"bpm": 150, **({"key": KEYS[genre, i]} if (genre, i) in KEYS else {})}
            (root / "audio" / genre / f"{i}.json").write_text(json.dumps(facts))
    prepare(root / "audio", root / "data", ARCHITECTURES["micro"].mel, grid=Grid(beats_per_bar=4, bars=1,
                                                                                 frames_per_beat=16),
            log=lambda m: None)
    return root


def test_prepare_records_each_slices_key(keyed_data):
    rows = load_split(keyed_data / "data")
    by_file = {}
    for file, key, start in zip(rows.files, rows.keys, rows.starts):
        by_file.setdefault(file, []).append((key, start))
    assert {k for k, _ in by_file["techno/0.wav"]} == {"8A"}  # Am, from the sidecar
    assert {k for k, _ in by_file["techno/1.wav"]} == {"8B"}  # C
    assert {k for k, _ in by_file["techno/2.wav"]} == {""}  # "key": null: no key
    assert {k for k, _ in by_file["hiphop/0.wav"]} == {"11A"}  # F#m
    # no sidecar key: each slice is read by the key estimator, over that slice's audio
    audio, rate = soundfile.read(keyed_data / "audio" / "hiphop" / "2.wav", dtype="float32")
    seconds = 4 * 60 / 150  # a bar
    for key, start in by_file["hiphop/2.wav"]:
        estimate = estimate_key(audio[int(start * rate):int((start + seconds) * rate)], rate).key
        assert key == ("" if estimate is None else estimate.camelot)


def test_a_bad_sidecar_key_names_the_file(tmp_path):
    (tmp_path / "audio" / "techno").mkdir(parents=True)
    soundfile.write(tmp_path / "audio" / "techno" / "a.wav", drum_pattern(128, 2.0), 22050)
    (tmp_path / "audio" / "techno" / "a.json").write_text(json.dumps({"key": "H minor"}))
    messages = []
    with pytest.raises(ValueError, match="no usable slices"):
        prepare(tmp_path / "audio", tmp_path / "data", ARCHITECTURES["micro"].mel, log=messages.append)
    assert any("a.json" in m and "H minor" in m for m in messages)


@pytest.fixture(scope="module")
def keyed_model(keyed_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyed-model") / "model"
    settings = TrainSettings(size="micro", class_conditional=True, key_conditional=True, batch_size=4, max_steps=3,
                             warmup_steps=1, save_every=2, lr=1e-3)
    train(keyed_data / "data", folder, settings, log=lambda m: None)
    return folder


def test_a_key_conditioned_model_saves_one_label_per_genre_and_key(keyed_model):
    model = load_model(keyed_model, "cpu")
    assert model.is_key_conditional and model.key_names == [*KEY_CODES, ANY_KEY]
    assert model.class_names == ["hiphop", "techno"]
    assert model.unet.config.num_class_embeds == 2 * 25  # diffusers' own UNet2DModel, one table
    assert model.class_label("techno", "8A") == 1 * 25 + KEY_CODES.index("8A")
    assert model.class_label("techno") == 1 * 25 + 24  # no key asked: "any"
    with pytest.raises(CheckpointError, match="no key 'Am'"):  # labels are Camelot codes
        model.class_label("techno", "Am")
    # Trained as a genre vector plus a key vector: every genre moves the same way between two keys.
    table = model.unet.class_embedding.weight.detach().reshape(2, 25, -1)
    between_keys = table[:, KEY_CODES.index("8A")] - table[:, KEY_CODES.index("3B")]
    assert between_keys.abs().max() > 1e-6  # the keys were learnt apart ...
    assert (between_keys[0] - between_keys[1]).abs().max() < 1e-5  # ... alike for both genres


def test_asking_for_a_key_changes_the_loop(keyed_model):
    from livegen.diffusion import generate

    model = load_model(keyed_model, "cpu")
    images = [generate(model, [5], steps=2, class_labels=[model.class_label("techno", key)])
              for key in ("8A", "8A", "2B")]
    assert np.array_equal(images[0].numpy(), images[1].numpy())  # a seed and key make one loop
    assert not np.allclose(images[0].numpy(), images[2].numpy())


def test_key_guidance_pushes_only_the_loops_that_ask_for_a_key(keyed_model):
    import livegen.diffusion.sampling as sampling
    from livegen.diffusion import generate

    model = load_model(keyed_model, "cpu")
    labels = [model.class_label("techno", "8A"), model.class_label("techno")]
    plain = generate(model, [5, 6], steps=2, class_labels=labels)
    model.extra["key_guidance"] = 3.0
    guided = generate(model, [5, 6], steps=2, class_labels=labels)
    assert not np.allclose(guided[0].numpy(), plain[0].numpy())  # asked 8A: moved
    assert np.allclose(guided[1].numpy(), plain[1].numpy(), atol=1e-5)  # asked no key: as it was
    # The prediction is the "any" key's moved 3 times its distance to the asked key's.
    x, tensor_labels = torch.randn(2, *model.sample_shape), torch.tensor(labels)
    asked = sampling._unet(model, x, 500, tensor_labels)
    anykey = sampling._unet(model, x, 500, model.any_key_labels(tensor_labels))
    expected = anykey + 3.0 * (asked - anykey)
    assert torch.allclose(sampling.guided_prediction(model, x, 500, tensor_labels), expected, atol=1e-5)


@pytest.mark.parametrize("value, error", [(0.5, "from 1 to 20"), ("3", "from 1 to 20")])
def test_a_bad_key_guidance_names_livegen_json(keyed_model, tmp_path, value, error):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(keyed_model, copy)
    extra = json.loads((copy / "livegen.json").read_text())
    (copy / "livegen.json").write_text(json.dumps({**extra, "key_guidance": value}))
    with pytest.raises(CheckpointError, match=rf"livegen.json: key_guidance must be a number {error}"):
        load_model(copy, "cpu")


def test_key_conditioning_starts_from_a_genre_model_and_needs_keys_and_genres(keyed_data, tmp_path):
    start = tmp_path / "genres"
    train(keyed_data / "data", start, TrainSettings(size="micro", class_conditional=True, batch_size=4,
                                                    max_steps=1, warmup_steps=1), log=lambda m: None)
    warm = tmp_path / "keys"
    train(keyed_data / "data", warm, TrainSettings(size="micro", class_conditional=True, key_conditional=True,
                                                   batch_size=4, max_steps=1, warmup_steps=1, lr=1e-9,
                                                   init=str(start)), log=lambda m: None)
    genres = load_model(start, "cpu").unet.class_embedding.weight.detach()
    table = load_model(warm, "cpu").unet.class_embedding.weight.detach().reshape(2, 25, -1)
    keys = table - genres[:, None]  # each label: its genre's vector plus its key's
    assert (keys[0] - keys[1]).abs().max() < 1e-4  # one key vector for every genre
    assert keys.norm(dim=-1).min() > 0.5 * genres.norm(dim=-1).mean()  # as large as a genre's: heard at once
    with pytest.raises(ValueError, match="needs --class-conditional"):
        train(keyed_data / "data", tmp_path / "x", TrainSettings(size="micro", key_conditional=True, max_steps=1),
              log=lambda m: None)


def test_hits_count_keys_that_mix_and_no_key_misses():
    from livegen.loops.key import parse_key
    from training.keyeval import score_reads

    reads = [parse_key(k) for k in ("8A", "9A", "8B", "3A")] + [None]
    hit, exact, no_key = score_reads(reads, [parse_key("8A")] * 5)
    assert (hit, exact, no_key) == (0.6, 0.2, 0.2)  # same, a step round the wheel, relative; 3A and none miss


def test_key_eval_asks_each_key_and_scores_the_loops_made_without_one(keyed_data, keyed_model, tmp_path):
    from training.__main__ import main
    from training.keyeval import measure_key_hits

    model = load_model(keyed_model, "cpu")
    report = measure_key_hits(model, keys=["8A", "3B"], loops_per_key=2, steps=2, data_dir=keyed_data / "data")
    assert set(report.genres) == {"hiphop", "techno"}
    for hits in report.genres.values():
        assert hits.loops == 4 and hits.chance_loops == 4  # a grid model's loops are all cut
        assert 0 <= hits.hit <= 1 and 0 <= hits.exact <= hits.hit and 0 <= hits.no_key <= 1
        assert hits.chance_hit <= 1
    assert report.ceiling is not None and report.ceiling.loops >= 1
    assert "| all |" in report.table()
    out = tmp_path / "keys.json"
    assert main(["key-eval", str(keyed_model), "--keys", "8A", "--loops-per-key", "1", "--steps", "2",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["keys"] == ["8A"]
    genre_only = tmp_path / "genres"
    train(keyed_data / "data", genre_only, TrainSettings(size="micro", class_conditional=True, batch_size=4,
                                                         max_steps=1, warmup_steps=1), log=lambda m: None)
    assert main(["key-eval", str(genre_only), "--loops-per-key", "1"]) == 2  # not key-conditioned: said, not run


def test_eval_asks_the_loops_for_its_keys_in_turn(keyed_model, genre_model_dir, tmp_path):
    from training.eval import evaluate
    from training.quality import asked_labels

    model = load_model(keyed_model, "cpu")
    assert asked_labels(model, "techno", 3, ["8A", "3B"]) == [model.class_label("techno", k) for k in ("8A", "3B", "8A")]
    assert asked_labels(model, "techno", 2) == [model.class_label("techno")] * 2  # no keys: "any"
    with pytest.raises(ValueError, match="not key-conditioned"):  # a genre model cannot be asked for keys
        evaluate(genre_model_dir, tmp_path, keys=["8A"])


def _guided_teacher(keyed_model, folder):
    """The micro key model with key guidance 3, sampled in 4 steps."""
    import shutil

    shutil.copytree(keyed_model, folder)
    extra = json.loads((folder / "livegen.json").read_text())
    (folder / "livegen.json").write_text(json.dumps({**extra, "key_guidance": 3.0, "default_steps": 4}))
    return folder


def _distances_to_the_guided_teacher(teacher, student, data_dir):
    """On training windows asked their own key: (the student's one pass, the teacher's unguided pass),
    each as relative L2 to the teacher's guided prediction. (The fixture's held-out file has a key no
    training window has, so the bake's own held-out figure cannot show learning here.)"""
    from livegen.diffusion.sampling import guided_prediction
    from training.bake_guidance import relative_error
    from training.train import key_conditioned_labels

    rows = load_split(data_dir, split="train")
    labels = torch.as_tensor(key_conditioned_labels(rows.labels, rows.keys, teacher.key_names, data_dir))
    clean = torch.from_numpy(rows.images)[:, None].float() / 127.5 - 1.0
    t = torch.tensor([750, 500, 250, 0]).repeat(len(clean))[:len(clean)]
    noisy = teacher.scheduler.add_noise(clean, torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)), t)
    with torch.no_grad():
        guided = guided_prediction(teacher, noisy, t, labels)  # its livegen.json: key_guidance 3
        unguided = teacher.unet(noisy, t, class_labels=labels).sample
        baked = student.unet(noisy, t, class_labels=labels).sample
    return relative_error(baked, guided), relative_error(unguided, guided)


def test_baked_key_guidance_does_in_one_pass_what_guidance_did_in_two(keyed_data, keyed_model, tmp_path):
    from livegen.diffusion import generate
    from training.__main__ import main
    from training.bake_guidance import CONDITIONING, BakeSettings, bake_guidance

    teacher = _guided_teacher(keyed_model, tmp_path / "teacher")
    student_dir = tmp_path / "student"
    settings = BakeSettings(batch_size=8, warmup_steps=1, max_steps=40, heldout=16, save_every=20)  # tune: conditioning
    summary = bake_guidance(teacher, student_dir, keyed_data / "data", settings, log=lambda m: None)
    assert summary["sampler_timesteps"] == [750, 500, 250, 0]  # 4 DDIM steps, "leading"
    assert 0 < summary["heldout_distance"] and 0 < summary["teacher_unguided_distance"]
    model, student = load_model(teacher, "cpu"), load_model(student_dir, "cpu")
    baked, unguided = _distances_to_the_guided_teacher(model, student, keyed_data / "data")
    assert baked < 0.95 * unguided, (baked, unguided)  # 0.70 against 0.78 here (3% of the weights, 40 steps)
    assert student.key_guidance == 1.0 and student.extra["baked_guidance"]["scale"] == 3.0
    assert student.key_names == model.key_names
    # Only where the label and the step enter the UNet was trained.
    before, after = model.unet.state_dict(), student.unet.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(any(part in name for part in CONDITIONING) for name in changed), changed
    assert "class_embedding.weight" in changed

    def rows_through_the_unet(model):
        rows = []
        hook = model.unet.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[0]))
        generate(model, [5], steps=4, class_labels=[model.class_label("techno", "8A")])
        hook.remove()
        return sum(rows)

    assert rows_through_the_unet(model) == 8  # asked and "any", each step
    assert rows_through_the_unet(student) == 4
    # A second run resumes where the first stopped; a genre-only model has no guidance to bake.
    resumed = bake_guidance(teacher, student_dir, keyed_data / "data", BakeSettings(**{**settings.__dict__,
                                                                                       "max_steps": 41}),
                            log=lambda m: None)
    assert resumed["steps"] == 41
    assert main(["bake-guidance", str(teacher), str(tmp_path / "x"), str(keyed_data / "data"), "--scale", "1"]) == 2
    genre_only = tmp_path / "genres"
    train(keyed_data / "data", genre_only, TrainSettings(size="micro", class_conditional=True, batch_size=4,
                                                         max_steps=1, warmup_steps=1), log=lambda m: None)
    with pytest.raises(ValueError, match="genres.*not a key-conditioned model"):
        bake_guidance(genre_only, tmp_path / "y", keyed_data / "data", settings, log=lambda m: None)


def test_baking_every_weight(keyed_data, keyed_model, tmp_path):
    from training.bake_guidance import BakeSettings, bake_guidance

    teacher = _guided_teacher(keyed_model, tmp_path / "teacher")
    settings = BakeSettings(batch_size=8, warmup_steps=1, max_steps=40, heldout=16, save_every=40, tune="all")
    bake_guidance(teacher, tmp_path / "student", keyed_data / "data", settings, log=lambda m: None)
    model, student = load_model(teacher, "cpu"), load_model(tmp_path / "student", "cpu")
    baked, unguided = _distances_to_the_guided_teacher(model, student, keyed_data / "data")
    assert baked < 0.85 * unguided, (baked, unguided)  # 0.61 against 0.78 here
    before, after = model.unet.state_dict(), student.unet.state_dict()
    assert not torch.equal(before["conv_in.weight"], after["conv_in.weight"])
