"""Ship a trained key-conditioned grid model: the UNet in fp16 (5 MB; it loads as fp32), sampled as the
grid model is (6 DDIM steps, eta 1, no upward offset in the starting noise), with key guidance 3, or 1
for a model with the guidance baked in (``training bake-guidance``: one UNet pass a step does it).

    .venv/bin/python training/recipes/ship_lite_keys.py MODEL_DIR presets/models/lite-keys-grid
"""

import sys

from livegen.diffusion import load_model

model = load_model(sys.argv[1], "cpu", "fp32", winograd=False)
model.unet = model.unet.half()
model.extra.update(default_steps=6, default_sampler="ddim", default_eta=1.0, starting_noise_mean="at_most_zero",
                   key_guidance=1.0 if "baked_guidance" in model.extra else 3.0)
model.save(sys.argv[2])
print(f"{sys.argv[2]}: saved from {sys.argv[1]}")
