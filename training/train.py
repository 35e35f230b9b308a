"""Train a livegen model with accelerate: one command from this CPU to many GPUs.

    python -m training train DATA_DIR MODEL_DIR --size tiny --minutes 30
    accelerate launch --num_processes 2 --cpu -m training train DATA_DIR MODEL_DIR ...

A UNet2DModel of a named size (optionally class-conditional on the data set's
genres, and with ``--key-conditional`` on each clip's key as well) learns to predict the noise of a DDPM schedule (1000 steps). EMA
weights, mixed precision, gradient accumulation, cosine schedule with
warm-up. Checkpoints (``MODEL_DIR/checkpoints/step-N``) hold everything to
resume, and a run resumes from the newest by itself. Every ``--sample-every``
steps a few loops are rendered from the EMA weights into
``MODEL_DIR/samples/``. The result is saved in the diffusers layout that
``livegen`` loads, with EMA weights, and with a note in ``livegen.json`` of how
it was trained.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class TrainSettings:
    size: str = "tiny"
    class_conditional: bool = False
    key_conditional: bool = False  # the clip's key as a second label beside its genre
    key_drop: float = 0.15  # share of clips shown with the "any" key, so the model also makes loops unasked
    batch_size: int = 16  # per process
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 100
    max_steps: int = 1000
    minutes: float | None = None  # wall-clock budget; stops early (and saves) when spent
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # no | bf16 | fp16
    save_every: int = 200
    sample_every: int = 0
    sample_steps: int = 20
    seed: int = 0
    num_workers: int = 0
    snr_gamma: float | None = None  # min-SNR loss weighting (Hang et al. 2023); None: plain noise MSE
    noise_offset: float = 0.0  # std of a per-image constant added to the training noise (0: none)
    init: str | None = None  # start from this model dir's weights (same size and labels) instead of random


class ImageData(torch.utils.data.Dataset):
    """The prepared spectrograms in memory, as (image in [-1, 1], class label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index][None].float() / 127.5 - 1.0, self.labels[index]


