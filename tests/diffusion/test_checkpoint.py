import json
import pickle

import numpy as np
import pytest
import torch

from livegen.audio import MelConfig
from livegen.diffusion import CheckpointError, load_model
from livegen.diffusion.architectures import Architecture, new_model
from tests.conftest import TINY


def _forward(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((2, *model.sample_shape), generator=generator)
    labels = torch.tensor([0, 1]) if model.is_class_conditional else None
    with torch.no_grad(), model.autocast():
        return model.unet(x.to(model.device), torch.tensor([10, 500]), class_labels=labels).sample.float()


def test_save_load_round_trip(tiny_model_dir):
    saved = new_model(TINY, seed=1)  # the fixture's weights
    loaded = load_model(tiny_model_dir, "cpu", "fp32")
    assert loaded.mel == TINY.mel
    assert type(loaded.scheduler).__name__ == "DDPMScheduler"
    for name, tensor in saved.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], tensor, rtol=0, atol=0)
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["mel"] == ["diffusers", "Mel"]
    assert (tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_class_names_and_labels(genre_model_dir):
    model = load_model(genre_model_dir, "cpu")
    assert model.class_names == ["techno", "house", "breaks"]
    assert model.class_label("house") == 1 and model.class_label(2) == 2
    with pytest.raises(CheckpointError, match="no genre 'polka'"):
        model.class_label("polka")
    with pytest.raises(CheckpointError, match="out of range"):
        model.class_label(7)


def test_saved_dir_loads_in_diffusers_pipeline(tiny_model_dir):
    diffusers = pytest.importorskip("diffusers")
    pipe = diffusers.AudioDiffusionPipeline.from_pretrained(tiny_model_dir)
    ours = load_model(tiny_model_dir, "cpu", "fp32")
    torch.testing.assert_close(_forward(ours), pipe.unet(*_inputs(ours)).sample)
    assert pipe.mel.config.hop_length == TINY.mel.hop_length


def _inputs(model):
    generator = torch.Generator().manual_seed(0)
    return torch.randn((2, *model.sample_shape), generator=generator), torch.tensor([10, 500])


def _teticio_style_dir(path):
    """The layout of teticio's published models: .bin weights, square int sample_size, 'audio_diffusion' Mel."""
    arch = Architecture(MelConfig(x_res=32, y_res=32, n_fft=512, hop_length=256), (16, 32), norm_num_groups=8)
    model = new_model(arch, seed=5)
    model.save(path)
    (path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(model.unet.state_dict(), path / "unet" / "diffusion_pytorch_model.bin")
    config = json.loads((path / "unet" / "config.json").read_text())
    config["sample_size"] = 32
    (path / "unet" / "config.json").write_text(json.dumps(config))
    (path / "model_index.json").write_text(json.dumps({
        "_class_name": "AudioDiffusionPipeline", "_diffusers_version": "0.12.0.dev0",
        "mel": ["audio_diffusion", "Mel"], "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DModel"]}))
    return model


def test_teticio_layout_with_bin_weights_loads(tmp_path):
    original = _teticio_style_dir(tmp_path)
    loaded = load_model(tmp_path, "cpu", "fp32")
    assert loaded.sample_shape == (1, 32, 32) and loaded.vqvae is None
    torch.testing.assert_close(_forward(loaded), _forward(original.to("cpu", "fp32")))


def test_bin_is_never_unpickled(tmp_path, capsys):
    _teticio_style_dir(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (print, ("this ran while loading",))

    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({"w": Exploit()}))
    with pytest.raises(CheckpointError, match=r"diffusion_pytorch_model\.bin: cannot be read as plain weights"):
        load_model(tmp_path)
    assert "this ran while loading" not in capsys.readouterr().out


def test_sharded_safetensors_load(tmp_path):
    model = new_model(TINY, seed=3)
    model.save(tmp_path, max_shard_size="50KB")
    shards = sorted((tmp_path / "unet").glob("*.safetensors"))
    assert len(shards) > 1
    torch.testing.assert_close(_forward(load_model(tmp_path, "cpu", "fp32")), _forward(model.to("cpu", "fp32")))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "unet" / "diffusion_pytorch_model.safetensors").unlink(), r"unet: no weights"),
    (lambda d: (d / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64),
     r"diffusion_pytorch_model\.safetensors: corrupt"),
    (lambda d: (d / "unet" / "config.json").write_text("{"), r"unet/config\.json: not valid JSON"),
    (lambda d: (d / "model_index.json").unlink(), r"model_index\.json: missing"),
    (lambda d: (d / "mel" / "mel_config.json").unlink(), r"mel_config\.json: mel config not found"),
    (lambda d: (d / "scheduler" / "scheduler_config.json").write_text('{"_class_name": "Nope"}'),
     r"scheduler_config\.json: unknown scheduler class 'Nope'"),
])
def test_damaged_dirs_name_the_file(tiny_model_dir, tmp_path, damage, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    damage(copy)
    with pytest.raises(CheckpointError, match=message):
        load_model(copy)


def test_weights_that_do_not_fit_the_config(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    config = json.loads((copy / "unet" / "config.json").read_text())
    config["block_out_channels"] = [8, 16]
    (copy / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="weights do not fit config.json"):
        load_model(copy)


def test_mel_and_unet_shapes_must_agree(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    MelConfig(x_res=128, y_res=32, n_fft=512, hop_length=256).save(copy / "mel")
    with pytest.raises(CheckpointError, match="mel_config.json"):
        load_model(copy)


def test_missing_dir():
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_model("/nonexistent/model")


def test_bf16_stays_close_to_fp32(tiny_model_dir):
    """bf16 autocast + channels_last is what a CPU with AMX runs: within a few % of fp32."""
    fp32 = _forward(load_model(tiny_model_dir, "cpu", "fp32"))
    bf16_model = load_model(tiny_model_dir, "cpu", "bf16")
    assert bf16_model.dtype == torch.bfloat16
    bf16 = _forward(bf16_model)
    assert (bf16 - fp32).norm() / fp32.norm() < 0.05


def test_latent_model_with_vqvae_round_trips(tmp_path):
    from diffusers import AutoencoderKL, UNet2DModel

    from livegen.diffusion import decode_images, encode_images, generate
    from livegen.diffusion.checkpoint import LoopModel

    mel = MelConfig(x_res=32, y_res=32, n_fft=512, hop_length=256)
    torch.manual_seed(0)
    vqvae = AutoencoderKL(in_channels=1, out_channels=1, latent_channels=2, block_out_channels=(8, 16),
                          down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                          norm_num_groups=8, sample_size=32)
    unet = UNet2DModel(sample_size=(16, 16), in_channels=2, out_channels=2, block_out_channels=(16, 32),
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=8,
                       layers_per_block=1)
    from diffusers import DDIMScheduler

    LoopModel(unet=unet, scheduler=DDIMScheduler(), mel=mel, vqvae=vqvae).save(tmp_path)
    model = load_model(tmp_path, "cpu", "fp32")
    assert model.vqvae is not None and model.sample_shape == (2, 16, 16)
    images = decode_images(model, generate(model, [1, 2], steps=3))
    assert images.shape == (2, 32, 32) and images.dtype == np.uint8
    assert encode_images(model, images).shape == (2, 2, 16, 16)
