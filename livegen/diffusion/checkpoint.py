"""Model directories in the diffusers layout that teticio's published models use.

    model_index.json          names each component's library and class
    unet/                     UNet2DModel (optionally class-conditional: num_class_embeds)
    scheduler/                the noise schedule (DDPM, DDIM, ...)
    mel/mel_config.json       the spectrogram codec
    vqvae/                    optional AutoencoderKL: the UNet then works on latents
    livegen.json              optional: genre names for class labels, training notes

A directory downloaded from the published models loads as it is, and what we
save loads in diffusers' ``AudioDiffusionPipeline`` too. A published model may
also be named by its Hugging Face Hub id (``teticio/audio-diffusion-256``): it
is fetched once into the Hub's cache and read from there, offline too. Weights
are read from safetensors (single or sharded); a ``.bin`` only through
``torch.load(weights_only=True)``, never plain unpickling. Every failure names
the file that caused it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..audio.mel import CodecError, MelConfig
from ..jsonfile import read_json_object
from ..presets import is_hub_id
from .cpu import keep_freed_memory, use_winograd

WEIGHTS_NAME = "diffusion_pytorch_model"
EXTRA_NAME = "livegen.json"
ANY_KEY = "any"  # a key-conditioned model's label for "no key asked for" (trained on a share of clips)


class CheckpointError(RuntimeError):
    """A model directory that cannot be loaded; the message names the file."""


# --------------------------------------------------------------------- devices
def resolve_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else cuda > mps > cpu."""
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CheckpointError(f"device {requested!r} asked for, but torch sees no CUDA GPU")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_ENV = "LIVEGEN_PRECISION"  # what "auto" resolves to when set: runs the suite on the other path


def resolve_precision(device: torch.device, requested: str = "auto") -> torch.dtype:
    """The dtype the UNet computes in. "auto": ``$LIVEGEN_PRECISION`` when set, else fp16 on GPUs and
    fp32 on CPUs.

    fp32 on CPUs even where bf16 is faster, because a loop must depend on its seed and not on the
    batch it was drawn in: in bf16 oneDNN rounds a batch's convolutions differently from one image's,
    and over the sampler's steps that grows to loops that differ by half their level. bf16 is an
    opt-in (``--precision bf16``) that trades this for speed."""
    if requested == "auto":
        forced = os.environ.get(PRECISION_ENV, "auto")
        requested = forced if forced != "auto" else "fp16" if device.type == "cuda" else "fp32"
        where = f"${PRECISION_ENV}"
    else:
        where = "precision"
    if requested not in PRECISIONS:
        raise CheckpointError(f"unknown {where} {requested!r}; choose auto, fp32, bf16 or fp16")
    return PRECISIONS[requested]


