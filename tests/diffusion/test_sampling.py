import types

import numpy as np
import pytest
import torch

from livegen.diffusion import (Keep, SamplingError, continuation_input, decode_images, encode_images, generate,
                               invert, keep_columns, load_model, morph, slerp)
from livegen.diffusion.sampling import MAX_CANVAS, alphas_cumprod_of, canvas_width, make_scheduler, width_multiple


def test_ddim_is_reproducible_per_seed(tiny_model):
    a = generate(tiny_model, [11, 12], steps=8)
    b = generate(tiny_model, [11, 12], steps=8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a[0] - a[1]).abs().mean() > 0.05  # different seeds, different loops


@pytest.mark.parametrize("sampler, eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0), ("dpm++", 0.0)])
def test_batch_equals_seeds_one_by_one(tiny_model, sampler, eta):
    seeds = [3, 4, 5]
    batch = generate(tiny_model, seeds, steps=6, sampler=sampler, eta=eta, batch_size=3)
    single = torch.cat([generate(tiny_model, [s], steps=6, sampler=sampler, eta=eta) for s in seeds])
    scale = single.abs().max()
    torch.testing.assert_close(batch / scale, single / scale, rtol=0, atol=1e-4)


def test_stochastic_samplers_depend_on_step_noise(tiny_model):
    """eta > 0 draws fresh noise every step: same seed same result, but not the eta=0 result."""
    stochastic = generate(tiny_model, [9], steps=6, eta=1.0)
    torch.testing.assert_close(stochastic, generate(tiny_model, [9], steps=6, eta=1.0), rtol=0, atol=0)
    assert (stochastic - generate(tiny_model, [9], steps=6, eta=0.0)).abs().mean() > 1e-3


def test_dpm_starts_few_steps_at_the_last_training_timestep(tiny_model):
    """The model's own spacing ("leading", as teticio's) would start 4 DPM++ steps at t=750 of 999;
    DDIM keeps the model's spacing, as diffusers' pipeline runs it."""
    assert tiny_model.scheduler.config.timestep_spacing == "leading"
    last = tiny_model.scheduler.config.num_train_timesteps - 1
    assert int(make_scheduler(tiny_model, "dpm++", 4).timesteps[0]) == last
    assert int(make_scheduler(tiny_model, "ddim", 4).timesteps[0]) < last - 200


def test_unknown_sampler_and_bad_steps(tiny_model):
    with pytest.raises(SamplingError, match="unknown sampler 'euler'"):
        generate(tiny_model, [1], steps=5, sampler="euler")
    with pytest.raises(SamplingError, match="steps must be"):
        generate(tiny_model, [1], steps=0)


def test_continuation_keeps_the_overlap(tiny_model):
    """Outpainting: the new loop starts with the end of the old one; the rest is new."""
    previous = generate(tiny_model, [21], steps=8)
    start, columns = continuation_input(tiny_model, previous, overlap_seconds=0.3)
    overlap = int(columns.sum())
    assert 0 < overlap < columns.numel() and columns[:overlap].all() and not columns[overlap:].any()
    following = generate(tiny_model, [22], steps=8, keep=Keep(start, columns))
    torch.testing.assert_close(following[..., :overlap], previous[..., -overlap:])
    free = generate(tiny_model, [22], steps=8)
    assert (following[..., overlap:] - free[..., overlap:]).abs().mean() > 1e-3  # the kept part shaped the rest
    # and it survives the trip to uint8 spectrograms
    old_image, new_image = decode_images(tiny_model, previous), decode_images(tiny_model, following)
    assert np.abs(new_image[..., :overlap].astype(int) - old_image[..., -overlap:]).max() <= 1


def test_inpainting_keeps_both_ends(tiny_model):
    source = generate(tiny_model, [31], steps=8)
    columns = keep_columns(tiny_model, start_seconds=0.1, end_seconds=0.2)
    assert columns[0] and columns[-1] and not columns[columns.numel() // 2]
    filled = generate(tiny_model, [32], steps=8, keep=Keep(source, columns))
    torch.testing.assert_close(filled[..., columns], source[..., columns])
    with pytest.raises(SamplingError, match="longer than"):
        keep_columns(tiny_model, start_seconds=0.5, end_seconds=0.5)


def test_variation_strength(tiny_model):
    source = generate(tiny_model, [41], steps=10)
    unchanged = generate(tiny_model, [42], steps=10, start=source, strength=0.0)
    torch.testing.assert_close(unchanged, source)
    light = generate(tiny_model, [42], steps=10, start=source, strength=0.3)
    heavy = generate(tiny_model, [42], steps=10, start=source, strength=0.9)
    assert (light - source).norm() < (heavy - source).norm()


def test_slerp_endpoints_and_norm():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn((2, 1, 64, 64), generator=generator), torch.randn((2, 1, 64, 64), generator=generator)
    torch.testing.assert_close(slerp(a, b, 0.0), a, rtol=0, atol=0)
    torch.testing.assert_close(slerp(a, b, 1.0), b, rtol=0, atol=0)
    torch.testing.assert_close(slerp(a, b, 1e-7), a, atol=1e-5, rtol=0)
    middle = slerp(a, b, 0.5)
    # Gaussian noise keeps its norm along the arc (a straight line would shrink it by ~1/sqrt(2)).
    ratio = middle.flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)
    assert ((ratio - 1).abs() < 0.1).all()
    torch.testing.assert_close(slerp(a, a, 0.5), a)  # parallel inputs do not divide by zero


def test_morph_between_two_seeds(tiny_model):
    from livegen.diffusion.sampling import initial_noise, seed_generators

    noise = initial_noise(tiny_model, seed_generators([1, 2]))
    ends = generate(tiny_model, [1, 2], steps=6)
    start = generate(tiny_model, [0], steps=6, noise=slerp(noise[:1], noise[1:], 0.0))
    end = generate(tiny_model, [0], steps=6, noise=slerp(noise[:1], noise[1:], 1.0))
    torch.testing.assert_close(start, ends[:1], rtol=0, atol=1e-4)  # batched vs single: float noise only
    torch.testing.assert_close(end, ends[1:], rtol=0, atol=1e-4)


def test_class_labels_change_the_loop(genre_model_dir):
    model = load_model(genre_model_dir, "cpu")
    techno = generate(model, [5], steps=5, class_labels=[0])
    breaks = generate(model, [5], steps=5, class_labels=[2])
    assert (techno - breaks).abs().mean() > 1e-4


def test_images_round_trip_through_model_space(tiny_model):
    images = decode_images(tiny_model, generate(tiny_model, [1, 2], steps=4))
    assert images.dtype == np.uint8 and images.shape == (2, 32, 64)
    np.testing.assert_array_equal(decode_images(tiny_model, encode_images(tiny_model, images)), images)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_inversion_recovers_the_noise(tiny_model, prediction):
    """Inversion -> sampling returns the loop, when the denoiser is exact.

    An untrained UNet's noise prediction is not the score of any data, so it
    cannot test the inversion; the exact denoiser for Gaussian data with
    variance s2 can, and the inversion code runs unchanged on it. Distilled
    students predict v instead of the noise: the same denoiser, restated.
    """
    model = tiny_model
    model.scheduler.register_to_config(clip_sample=False, prediction_type=prediction)
    alphas = alphas_cumprod_of(model)
    s2 = 0.25

    class GaussianDenoiser(torch.nn.Module):
        config = model.unet.config

        def forward(self, x, t, class_labels=None):
            a = alphas[t].view(-1, 1, 1, 1)
            eps = (1 - a).sqrt() * x / (a * s2 + 1 - a)
            if prediction == "v_prediction":
                x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
                return types.SimpleNamespace(sample=a.sqrt() * eps - (1 - a).sqrt() * x0)
            return types.SimpleNamespace(sample=eps)

    model.unet = GaussianDenoiser()
    x0 = torch.randn((2, *model.sample_shape), generator=torch.Generator().manual_seed(0)) * s2 ** 0.5
    errors = []
    for steps in (10, 50):
        noise = invert(model, x0, steps=steps)
        assert 0.8 < noise.std() < 1.2  # it is noise again
        rebuilt = generate(model, [0, 1], steps=steps, noise=noise)
        errors.append(((rebuilt - x0).norm() / x0.norm()).item())
    assert errors[1] < 0.15 and errors[1] < errors[0]
    # A morph between two loops starts and ends on them.
    a, b = x0[:1], x0[1:]
    noise_a, noise_b = invert(model, a, steps=50), invert(model, b, steps=50)
    for alpha, target in ((0.0, a), (1.0, b)):
        got, noise = morph(model, noise_a, noise_b, alpha, steps=50)
        assert ((got - target).norm() / target.norm()).item() < 0.15
        assert torch.equal(generate(model, [7], steps=50, noise=noise), got)  # its noise makes it again
    halfway, _ = morph(model, noise_a, noise_b, 0.5, steps=50)
    assert (halfway - a).norm() > 0.3 * a.norm() and (halfway - b).norm() > 0.3 * b.norm()


def test_compiled_unet_serves_every_batch_size_from_one_graph(genre_model_dir):
    # The "eager" backend traces with dynamo as inductor would, without its minute-long first build here.
    import torch._dynamo

    model = load_model(genre_model_dir, "cpu", "fp32")  # bf16 rounding differs with the batch (see tiny_model)
    seeds, labels = [1, 2, 3], [0, 2, 1]
    eager = generate(model, seeds, steps=3, class_labels=labels)
    torch._dynamo.reset()
    model.compile(2, backend="eager")
    # 3 loops at a traced batch of 2: one full chunk, one padded; then a single loop, padded.
    compiled = generate(model, seeds, steps=3, class_labels=labels)
    single = generate(model, [2], steps=3, class_labels=[2])
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4)
    torch.testing.assert_close(single, eager[1:2], rtol=0, atol=1e-4)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # nothing recompiled
    with pytest.raises(ValueError, match="batch"):
        model.compile(0)
    model.to("cpu")  # a move drops the compiled UNet: it was traced for the old device and layout
    assert model.compiled_unet is None


