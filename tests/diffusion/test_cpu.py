"""CPU inference speed: NNPACK's Winograd convolutions (same results as oneDNN's, chosen only where
they pay) and the allocator keeping freed memory."""

import os
import subprocess
import sys

import pytest
import torch

from livegen.audio.mel import MelConfig
from livegen.diffusion import generate, load_model
from livegen.diffusion.architectures import Architecture, new_model
from livegen.diffusion.cpu import WinogradConv2d, conv_input_shapes, use_winograd

needs_nnpack = pytest.mark.skipif(not torch.backends.nnpack.is_available(), reason="this torch build has no NNPACK")

# Two levels of 128 channels at 64x64 and 32x32: most of its convolution work is wide layers.
WIDE = Architecture(MelConfig(x_res=64, y_res=64), (128, 128), norm_num_groups=32)


def wide_conv(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Conv2d(128, 128, 3, padding=1)


@needs_nnpack
def test_a_winograd_layer_computes_the_same_convolution_image_by_image():
    conv = wide_conv()
    x = torch.randn(3, 128, 64, 64)
    with torch.no_grad():
        expected = conv(x)
        conv.__class__ = WinogradConv2d
        batch = conv(x)
        single = torch.cat([conv(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, expected, rtol=0, atol=1e-4 * expected.abs().max().item())
    assert not torch.equal(batch, expected)  # it did run NNPACK, not oneDNN
    assert torch.equal(batch, single)  # a result does not depend on the batch it is in


@needs_nnpack
def test_with_gradients_it_is_the_ordinary_convolution():
    conv = wide_conv()
    x = torch.randn(1, 128, 64, 64, requires_grad=True)
    expected = conv(x)
    conv.__class__ = WinogradConv2d
    got = conv(x)
    assert torch.equal(got, expected)
    got.sum().backward()  # training through a swapped layer works
    assert x.grad is not None and conv.weight.grad is not None


@needs_nnpack
def test_conv_input_shapes_are_traced_without_compute():
    model = new_model(WIDE, class_names=["a", "b"])
    shapes = conv_input_shapes(model.unet, model.sample_shape)
    assert shapes["conv_in"] == (1, 64, 64)
    assert shapes["down_blocks.0.resnets.0.conv1"] == (128, 64, 64)
    assert shapes["down_blocks.1.resnets.0.conv1"] == (128, 32, 32)
    assert all(p.device.type == "cpu" for p in model.unet.parameters())  # the model itself is untouched


@needs_nnpack
def test_wide_models_switch_to_winograd_in_nchw_and_sample_the_same_loops(tmp_path):
    new_model(WIDE).save(tmp_path / "wide")
    fast = load_model(tmp_path / "wide", "cpu", "fp32")
    plain = load_model(tmp_path / "wide", "cpu", "fp32", winograd=False)
    swapped = [name for name, m in fast.unet.named_modules() if type(m) is WinogradConv2d]
    assert fast.winograd_layers == len(swapped) > 0 and plain.winograd_layers == 0
    shapes = conv_input_shapes(fast.unet, fast.sample_shape)
    assert all(shapes[name][1] * shapes[name][2] >= 64 * 64 for name in swapped)  # only layers at 64x64 and above
    assert fast.memory_format == torch.contiguous_format and plain.memory_format == torch.channels_last
    for (name, a), (_, b) in zip(fast.unet.state_dict().items(), plain.unet.state_dict().items()):
        assert torch.equal(a, b), name  # same weights, so saving is unaffected

    seeds = [5, 6]
    ours, theirs = generate(fast, seeds, steps=3), generate(plain, seeds, steps=3)
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-4
    one_by_one = torch.cat([generate(fast, [s], steps=3) for s in seeds])
    # Winograd's transforms round differently at another batch size: one value in 8192 came out 1.03e-4
    # apart here (2026-12-03, both cores busy with training), past test_sampling's 1e-4.
    torch.testing.assert_close(ours, one_by_one, rtol=0, atol=2e-4)

    fast.to("cpu", "fp32", winograd=False)  # and back: every layer is a plain Conv2d again
    assert fast.winograd_layers == 0 and not any(type(m) is WinogradConv2d for m in fast.unet.modules())


@needs_nnpack
@pytest.mark.parametrize("size", ["micro", "lite", "tiny", "small"])
def test_narrow_models_keep_onednn_in_channels_last(size):
    """Their few wide layers do too little of the work to pay for NCHW in all the others."""
    model = new_model(size)
    assert use_winograd(model.unet, model.sample_shape) == 0
    model.to("cpu", "fp32")
    assert model.winograd_layers == 0 and model.memory_format == torch.channels_last


FAULTS = """
import resource, sys, torch
from livegen.diffusion.cpu import keep_freed_memory
print(keep_freed_memory(), file=sys.stderr)
for _ in range(10):  # 40 MiB, above glibc's largest mmap threshold; kept, the heap settles within a few
    torch.empty(10 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(10 << 20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(keep: str) -> int:
    env = {**os.environ, "LIVEGEN_KEEP_FREED_MEMORY": keep}
    done = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == ("True" if keep == "1" else "False")
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_kept_memory_is_reused_without_page_faults():
    """40 MiB tensors one after another: glibc maps and faults in each; kept, the heap's are reused."""
    plain, kept = page_faults("0"), page_faults("1")
    assert plain > 10 * 5000  # about 10240 faults of 4 KiB pages per tensor
    assert kept < plain / 20