# ----------------------------------------------------------------------- model
@dataclass
class LoopModel:
    """A loaded model: the networks, the noise schedule and the codec config."""

    unet: torch.nn.Module
    scheduler: object  # a diffusers SchedulerMixin; its config seeds every sampler
    mel: MelConfig
    vqvae: torch.nn.Module | None = None
    class_names: list[str] = field(default_factory=list)
    key_names: list[str] = field(default_factory=list)  # a key-conditioned model's keys (Camelot), then "any"
    extra: dict = field(default_factory=dict)
    path: Path | None = None
    hub_id: str | None = None  # where it came from, when named by its Hub id
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    winograd_layers: int = 0  # convolutions that run on NNPACK (``to``)
    compiled_unet: torch.nn.Module | None = None  # ``compile``: the UNet as torch.compile traced it
    compiled_batch: int = 0  # the one batch size it was traced for

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of what the UNet denoises."""
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        return self.unet.config.in_channels, height, width

    @property
    def memory_format(self) -> torch.memory_format:
        """The networks' layout, and the UNet input's: channels_last on the CPU, but NCHW for NNPACK;
        on a GPU the library's (NCHW), channels_last once compiled."""
        if (self.device.type == "cpu" and not self.winograd_layers) or (
                self.compiled_unet is not None and self.device.type == "cuda"):
            return torch.channels_last
        return torch.contiguous_format

    @property
    def grid(self):
        """The ``Grid`` its images are drawn on (``livegen.json`` "grid"), or None: its loops' beat is found."""
        from ..loops.grid import Grid

        return Grid.from_dict(self.extra["grid"]) if "grid" in self.extra else None

    @property
    def caps_noise_mean(self) -> bool:
        """``livegen.json`` "starting_noise_mean": "at_most_zero": each loop's starting noise has a
        positive mean taken out (``sampling.initial_noise``)."""
        return self.extra.get("starting_noise_mean") == "at_most_zero"

    @property
    def is_class_conditional(self) -> bool:
        return bool(self.unet.config.num_class_embeds)

    @property
    def name(self) -> str:
        if self.hub_id:  # its path is a snapshot folder named by a commit hash
            return self.hub_id.split("/")[-1]
        return self.path.name if self.path else "unsaved"

    def to(self, device=None, precision: str = "auto", winograd: bool = True) -> "LoopModel":
        """Move to ``device`` (cuda > mps > cpu when None) and pick the compute dtype.

        Weights stay fp32; the forward pass runs under autocast in ``dtype``.
        On CPUs with AMX, bf16 + channels_last measured 3-5x faster than fp32.
        ``winograd=False`` keeps oneDNN for every convolution in fp32 on the CPU.
        """
        self.device = resolve_device(device)
        self.dtype = resolve_precision(self.device, precision)
        self.compiled_unet, self.compiled_batch = None, 0  # traced for the old device and layout
        on_cpu = self.device.type == "cpu"
        if on_cpu:
            keep_freed_memory()
        # fp32 on the CPU: NNPACK's Winograd kernels for wide layers, in NCHW (see cpu.py).
        self.winograd_layers = use_winograd(self.unet, self.sample_shape,
                                            winograd and on_cpu and self.dtype == torch.float32)
        for net in (self.unet, self.vqvae):
            if net is not None:
                net.to(self.device, memory_format=self.memory_format).eval().requires_grad_(False)
        return self

    def compile(self, batch: int, mode: str | None = None, backend: str = "inductor") -> "LoopModel":
        """Run the UNet through torch.compile, traced for batches of exactly ``batch``.

        Sampling pads a smaller batch up to ``batch`` (and splits a larger one), so
        one graph serves every request and nothing recompiles mid-set. The first
        pass compiles (tens of seconds for the published size on a GPU), so call
        this before the set, then run one batch. Pays on a GPU (the published
        size 2.2x on an H100 with channels_last, bench/gpu.py); on the CPU
        NNPACK's layers run as ordinary convolutions under it. ``mode``: that of
        torch.compile ("reduce-overhead" adds CUDA graphs); ``backend`` its backend
        (the tests trace with "eager": inductor's first build takes a minute on
        two cores). Call ``to`` first: moving the model afterwards drops the
        compiled UNet.
        """
        if batch < 1:
            raise ValueError(f"compile: batch must be at least 1, got {batch}")
        if self.device.type == "cuda":  # the layout the GPU bench compiled (bench/results/gpu-teticio.md)
            self.unet.to(memory_format=torch.channels_last)
        self.compiled_unet = torch.compile(self.unet, mode=mode, backend=backend, dynamic=False)
        self.compiled_batch = batch
        return self

    def autocast(self):
        """Context in which to run the networks."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def is_key_conditional(self) -> bool:
        """Trained with each clip's key beside its genre (``livegen.json`` "key_names")."""
        return bool(self.key_names)

    @property
    def key_guidance(self) -> float:
        """``livegen.json`` "key_guidance": classifier-free guidance toward the asked key (1: none). Each step
        also runs the UNet on the "any" key and moves the prediction that many times its distance from it."""
        return float(self.extra.get("key_guidance", 1.0))

    def any_key_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The same genres' labels with the "any" key (a key-conditioned model's labels only)."""
        keys = len(self.key_names)
        return labels - labels % keys + self.key_names.index(ANY_KEY)

    def class_label(self, genre: str | int | None, key: str | None = None) -> int | None:
        """A genre name or index (and, for a key-conditioned model, a Camelot key) -> the class label;
        None for unconditional models. A key-conditioned model's label is genre x keys + key, its
        "any" key where none is asked for; other models make no key and ignore one."""
        if not self.is_class_conditional:
            if genre is not None:
                raise CheckpointError(f"{self.name}: not class-conditional, so it takes no genre label ({genre!r})")
            return None
        if genre is None:
            index = 0
        elif isinstance(genre, int) or str(genre).isdigit():
            index = int(genre)
        elif genre in self.class_names:
            index = self.class_names.index(genre)
        else:
            raise CheckpointError(f"{self.name}: no genre {genre!r}; it knows {self.class_names}")
        genres = len(self.class_names) if self.key_names else self.unet.config.num_class_embeds
        if not 0 <= index < genres:
            raise CheckpointError(f"{self.name}: class label {index} out of range 0..{genres - 1}")
        if not self.key_names:
            return index
        wanted = ANY_KEY if key is None else key
        if wanted not in self.key_names:
            raise CheckpointError(f"{self.name}: no key {wanted!r}; it knows {', '.join(self.key_names)}")
        return index * len(self.key_names) + self.key_names.index(wanted)

    # ------------------------------------------------------------------ save
    def save(self, path: str | Path, *, safe_serialization: bool = True, max_shard_size: str | int = "10GB") -> Path:
        """Write the diffusers layout; diffusers' own ``save_pretrained`` writes each network."""
        import diffusers

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(path / "unet", safe_serialization=safe_serialization, max_shard_size=max_shard_size)
        self.scheduler.save_pretrained(path / "scheduler")
        self.mel.save(path / "mel")
        index = {
            "_class_name": "AudioDiffusionPipeline",
            "_diffusers_version": diffusers.__version__,
            "mel": ["diffusers", "Mel"],
            "scheduler": ["diffusers", type(self.scheduler).__name__],
            "unet": ["diffusers", type(self.unet).__name__],
            "vqvae": [None, None],
        }
        if self.vqvae is not None:
            self.vqvae.save_pretrained(path / "vqvae", safe_serialization=safe_serialization,
                                       max_shard_size=max_shard_size)
            index["vqvae"] = ["diffusers", type(self.vqvae).__name__]
        (path / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        extra = dict(self.extra)
        if self.class_names:
            extra["class_names"] = list(self.class_names)
        if self.key_names:
            extra["key_names"] = list(self.key_names)
        if extra:
            (path / EXTRA_NAME).write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
        self.path = path
        return path


# ----------------------------------------------------------------------- load
def _read_json(path: Path) -> dict:
    return read_json_object(path, CheckpointError)


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """State dict of one component folder: safetensors (single or sharded), else a .bin."""
    from safetensors.torch import load_file

    single = folder / f"{WEIGHTS_NAME}.safetensors"
    sharded = folder / f"{WEIGHTS_NAME}.safetensors.index.json"
    legacy = folder / f"{WEIGHTS_NAME}.bin"
    if single.exists():
        files = [single]
    elif sharded.exists():
        weight_map = _read_json(sharded).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{sharded}: no weight_map")
        files = [folder / name for name in sorted(set(weight_map.values()))]
    elif legacy.exists():
        try:
            state = torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for bad pickles
            raise CheckpointError(f"{legacy}: cannot be read as plain weights ({type(err).__name__}: {err})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{legacy}: expected a state dict, found {type(state).__name__}")
        return state
    else:
        raise CheckpointError(f"{folder}: no weights ({single.name} or {legacy.name})")
    state = {}
    for file in files:
        if not file.exists():
            raise CheckpointError(f"{file}: missing (listed in {sharded.name})")
        try:
            state.update(load_file(str(file)))
        except Exception as err:  # safetensors raises its own error type for corrupt files
            raise CheckpointError(f"{file}: corrupt or not safetensors ({err})") from None
    return state


def _load_network(folder: Path, cls):
    config_path = folder / "config.json"
    config = _read_json(config_path)
    try:
        network = cls.from_config(config)
    except Exception as err:
        raise CheckpointError(f"{config_path}: not a valid {cls.__name__} config ({err})") from None
    state = _read_weights(folder)
    missing, unexpected = [], []
    try:
        result = network.load_state_dict(state, strict=False)
        missing, unexpected = result.missing_keys, result.unexpected_keys
    except RuntimeError as err:  # shape mismatches
        raise CheckpointError(f"{folder}: weights do not fit config.json ({err})") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{folder}: weights do not fit config.json (missing {missing[:3]}..., unexpected {unexpected[:3]}...)")
    return network


def _load_scheduler(folder: Path):
    import diffusers

    config_path = folder / "scheduler_config.json"
    config = _read_json(config_path)
    name = config.get("_class_name", "DDPMScheduler")
    cls = getattr(diffusers, name, None)
    if cls is None or not issubclass(cls, diffusers.SchedulerMixin):
        raise CheckpointError(f"{config_path}: unknown scheduler class {name!r}")
    return cls.from_config(config)


def fetch_from_hub(hub_id: str) -> Path:
    """The local folder of a published model: downloaded into the Hub's cache the first time, then read
    from there (offline, or with ``HF_HUB_OFFLINE=1``, only the cache is looked at)."""
    from huggingface_hub import snapshot_download

    # Only the model's parts: configs, then safetensors weights, or .bin where the repo has no safetensors.
    parts = ("unet", "scheduler", "mel", "vqvae")
    configs = ["model_index.json", EXTRA_NAME, *(f"{part}/*.json" for part in parts)]
    try:
        folder = Path(snapshot_download(hub_id, allow_patterns=configs + [f"{p}/*.safetensors" for p in parts]))
        if not any((folder / "unet").glob("*.safetensors")):
            folder = Path(snapshot_download(hub_id, allow_patterns=configs + [f"{p}/*.bin" for p in parts]))
    except (OSError, ValueError) as err:  # the Hub client's: not found, offline and not cached, HTTP, bad id
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{hub_id}: no model directory of that name, and the Hugging Face Hub model "
                              f"could not be had ({reason})") from None
    return folder


