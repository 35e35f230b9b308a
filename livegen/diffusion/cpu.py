"""Inference speed on the CPU: the allocator, and NNPACK's Winograd convolutions.

Measured on 2 AVX2 cores (no AVX-512), fp32.

Allocator: a UNet pass frees and allocates activations of up to 32 MiB (128
channels at 256x256). glibc's malloc maps blocks that big fresh from the kernel
and unmaps them when freed, so every one is page-faulted and zeroed again:
500k page faults and 2 s of kernel time per pass of the published-size UNet,
0.14 s per batch of 8 of the shipped lite one. ``keep_freed_memory`` has malloc
keep them for reuse (the process then holds on to its peak memory).

Convolutions: a 3x3 convolution of 128 channels at 256x256 takes oneDNN 0.17 s
in channels_last and 0.34 s in NCHW, NNPACK's Winograd kernel 0.08 s. Below
128 channels or 64x64 pixels oneDNN is as fast or faster, and NNPACK's batched
path is slower than calling it per image. NNPACK takes only NCHW, and
converting to and from channels_last around each layer costs more than it
gains, so a model whose wide layers do most of its work runs in NCHW
throughout (the published-size UNet: 33 of its 96 convolutions). Other models
(the shipped lite ones) keep channels_last, 10-25% faster for them.

Inference only: with gradients enabled, off the CPU, in another dtype than
fp32 (autocast included) or under torch.compile (the NNPACK op has no meta
kernel to trace) a swapped layer is an ordinary ``Conv2d``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

MIN_CHANNELS = 128  # in and out
MIN_PIXELS = 64 * 64
MIN_SHARE = 0.5  # of the UNet's convolution work (multiply-adds) in such layers


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_kept = None


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve big blocks from its heap and keep them when freed (see above).

    Process-wide and idempotent; False where the C library is not glibc, or where the environment
    sets LIVEGEN_KEEP_FREED_MEMORY=0 (memory over speed, and the bench's baseline)."""
    global _kept
    if _kept is None:
        if os.environ.get("LIVEGEN_KEEP_FREED_MEMORY", "1") == "0":
            _kept = False
            return _kept
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
            _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
        except (OSError, AttributeError, TypeError):  # no libc found, or one without mallopt
            _kept = False
    return _kept


class WinogradConv2d(torch.nn.Conv2d):
    """A 3x3, stride 1, padding 1 ``Conv2d`` that runs through NNPACK in inference on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
                or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()):
            return super().forward(x)
        x = x.contiguous()
        # Image by image: NNPACK's batched (training) algorithm is 2-4x slower per image here,
        # and this way a loop does not depend on the batch it was drawn in.
        outputs = [torch._nnpack_spatial_convolution(x[i:i + 1], self.weight, self.bias, [1, 1])
                   for i in range(x.shape[0])]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def _is_plain_3x3(conv: torch.nn.Module) -> bool:
    return (type(conv) is torch.nn.Conv2d and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == "zeros")


def conv_input_shapes(unet: torch.nn.Module, sample_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Each Conv2d's input shape (C, H, W) for a UNet input of ``sample_shape`` (C, H, W), by module name.

    Traced on the meta device: a copy of the network with no storage, so it costs no compute."""
    shapes = {}

    def record(name):
        def hook(module, inputs, output):
            shapes[name] = tuple(inputs[0].shape[1:])
        return hook

    with torch.device("meta"):
        probe = type(unet).from_config(unet.config)
        hooks = [module.register_forward_hook(record(name))
                 for name, module in probe.named_modules() if isinstance(module, torch.nn.Conv2d)]
        labels = torch.zeros(1, dtype=torch.long) if unet.config.num_class_embeds else None
        with torch.no_grad():
            probe(torch.zeros(1, *sample_shape), torch.zeros(1, dtype=torch.long), class_labels=labels)
        for hook in hooks:
            hook.remove()
    return shapes


def use_winograd(unet: torch.nn.Module, sample_shape: tuple[int, int, int], enabled: bool = True) -> int:
    """Swap the UNet's wide 3x3 convolutions (see the module's docstring) for ``WinogradConv2d``.

    ``sample_shape``: the UNet's input (C, H, W), as ``LoopModel.sample_shape``.
    Only where they do most of the UNet's convolution work (``MIN_SHARE``): otherwise the rest
    loses more to NCHW than they gain. Returns how many were swapped: 0 where NNPACK is missing
    or the UNet has too few such layers. The weights keep their values (made contiguous), so
    saving the model is unaffected. ``enabled=False`` swaps any back to plain ``Conv2d``."""
    for module in unet.modules():
        if type(module) is WinogradConv2d:
            module.__class__ = torch.nn.Conv2d
    if not enabled or not torch.backends.nnpack.is_available():  # the call also initialises NNPACK
        return 0
    try:
        shapes = conv_input_shapes(unet, sample_shape)
    except Exception:  # a network the meta trace cannot run: it only loses the speed-up
        return 0
    modules = dict(unet.named_modules())
    work, wide = {}, []
    for name, (channels, height, width) in shapes.items():
        conv = modules[name]
        work[name] = conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] * height * width
        if (_is_plain_3x3(conv) and min(conv.in_channels, conv.out_channels) >= MIN_CHANNELS
                and height * width >= MIN_PIXELS):
            wide.append(name)
    if sum(work[name] for name in wide) < MIN_SHARE * sum(work.values()):
        return 0
    for name in wide:
        modules[name].__class__ = WinogradConv2d
        modules[name].weight.data = modules[name].weight.data.contiguous()
    return len(wide)
