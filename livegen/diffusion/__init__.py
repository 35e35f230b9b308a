"""Checkpoints and samplers: the diffusion half of the data flow."""

from .checkpoint import CheckpointError, LoopModel, load_model, resolve_device
from .sampling import (SAMPLERS, Keep, SamplingError, canvas_width, continuation_input, decode_images, denoise,
                       encode_images, generate, invert, keep_columns, morph, slerp)

__all__ = [
    "CheckpointError", "LoopModel", "load_model", "resolve_device", "SAMPLERS", "Keep", "SamplingError",
    "canvas_width", "continuation_input", "decode_images", "denoise", "encode_images", "generate", "invert",
    "keep_columns", "morph", "slerp",
]