def test_canvas_width_holds_the_seconds_asked_for(tiny_model):
    # The micro model: 64 columns of hop 256 at 22050 Hz (0.74 s); its UNet takes multiples of 2.
    native = tiny_model.sample_shape[2]
    assert native == 64 and width_multiple(tiny_model) == 2
    assert canvas_width(tiny_model, None) == canvas_width(tiny_model, 0.5) == native
    width = canvas_width(tiny_model, 1.0)
    assert width % 2 == 0 and (width - 1) * 256 / 22050 >= 1.0 > (width - 3) * 256 / 22050  # the narrowest
    assert canvas_width(tiny_model, 10.0) == MAX_CANVAS * native


def test_a_wide_canvas_and_what_works_from_it(tiny_model):
    wide = generate(tiny_model, [51], steps=4, width=88)
    assert wide.shape == (1, 1, 32, 88)
    # A variation, a continuation and an inversion of it keep its width without being told.
    varied = generate(tiny_model, [52], steps=4, start=wide, strength=0.5)
    start, columns = continuation_input(tiny_model, wide, overlap_seconds=0.3)
    overlap = int(columns.sum())
    assert columns.numel() == 88 and overlap == int(0.3 * 22050 / 256)
    following = generate(tiny_model, [53], steps=4, keep=Keep(start, columns))
    torch.testing.assert_close(following[..., :overlap], wide[..., -overlap:])
    assert varied.shape == following.shape == invert(tiny_model, wide, steps=4).shape == wide.shape
    assert decode_images(tiny_model, wide).shape == (1, 32, 88)