def _latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []
    return found[-1] if found else None


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's weights, to compare replicas across processes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def train(data_dir: Path, model_dir: Path, settings: TrainSettings, log=print) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from livegen.diffusion.architectures import ARCHITECTURES, new_model

    from livegen.diffusion.checkpoint import ANY_KEY
    from livegen.loops.key import KEY_CODES

    from .prepare import data_codec, data_grid, load_split

    model_dir = Path(model_dir)
    accelerator = Accelerator(mixed_precision=settings.mixed_precision,
                              gradient_accumulation_steps=settings.grad_accum)
    set_seed(settings.seed)
    rows = load_split(data_dir, split="train")
    images, labels, genres = rows.images, rows.labels, rows.genres
    arch = ARCHITECTURES[settings.size]
    if images.shape[1:] != (arch.mel.y_res, arch.mel.x_res):
        raise ValueError(f"{data_dir}: images are {images.shape[1]}x{images.shape[2]}, size {settings.size!r} "
                         f"wants {arch.mel.y_res}x{arch.mel.x_res} (prepare with --size {settings.size})")
    if data_codec(data_dir) not in (None, arch.mel):
        raise ValueError(f"{data_dir}: prepared with other codec settings ({data_codec(data_dir)}) than size "
                         f"{settings.size!r} ({arch.mel}); prepare with --size {settings.size}")
    key_names = None
    if settings.key_conditional:
        if not settings.class_conditional:
            raise ValueError("--key-conditional needs --class-conditional: the key is a label beside the genre")
        key_names = [*KEY_CODES, ANY_KEY]
        labels = key_conditioned_labels(labels, rows.keys, key_names, data_dir)
    model = new_model(arch, class_names=genres if settings.class_conditional else None, key_names=key_names,
                      seed=settings.seed)
    grid = data_grid(data_dir)
    if grid is not None:  # its images are whole bars from the downbeat: the loop prep needs no beat finding
        model.extra["grid"] = grid.to_dict()
    if settings.init:
        _load_initial_weights(model, Path(settings.init))
    if key_names:  # trained as genre + key embeddings; saved as the one table diffusers' UNet reads
        model.unet.class_embedding = GenreKeyEmbedding.from_table(model.unet.class_embedding, len(genres),
                                                                  len(key_names))
    drop_to = key_names.index(ANY_KEY) if key_names else None
    unet, noise_schedule = model.unet.train(), model.scheduler
    ema = EMAModel(unet.parameters(), decay=settings.ema_decay, use_ema_warmup=True, power=3 / 4)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.lr, weight_decay=1e-6)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps * accelerator.num_processes,
                                                  settings.max_steps * accelerator.num_processes)
    loader = torch.utils.data.DataLoader(ImageData(images, labels), batch_size=settings.batch_size, shuffle=True,
                                         drop_last=True, num_workers=settings.num_workers)
    unet, optimizer, loader, lr_schedule = accelerator.prepare(unet, optimizer, loader, lr_schedule)
    accelerator.register_for_checkpointing(ema)

    checkpoints = model_dir / "checkpoints"
    step = 0
    latest = _latest_checkpoint(checkpoints)
    if latest is not None:
        accelerator.load_state(str(latest))
        step = int(latest.name.split("-")[1])
        log(f"resumed from {latest}")
    ema.to(accelerator.device)

    started = time.monotonic()
    losses: list[float] = []
    progress = _Progress(accelerator.is_main_process, settings.max_steps, step)
    out_of_time = False
    with progress:
        while step < settings.max_steps and not out_of_time:
            for clean, genre in loader:
                if drop_to is not None:  # some clips' keys become "any"
                    dropped = torch.rand(genre.shape, device=genre.device) < settings.key_drop
                    genre = torch.where(dropped, genre - genre % len(key_names) + drop_to, genre)
                with accelerator.accumulate(unet):
                    noise = training_noise(clean, settings.noise_offset)
                    t = torch.randint(0, noise_schedule.config.num_train_timesteps, (clean.shape[0],),
                                      device=clean.device)
                    noisy = noise_schedule.add_noise(clean, noise, t)
                    prediction = unet(noisy, t, class_labels=genre if settings.class_conditional else None).sample
                    loss = _noise_loss(prediction.float(), noise, t, noise_schedule, settings.snr_gamma)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(unet.parameters(), 1.0)
                    optimizer.step()
                    lr_schedule.step()
                    optimizer.zero_grad()
                if not accelerator.sync_gradients:
                    continue
                ema.step(unet.parameters())
                step += 1
                losses.append(accelerator.gather(loss.detach()[None]).mean().item())
                progress.update(step, losses[-1], ema.cur_decay_value)
                out_of_time = settings.minutes is not None and time.monotonic() - started > settings.minutes * 60
                last = step >= settings.max_steps or out_of_time
                if step % settings.save_every == 0 or last:
                    _save_checkpoint(accelerator, checkpoints, step)
                if settings.sample_every and (step % settings.sample_every == 0 or last):
                    _render_samples(accelerator, unet, ema, model, model_dir / "samples" / f"step-{step:06d}",
                                    settings)
                if last:
                    break

    accelerator.wait_for_everyone()
    raw = accelerator.unwrap_model(unet)
    digest_dir = checkpoints / f"step-{step}"
    digest_dir.mkdir(parents=True, exist_ok=True)
    (digest_dir / f"digest-rank{accelerator.process_index}.txt").write_text(state_digest(raw) + "\n")
    summary = {
        "steps": step, "minutes": round((time.monotonic() - started) / 60, 2),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "processes": accelerator.num_processes, "device": str(accelerator.device),
        "settings": asdict(settings), "data": str(data_dir), "slices": len(images), "genres": genres,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "command": " ".join(sys.argv),
    }
    if accelerator.is_main_process:
        ema.copy_to(raw.parameters())  # ship the EMA weights
        if key_names:
            raw.class_embedding = raw.class_embedding.as_table()
        model.unet = raw.eval()
        model.extra["training"] = summary
        model.save(model_dir)
        log(f"{model_dir}: saved after {step} steps ({summary['minutes']} min), loss {summary['final_loss']}")
    accelerator.wait_for_everyone()
    return summary


