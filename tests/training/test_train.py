import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from livegen.diffusion import load_model
from livegen.diffusion.architectures import ARCHITECTURES
from tests.synth import drum_pattern
from training.prepare import prepare
from training.train import TrainSettings, state_digest, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    for genre, bpm in (("techno", 128), ("hiphop", 90)):
        (root / "audio" / genre).mkdir(parents=True)
        for i in range(3):
            soundfile.write(root / "audio" / genre / f"{i}.wav", drum_pattern(bpm, 3.0, seed=i), 22050)
    prepare(root / "audio", root / "data", ARCHITECTURES["micro"].mel, log=lambda m: None)
    return root / "data"


def test_train_saves_a_loadable_model_and_resumes(data_dir, tmp_path):
    settings = TrainSettings(size="micro", class_conditional=True, batch_size=4, max_steps=4, warmup_steps=1,
                             save_every=2, sample_every=4, sample_steps=3)
    summary = train(data_dir, tmp_path / "model", settings, log=lambda m: None)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    model = load_model(tmp_path / "model", "cpu")
    assert model.class_names == ["hiphop", "techno"] and model.extra["training"]["steps"] == 4
    assert len(list((tmp_path / "model" / "samples" / "step-000004").glob("*.wav"))) == 2
    # a second run with a higher step limit continues from step 4, not from scratch
    resumed = train(data_dir, tmp_path / "model", TrainSettings(**{**settings.__dict__, "max_steps": 6}),
                    log=lambda m: None)
    assert resumed["steps"] == 6
    assert sorted(p.name for p in (tmp_path / "model" / "checkpoints").glob("step-*")) == ["step-4", "step-6"]
    retrained = load_model(tmp_path / "model", "cpu")
    assert state_digest(retrained.unet) != state_digest(model.unet)


@pytest.mark.slow
def test_training_lowers_the_loss(data_dir, tmp_path):
    settings = TrainSettings(size="micro", batch_size=8, max_steps=60, warmup_steps=5, lr=1e-3, save_every=1000)
    summary = train(data_dir, tmp_path / "m", settings, log=lambda m: None)
    assert summary["final_loss"] < 0.5  # untrained noise prediction starts near 1


@pytest.mark.slow
def test_two_process_data_parallel_training_keeps_replicas_identical(data_dir, tmp_path):
    """accelerate launch, 2 CPU processes (gloo): both ranks end with the same weights.

    accelerate's ``--cpu`` launches several processes through MPI only; its
    torch.distributed launcher (``--multi_gpu``) with ACCELERATE_USE_CPU runs
    them on the CPU with gloo.
    """
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate is installed with the train extra"
    command = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training", "train", str(data_dir),
               str(tmp_path / "ddp"), "--size", "micro", "--batch", "2", "--max-steps", "3", "--warmup-steps", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    digests = sorted((tmp_path / "ddp" / "checkpoints" / "step-3").glob("digest-rank*.txt"))
    assert [d.name for d in digests] == ["digest-rank0.txt", "digest-rank1.txt"]
    assert digests[0].read_text() == digests[1].read_text()
    assert load_model(tmp_path / "ddp", "cpu").extra["training"]["processes"] == 2


def test_eval_reports_all_figures(data_dir, tmp_path):
    from training.eval import evaluate

    train(data_dir, tmp_path / "m", TrainSettings(size="micro", batch_size=4, max_steps=2, warmup_steps=1),
          log=lambda m: None)
    report = evaluate(tmp_path / "m", data_dir, count=4, steps=3, fidelity_steps=(2, 5), reference_steps=20,
                      loops_per_genre=2, bpm=120)
    assert np.isfinite([report.frechet_generated, report.frechet_real_halves, report.frechet_untrained]).all()
    assert set(report.fidelity) == {2, 5} and report.fidelity[5] < report.fidelity[2]
    assert "Frechet distance" in report.table() and "transient sharpness" in report.table()