def test_a_model_that_caps_the_noise_mean_starts_no_loop_from_a_brighter_draw(tiny_model_dir, tmp_path):
    """``starting_noise_mean: at_most_zero`` (livegen.json): a draw with a positive mean loses it, one with a
    negative mean is left as it is, and a seed's draw is the same in any batch."""
    import json
    import shutil

    from livegen.diffusion.sampling import initial_noise, seed_generators

    capped_dir = tmp_path / "capped"
    shutil.copytree(tiny_model_dir, capped_dir)
    extra = capped_dir / "livegen.json"
    settings = json.loads(extra.read_text()) if extra.exists() else {}
    extra.write_text(json.dumps({**settings, "starting_noise_mean": "at_most_zero"}))
    plain, capped = load_model(tiny_model_dir, "cpu", "fp32"), load_model(capped_dir, "cpu", "fp32")
    assert capped.caps_noise_mean and not plain.caps_noise_mean

    seeds = list(range(40))
    drawn, kept = initial_noise(plain, seed_generators(seeds)), initial_noise(capped, seed_generators(seeds))
    means = drawn.mean(dim=(1, 2, 3))
    assert (means > 0).any() and (means < 0).any()
    assert (kept.mean(dim=(1, 2, 3)) <= 1e-7).all()
    torch.testing.assert_close(kept[means < 0], drawn[means < 0])
    torch.testing.assert_close(kept[means > 0], drawn[means > 0] - means[means > 0, None, None, None])
    alone = initial_noise(capped, seed_generators(seeds[7:8]))
    torch.testing.assert_close(alone, kept[7:8])