def load_model(path: str | Path, device=None, precision: str = "auto", winograd: bool = True) -> LoopModel:
    """Load a model directory (or a published model by its Hub id) and move it to ``device``
    (see ``LoopModel.to``)."""
    from diffusers import AutoencoderKL, UNet2DModel

    hub_id = None
    if is_hub_id(path) and not Path(path).expanduser().is_dir():
        hub_id, path = str(path), fetch_from_hub(str(path))
    path = Path(path).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such model directory")
    index = _read_json(path / "model_index.json")
    unet_entry = index.get("unet") or [None, None]
    if unet_entry[1] not in ("UNet2DModel", None):
        raise CheckpointError(f"{path / 'model_index.json'}: unet class {unet_entry[1]!r} is not supported "
                              "(only UNet2DModel)")
    try:
        mel = MelConfig.load(path / "mel")
    except CodecError as err:
        raise CheckpointError(str(err)) from None
    unet = _load_network(path / "unet", UNet2DModel)
    scheduler = _load_scheduler(path / "scheduler")
    vqvae_entry = index.get("vqvae") or [None, None]
    vqvae = None
    if vqvae_entry[1] is not None or (path / "vqvae" / "config.json").exists():
        vqvae = _load_network(path / "vqvae", AutoencoderKL)
    extra = _read_json(path / EXTRA_NAME) if (path / EXTRA_NAME).exists() else {}
    class_names = [str(n) for n in extra.pop("class_names", [])]
    key_names = [str(n) for n in extra.pop("key_names", [])]
    model = LoopModel(unet=unet, scheduler=scheduler, mel=mel, vqvae=vqvae, class_names=class_names,
                      key_names=key_names, extra=extra, path=path, hub_id=hub_id)
    _check_shapes(model)
    return model.to(device, precision, winograd)


