import pytest
import torch

from livegen.diffusion import generate, load_model
from livegen.diffusion.sampling import alphas_cumprod_of, initial_noise, seed_generators
from training.distill import DistillSettings, distill, schedule_timesteps, unrolled_ddim


def quiet(_message):
    pass


@pytest.fixture(scope="module")
def student(genre_model_dir, tmp_path_factory):
    """A micro class-conditional model distilled for a dozen steps (1- and 2-step student)."""
    folder = tmp_path_factory.mktemp("distill") / "student"
    settings = DistillSettings(teacher_steps=4, student_steps=(1, 2), pairs=32, heldout=8, batch_size=8,
                               teacher_batch=16, lr=1e-3, warmup_steps=1, max_steps=12, save_every=6, device="cpu")
    summary = distill(genre_model_dir, folder, settings, log=quiet)
    return folder, settings, summary


def test_student_is_a_few_step_model_in_the_usual_layout(student, genre_model_dir):
    folder, settings, summary = student
    model = load_model(folder, "cpu")
    teacher = load_model(genre_model_dir, "cpu")
    assert model.class_names == teacher.class_names
    assert model.scheduler.config.prediction_type == "v_prediction"
    assert model.scheduler.config.timestep_spacing == "trailing"
    assert model.extra["default_steps"] == 1 and model.extra["distilled"]["steps"] == 12
    assert set(model.extra["distilled"]["heldout_distance_to_teacher"]) == {"1", "2"}
    # The sampler reaches t = 999 in one step (not t = 0, where "leading" spacing would put it).
    assert schedule_timesteps(model.scheduler, 1) == [999]
    assert schedule_timesteps(model.scheduler, 2) == [999, 499]


@pytest.mark.parametrize("steps", [1, 2])
def test_the_sampler_runs_the_chain_the_student_was_trained_on(student, steps):
    """livegen's DDIM sampler (diffusers' scheduler) and the training unroll give the same loop."""
    model = load_model(student[0], "cpu", "fp32")
    seeds, labels = [3, 4], [0, 2]
    sampled = generate(model, seeds, steps=steps, class_labels=labels)
    noise = initial_noise(model, seed_generators(seeds))
    with torch.no_grad():
        unrolled = unrolled_ddim(model.unet, noise, torch.tensor(labels), schedule_timesteps(model.scheduler, steps),
                                 alphas_cumprod_of(model)).clamp(-1, 1)
    torch.testing.assert_close(sampled, unrolled, rtol=0, atol=1e-5)


def test_training_moves_the_student_toward_the_teacher(student, genre_model_dir, tmp_path):
    """Held-out distance to the teacher's loops after 12 steps is below the untrained student's (0 steps)."""
    _, settings, trained = student
    untrained = distill(genre_model_dir, tmp_path / "untrained",
                        DistillSettings(**{**settings.__dict__, "max_steps": 0}), log=quiet)
    for k in (1, 2):
        assert trained["heldout_distance_to_teacher"][k] < 0.9 * untrained["heldout_distance_to_teacher"][k]


def test_a_new_run_resumes_from_the_saved_state(student, genre_model_dir):
    folder, settings, _ = student
    messages = []
    summary = distill(genre_model_dir, folder, DistillSettings(**{**settings.__dict__, "max_steps": 14}),
                      log=messages.append)
    assert any("resumed" in m and "step 12" in m for m in messages)
    assert summary["steps"] == 14


def test_a_teacher_that_is_not_epsilon_prediction_is_refused(student):
    with pytest.raises(ValueError, match="must be an epsilon-prediction model"):
        distill(student[0], student[0].parent / "again", DistillSettings(max_steps=1, device="cpu"), log=quiet)


def test_texture_term_penalises_smoothing_not_displacement():
    """The texture term asks for the teacher's amount of change, wherever it happens."""
    from training.distill import texture_loss

    generator = torch.Generator().manual_seed(0)
    teacher = torch.rand((2, 1, 16, 64), generator=generator) * 2 - 1
    displaced = torch.roll(teacher, shifts=7, dims=-1)  # same transients, other places
    smoothed = torch.nn.functional.avg_pool2d(teacher, (1, 5), stride=1, padding=(0, 2), count_include_pad=False)
    assert texture_loss(displaced, teacher) < 0.05 * texture_loss(smoothed, teacher)
    assert torch.nn.functional.mse_loss(displaced, teacher) > torch.nn.functional.mse_loss(smoothed, teacher)