class GenreKeyEmbedding(torch.nn.Module):
    """A key-conditioned model's class embedding while it trains: one vector a genre plus one a key,
    so every genre learns from every key's clips. Label ``genre * keys + key``, as ``LoopModel.class_label``
    makes them; ``as_table`` writes out the sum for each label, the ``nn.Embedding`` the saved UNet has."""

    def __init__(self, genres: torch.Tensor, keys: torch.Tensor):
        super().__init__()
        self.genres, self.keys = torch.nn.Parameter(genres), torch.nn.Parameter(keys)

    @classmethod
    def from_table(cls, table: torch.nn.Embedding, genres: int, keys: int) -> "GenreKeyEmbedding":
        """Split a table of genre x key sums (a saved key-conditioned model, or one made fresh) back into parts."""
        weight = table.weight.detach().reshape(genres, keys, -1)
        per_genre = weight.mean(dim=1)
        return cls(per_genre.clone(), (weight - per_genre[:, None]).mean(dim=0).clone())

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        count = self.keys.shape[0]
        return self.genres[labels // count] + self.keys[labels % count]

    def as_table(self) -> torch.nn.Embedding:
        table = (self.genres[:, None] + self.keys[None]).reshape(-1, self.genres.shape[1])
        return torch.nn.Embedding.from_pretrained(table.detach().clone(), freeze=False)


def key_conditioned_labels(genre_labels: np.ndarray, keys: list, key_names: list[str], data_dir: Path) -> np.ndarray:
    """genre x keys + key for each row; rows of no key or an unknown one take the "any" key."""
    if all(k is None for k in keys):
        raise ValueError(f"{data_dir}: its rows carry no keys (prepared before keys were recorded); "
                         "prepare it again into a new folder")
    index = {name: i for i, name in enumerate(key_names)}
    any_key = key_names.index("any")
    return np.array([g * len(key_names) + index.get(k or "", any_key) for g, k in zip(genre_labels, keys)],
                    dtype=np.int64)


def training_noise(clean: torch.Tensor, offset: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``clean``, plus ``offset`` times one normal draw per image and channel.

    Why: an image's mean brightness is one value in 16384 pixels, so in plain noise it has a spread of
    1/128 and the UNet never learns to tell it from signal. At sampling it then reads the starting
    noise's mean as the loop's level, and at t=999 (signal scale 0.0066) that mean alone drives the
    predicted image to all dark or all bright: the broadband wash of some seeds in every genre. With an
    offset in training (0.1 in diffusers' scripts, after Guttenberg 2023) the mean is noise it must predict."""
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    if offset:
        per_image = torch.randn((clean.shape[0], clean.shape[1], 1, 1), generator=generator, dtype=clean.dtype,
                                device=clean.device)
        noise = noise + offset * per_image
    return noise


def _noise_loss(prediction, noise, t, noise_schedule, snr_gamma: float | None):
    """Squared error of the predicted noise; with ``snr_gamma``, each sample weighted by
    min(SNR, gamma) / SNR, which stops the nearly clean timesteps (high SNR, easy) from pulling
    the shared weights their way and speeds up learning several times in the min-SNR paper."""
    per_sample = (prediction - noise).pow(2).flatten(1).mean(1)
    if snr_gamma is None:
        return per_sample.mean()
    alphas = noise_schedule.alphas_cumprod.to(t.device)[t]
    snr = alphas / (1 - alphas)
    return (per_sample * snr.clamp(max=snr_gamma) / snr).mean()


def _load_initial_weights(model, init_dir: Path) -> None:
    """Copy a saved model's UNet weights into the fresh one; the shapes (size, labels) must match, but a
    key-conditioned model may start from a genre-only one of the same genres."""
    from livegen.diffusion import load_model

    source = load_model(init_dir, "cpu", precision="fp32", winograd=False)
    if source.class_names != model.class_names:
        raise ValueError(f"{init_dir}: labels {source.class_names} differ from the data set's {model.class_names}")
    state = source.unet.float().state_dict()
    if model.key_names and source.key_names != model.key_names:
        if source.key_names:
            raise ValueError(f"{init_dir}: keys {source.key_names} differ from {model.key_names}")
        # A genre-only model: each genre's vector plus a key vector drawn as a fresh label's is (N(0, 1),
        # the size of the genre vectors): started at zero, the keys stayed 1% of the genres' size after
        # 3250 steps and the network learnt to ignore them.
        genres = state["class_embedding.weight"]
        keys = torch.randn(len(model.key_names), genres.shape[1], generator=torch.Generator().manual_seed(0))
        state["class_embedding.weight"] = (genres[:, None] + keys[None]).reshape(-1, genres.shape[1])
    try:
        model.unet.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{init_dir}: its UNet is not the shape of this size ({err})") from None


def _save_checkpoint(accelerator, checkpoints: Path, step: int, keep: int = 2) -> None:
    accelerator.save_state(str(checkpoints / f"step-{step}"))
    if accelerator.is_main_process:
        for old in sorted(checkpoints.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _render_samples(accelerator, unet, ema, model, folder: Path, settings: TrainSettings, count: int = 2) -> None:
    """A few loops from the EMA weights, written as wav and png, by the main process."""
    if not accelerator.is_main_process:
        return
    import soundfile
    from PIL import Image

    from livegen.audio import MelCodec
    from livegen.diffusion import decode_images, generate

    raw = accelerator.unwrap_model(unet)
    ema.store(raw.parameters())
    ema.copy_to(raw.parameters())
    raw.eval()
    try:
        model.unet = raw
        model.device, model.dtype = accelerator.device, torch.float32
        labels = [model.class_label(i % len(model.class_names)) for i in range(count)] \
            if settings.class_conditional else None
        images = decode_images(model, generate(model, list(range(count)), steps=settings.sample_steps,
                                               class_labels=labels))
        audio = MelCodec(model.mel).images_to_audio(images, device=accelerator.device)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (image, clip) in enumerate(zip(images, audio)):
            Image.fromarray(image[::-1]).save(folder / f"sample{i}.png")  # low bands at the bottom
            soundfile.write(folder / f"sample{i}.wav", clip, model.mel.sample_rate)
    finally:
        ema.restore(raw.parameters())
        raw.train()


class _Progress:
    """A rich progress bar on the main process; nothing elsewhere."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                TextColumn("{task.fields[status]}"))
            self.task = self.bar.add_task("training", total=total, completed=done, status="")

    def __enter__(self):
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)

    def update(self, step: int, loss: float, decay: float):
        if not self.enabled:
            return
        status = f"loss {loss:.4f} ema {decay:.4f}"
        self.bar.update(self.task, completed=step, status=status)
        if not self.bar.console.is_terminal and step % 25 == 0:  # a log file gets a line now and then
            self.bar.console.print(f"{time.strftime('%H:%M:%S')} step {step}: {status}")