def _check_shapes(model: LoopModel) -> None:
    channels, height, width = model.sample_shape
    if model.key_names:
        labels = len(model.class_names) * len(model.key_names)
        if ANY_KEY not in model.key_names or model.unet.config.num_class_embeds != labels:
            raise CheckpointError(
                f"{model.path / EXTRA_NAME}: {len(model.class_names)} genres x {len(model.key_names)} keys "
                f"(with {ANY_KEY!r}) need {labels} class labels; unet/config.json has "
                f"{model.unet.config.num_class_embeds}")
    if model.vqvae is None:
        if (height, width) != (model.mel.y_res, model.mel.x_res) or channels != 1:
            raise CheckpointError(
                f"{model.path}: unet sample (1, {model.mel.y_res}, {model.mel.x_res}) expected from "
                f"mel_config.json, config.json says ({channels}, {height}, {width})")
    elif channels != model.vqvae.config.latent_channels:
        raise CheckpointError(f"{model.path}: unet in_channels {channels} != vqvae latent_channels "
                              f"{model.vqvae.config.latent_channels}")
    try:
        grid = model.grid
    except ValueError as err:
        raise CheckpointError(f"{model.path / EXTRA_NAME}: {err}") from None
    guidance = model.extra.get("key_guidance", 1.0)
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not 1.0 <= guidance <= 20.0:
        raise CheckpointError(f"{model.path / EXTRA_NAME}: key_guidance must be a number from 1 to 20, got {guidance!r}")
    if guidance != 1.0 and not model.key_names:
        raise CheckpointError(f"{model.path / EXTRA_NAME}: key_guidance {guidance:g} needs key_names (a key-conditioned model)")
    if grid is not None and grid.frames != model.mel.x_res:
        raise CheckpointError(f"{model.path / EXTRA_NAME}: grid of {grid.bars} bars x {grid.beats_per_bar} beats x "
                              f"{grid.frames_per_beat} frames is {grid.frames} frames, but the images are "
                              f"{model.mel.x_res} wide (mel_config.json x_res)")
