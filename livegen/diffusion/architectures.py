"""Named UNet sizes, and fresh (untrained) models built from them.

Used by training, by the bench (speed does not depend on the weights) and by
the tests, which build tiny models and save them in the real format.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..audio.mel import MelConfig
from .checkpoint import LoopModel


@dataclass(frozen=True)
class Architecture:
    mel: MelConfig
    block_out_channels: tuple[int, ...]
    attention_levels: tuple[int, ...] = ()  # indices into block_out_channels that get self-attention
    layers_per_block: int = 1
    norm_num_groups: int = 32

    def unet_config(self, num_class_embeds: int | None = None) -> dict:
        levels = range(len(self.block_out_channels))
        return dict(
            sample_size=(self.mel.y_res, self.mel.x_res),
            in_channels=1,
            out_channels=1,
            layers_per_block=self.layers_per_block,
            block_out_channels=self.block_out_channels,
            down_block_types=tuple("AttnDownBlock2D" if i in self.attention_levels else "DownBlock2D" for i in levels),
            up_block_types=tuple("AttnUpBlock2D" if i in self.attention_levels else "UpBlock2D"
                                 for i in reversed(levels)),
            norm_num_groups=self.norm_num_groups,
            num_class_embeds=num_class_embeds,
        )


ARCHITECTURES = {
    # 0.74 s slices of 32 bands: for tests and smoke runs of the whole chain, not for music.
    "micro": Architecture(MelConfig(x_res=64, y_res=32, n_fft=512, hop_length=256), (16, 32), norm_num_groups=8),
    # 2.5M parameters, 64 mel bands, narrow first level: a training step 6x cheaper than "tiny"
    # on a 2-core CPU (3 s vs 19 s at batch 16, measured here). The shipped CPU-trained models.
    "lite": Architecture(MelConfig(x_res=256, y_res=64), (16, 32, 64, 128), norm_num_groups=8),
    # "lite" on the semitone scale (audio/bands.py): its 64 rows keep a loop's key, for key-conditioned models.
    "lite-keys": Architecture(MelConfig(x_res=256, y_res=64, frequency_scale="semitone"), (16, 32, 64, 128),
                              norm_num_groups=8),
    # 2.5M parameters, 64 mel bands (DESIGN.md's measured tiny config).
    "tiny": Architecture(MelConfig(x_res=256, y_res=64), (32, 64, 128)),
    # 10.7M parameters, 128 mel bands (DESIGN.md's measured config).
    "small": Architecture(MelConfig(x_res=256, y_res=128), (32, 64, 128, 256), attention_levels=(3,)),
    # 113.7M parameters: teticio/audio-diffusion-256's UNet.
    "teticio": Architecture(MelConfig(x_res=256, y_res=256), (128, 128, 256, 256, 512, 512),
                            attention_levels=(4,), layers_per_block=2),
}


def new_model(architecture: str | Architecture, *, class_names: list[str] | None = None,
              key_names: list[str] | None = None, scheduler: str = "DDPMScheduler", seed: int = 0,
              num_train_timesteps: int = 1000) -> LoopModel:
    """A randomly initialised model (deterministic per ``seed``) on the CPU, fp32. With ``key_names``
    (Camelot codes and "any") it is key-conditioned: a class label for each genre and key."""
    import diffusers
    import torch
    from diffusers import UNet2DModel

    arch = ARCHITECTURES[architecture] if isinstance(architecture, str) else architecture
    torch.manual_seed(seed)
    if key_names and not class_names:
        raise ValueError("a key-conditioned model needs genre names too (one label a genre and key)")
    labels = len(class_names) * max(1, len(key_names or [])) if class_names else None
    unet = UNet2DModel(**arch.unet_config(labels))
    sched = getattr(diffusers, scheduler)(num_train_timesteps=num_train_timesteps)
    return LoopModel(unet=unet.eval(), scheduler=sched, mel=arch.mel, class_names=list(class_names or []),
                     key_names=list(key_names or []))


def parameter_count(model: LoopModel) -> int:
    return sum(p.numel() for p in model.unet.parameters())