def test_a_model_trained_on_grid_data_declares_its_grid_and_is_evaluated_on_it(tmp_path):
    import json

    from livegen.loops.grid import Grid
    from training.eval import evaluate

    grid = Grid(beats_per_bar=4, bars=1, frames_per_beat=16)  # micro's 64 frames
    root = tmp_path / "audio" / "techno"
    root.mkdir(parents=True)
    for i in range(12):
        soundfile.write(root / f"{i}.wav", drum_pattern(150, 8.0, offset=0.0, seed=i), 22050)  # 5 bars
        (root / f"{i}.json").write_text(json.dumps({"bpm": 150}))
    prepare(tmp_path / "audio", tmp_path / "data", ARCHITECTURES["micro"].mel, grid=grid, log=lambda m: None)
    train(tmp_path / "data", tmp_path / "m", TrainSettings(size="micro", batch_size=4, max_steps=2, warmup_steps=1),
          log=lambda m: None)
    model = load_model(tmp_path / "m", "cpu")
    assert model.grid == grid
    report = evaluate(tmp_path / "m", tmp_path / "data", count=4, steps=2, fidelity_steps=(), loops_per_genre=2,
                      bpm=140)
    quality = report.quality["all"]
    # a grid model's slices all become loops (no beat is looked for), and so do the held-out windows
    assert quality.loops == 2 and quality.dropped == 0
    assert quality.ceiling["steadiness"] > 0.4 and quality.corpus["steadiness"] > 0.4
    with pytest.raises(ValueError, match="grid"):  # a ceiling drawn another way than the model's is refused
        evaluate(tmp_path / "m", data_dir_without_grid(tmp_path), count=4, steps=2, fidelity_steps=(),
                 loops_per_genre=1)


def data_dir_without_grid(tmp_path):
    prepare(tmp_path / "audio", tmp_path / "plain", ARCHITECTURES["micro"].mel, log=lambda m: None)
    return tmp_path / "plain"


def test_min_snr_weighting_leaves_noisy_steps_alone_and_damps_clean_ones():
    import torch
    from diffusers import DDPMScheduler

    from training.train import _noise_loss

    schedule = DDPMScheduler(num_train_timesteps=1000)
    prediction, noise = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)  # squared error 1 everywhere
    t = torch.tensor([999, 5])  # SNR about 4e-5 (weight 1) and about 1000 (weight 5/1000)
    assert _noise_loss(prediction, noise, t, schedule, None).item() == pytest.approx(1.0)
    snr = schedule.alphas_cumprod[5] / (1 - schedule.alphas_cumprod[5])
    assert _noise_loss(prediction, noise, t, schedule, 5.0).item() == pytest.approx((1 + 5 / snr.item()) / 2, rel=1e-5)


def test_noise_offset_gives_each_image_its_own_level_and_leaves_the_pixels_standard():
    import torch

    from training.train import training_noise

    clean = torch.zeros(4000, 1, 16, 64)
    plain = training_noise(clean, 0.0, torch.Generator().manual_seed(0))
    offset = training_noise(clean, 0.1, torch.Generator().manual_seed(0))
    # an image's mean: spread 1/32 in plain noise (1024 pixels), about sqrt(0.1^2 + 1/32^2) with the offset
    assert plain.mean(dim=(1, 2, 3)).std().item() == pytest.approx(1 / 32, rel=0.05)
    assert offset.mean(dim=(1, 2, 3)).std().item() == pytest.approx((0.1 ** 2 + 1 / 32 ** 2) ** 0.5, rel=0.05)
    assert offset[0].std().item() == pytest.approx(1.0, abs=0.06)  # within an image, still unit noise


def test_training_can_start_from_a_saved_model(data_dir, tmp_path):
    start = tmp_path / "start"
    train(data_dir, start, TrainSettings(size="micro", class_conditional=True, batch_size=4, max_steps=2,
                                         warmup_steps=1), log=lambda m: None)
    settings = TrainSettings(size="micro", class_conditional=True, batch_size=4, max_steps=1, warmup_steps=1,
                             lr=1e-9, init=str(start), noise_offset=0.1)
    train(data_dir, tmp_path / "warm", settings, log=lambda m: None)
    source, warm = load_model(start, "cpu"), load_model(tmp_path / "warm", "cpu")
    assert warm.extra["training"]["settings"]["noise_offset"] == 0.1
    for (name, a), b in zip(source.unet.state_dict().items(), warm.unet.state_dict().values()):
        assert torch_allclose(a, b), name  # one step at a vanishing rate: the weights it started from
    unconditional = TrainSettings(size="micro", batch_size=4, max_steps=1, init=str(start))
    with pytest.raises(ValueError, match="labels"):
        train(data_dir, tmp_path / "wrong", unconditional, log=lambda m: None)


def torch_allclose(a, b) -> bool:
    import torch

    return bool(torch.allclose(a.float(), b.float(), atol=1e-5))
