"""Spectrogram codec: audio <-> mel images, and the torch Griffin-Lim inverter."""

from .mel import CodecError, MelCodec, MelConfig, peak_normalise

__all__ = ["CodecError", "MelCodec", "MelConfig", "peak_normalise"]
