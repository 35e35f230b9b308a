"""Key guidance baked into a model: one UNet pass a step does what guidance did with two.

    python -m training bake-guidance TEACHER_DIR STUDENT_DIR DATA_DIR --minutes 45

A key-conditioned model keeps loops in the asked key with classifier-free
guidance (``livegen.json`` "key_guidance" w): each step runs the UNet for the
asked key and again for "any" key, and moves the prediction to
``any + w * (asked - any)``. The second pass halves the worker's speed while a
set keeps a key. Stage one of Meng et al. 2023 ("On distillation of guided
diffusion models") removes it: a student, started as a copy of the teacher,
learns to predict in one pass what the teacher's guided prediction is.

Inputs are the training windows of DATA_DIR (the teacher's own data), noised
to the teacher's sampler timesteps (``sampler_share`` of each batch; its
default steps are all the shipped sampler visits) or to any timestep (the
rest), and labelled with their clip's genre and key. ``unasked_share`` of them
are asked no key and learn the teacher's plain prediction, so loops asked no
key stay as they were. The key table is trained as a genre vector plus a key
vector, as in ``train``.

The student is a model directory in the usual layout with "key_guidance" 1
and a "baked_guidance" record (the teacher, the scale, the settings, and the
held-out distance of its prediction to the teacher's guided one, beside the
distance of the teacher's unguided prediction). State is saved every
``save_every`` steps and a new run resumes from it.
"""

from __future__ import annotations

import copy
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

STATE_NAME = "bake-state.pt"
CONDITIONING = ("class_embedding", "time_embedding", "time_emb_proj")  # where the label and the step enter the UNet


@dataclass
class BakeSettings:
    scale: float | None = None  # None: the teacher's key_guidance
    batch_size: int = 32
    lr: float = 1e-3  # for tune "conditioning"; every weight wants far less (1e-4 made it worse, 1e-5 was slow)
    warmup_steps: int = 20
    max_steps: int = 2000
    minutes: float | None = None  # wall-clock budget of this run
    sampler_share: float = 0.5  # of each batch noised to the sampler's own timesteps, the rest to any
    unasked_share: float = 0.15  # of each batch asked no key: they keep the teacher's unguided prediction
    heldout: int = 64  # held-out windows for the reported distance
    ema_decay: float = 0.995
    save_every: int = 100
    seed: int = 0
    tune: str = "conditioning"  # only where the label and the step enter the UNet (CONDITIONING), or "all" weights


def relative_error(prediction: torch.Tensor, target: torch.Tensor) -> float:
    return float((prediction - target).norm() / target.norm())


class WindowBatches:
    """Batches of noised training windows: (noisy, timesteps, labels)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, any_labels, noise_schedule,
                 sampler_timesteps: list[int], settings: BakeSettings, seed: int):
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)
        self.any_labels = any_labels  # labels -> the same genres' "any" key labels
        self.noise_schedule, self.settings = noise_schedule, settings
        self.sampler_timesteps = torch.as_tensor(sampler_timesteps, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, size: int, rows: torch.Tensor | None = None):
        g = self.generator
        if rows is None:
            rows = torch.randint(len(self.images), (size,), generator=g)
        clean = self.images[rows][:, None].float() / 127.5 - 1.0
        labels = self.labels[rows]
        labels = torch.where(torch.rand(size, generator=g) < self.settings.unasked_share, self.any_labels(labels),
                             labels)
        on_grid = torch.rand(size, generator=g) < self.settings.sampler_share
        t = torch.where(on_grid, self.sampler_timesteps[torch.randint(len(self.sampler_timesteps), (size,), generator=g)],
                        torch.randint(self.noise_schedule.config.num_train_timesteps, (size,), generator=g))
        noise = torch.randn(clean.shape, generator=g)
        return self.noise_schedule.add_noise(clean, noise, t), t, labels


def bake_guidance(teacher_dir: Path, student_dir: Path, data_dir: Path, settings: BakeSettings, log=print) -> dict:
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from livegen.diffusion import load_model
    from livegen.diffusion.sampling import guided_prediction, make_scheduler

    from .distill import save_student
    from .prepare import load_split
    from .train import GenreKeyEmbedding, key_conditioned_labels

    student_dir = Path(student_dir)
    teacher = load_model(teacher_dir, "cpu", "fp32", winograd=False)
    if not teacher.is_key_conditional:
        raise ValueError(f"{teacher_dir}: not a key-conditioned model (its livegen.json has no key_names)")
    scale = settings.scale if settings.scale is not None else teacher.key_guidance
    if scale <= 1.0:
        raise ValueError(f"{teacher_dir}: key guidance {scale:g} leaves nothing to bake (give --scale above 1)")
    rows = load_split(data_dir, split="train")
    held = load_split(data_dir, split="heldout")
    if rows.genres != teacher.class_names:
        raise ValueError(f"{data_dir}: genres {rows.genres} differ from the teacher's {teacher.class_names}")
    if rows.images.shape[1:] != (teacher.mel.y_res, teacher.mel.x_res):
        raise ValueError(f"{data_dir}: images are {rows.images.shape[1]}x{rows.images.shape[2]}, the teacher "
                         f"draws {teacher.mel.y_res}x{teacher.mel.x_res}")
    key_names = teacher.key_names
    sampler = make_scheduler(teacher, teacher.extra.get("default_sampler", "ddim"),
                             int(teacher.extra.get("default_steps", 50)))
    sampler_timesteps = [int(t) for t in sampler.timesteps]
    torch.manual_seed(settings.seed)

    def batches(split, seed):
        labels = key_conditioned_labels(split.labels, split.keys, key_names, data_dir)
        return WindowBatches(split.images, labels, teacher.any_key_labels, teacher.scheduler, sampler_timesteps,
                             settings, seed)

    train_batches = batches(rows, settings.seed)
    teacher.extra["key_guidance"] = scale  # what guided_prediction applies
    teacher_unet = teacher.unet.eval().requires_grad_(False)
    # A fixed held-out set: windows the teacher never trained on, at the sampler's timesteps and any.
    held_batches = batches(held if len(held.images) else rows, 1_000_003)
    held_inputs = held_batches.draw(settings.heldout, torch.arange(settings.heldout) % len(held_batches.images))
    with torch.no_grad():
        held_target = guided_prediction(teacher, *held_inputs)
        noisy, t, labels = held_inputs
        unguided = teacher_unet(noisy, t, class_labels=labels).sample.float()
    teacher_distance = relative_error(unguided, held_target)

    unet = copy.deepcopy(teacher_unet).train().requires_grad_(True)
    unet.class_embedding = GenreKeyEmbedding.from_table(unet.class_embedding, len(teacher.class_names),
                                                        len(key_names))
    if settings.tune not in ("all", "conditioning"):
        raise ValueError(f"tune must be 'all' or 'conditioning', got {settings.tune!r}")
    if settings.tune == "conditioning":
        for name, parameter in unet.named_parameters():
            parameter.requires_grad_(any(part in name for part in CONDITIONING))
    tuned = [p for p in unet.parameters() if p.requires_grad]
    ema = EMAModel(tuned, decay=settings.ema_decay, use_ema_warmup=True, power=3 / 4)
    optimizer = torch.optim.AdamW(tuned, lr=settings.lr, weight_decay=0.0)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps, settings.max_steps)
    state_path = student_dir / "checkpoints" / STATE_NAME
    step, minutes_before = 0, 0.0
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        ema.load_state_dict(state["ema"])
        step, minutes_before = state["step"], state["minutes"]
        train_batches.generator.manual_seed(settings.seed + step)
        log(f"resumed from {state_path} at step {step}")

    def exported():
        export = copy.deepcopy(unet)
        ema.copy_to([p for p in export.parameters() if p.requires_grad])
        export.class_embedding = export.class_embedding.as_table()
        return export.eval()

    def save(final: bool) -> None:
        minutes = round(minutes_before + (time.monotonic() - started) / 60, 2)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"unet": unet.state_dict(), "optimizer": optimizer.state_dict(),
                    "lr_schedule": lr_schedule.state_dict(), "ema": ema.state_dict(), "step": step,
                    "minutes": minutes},
                   state_path.with_suffix(".tmp"))
        state_path.with_suffix(".tmp").replace(state_path)  # a kill mid-write keeps the last state
        export = exported()
        with torch.no_grad():
            distance = relative_error(export(held_inputs[0], held_inputs[1], class_labels=held_inputs[2]).sample,
                                      held_target)
        summary.update(steps=step, minutes=minutes,
                       final_loss=float(np.mean(recent)) if recent else None,
                       heldout_distance=round(distance, 4))
        save_student(teacher, export, student_dir, "baked_guidance", summary, key_guidance=1.0)
        log(f"{student_dir}: saved at step {step}; held-out distance to the guided teacher {distance:.4f} "
            f"(the teacher's unguided pass: {teacher_distance:.4f})" + (" (final)" if final else ""))

    summary = {
        "teacher": str(teacher_dir), "scale": scale, "data": str(data_dir), "windows": len(rows.images),
        "sampler_timesteps": sampler_timesteps, "settings": asdict(settings),
        "teacher_unguided_distance": round(teacher_distance, 4),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "command": " ".join(sys.argv),
    }
    recent: list[float] = []
    started = time.monotonic()
    log(f"baking key guidance {scale:g} into {student_dir}: {len(rows.images)} windows, sampler timesteps "
        f"{sampler_timesteps}; held-out distance of the unguided pass to the guided {teacher_distance:.4f}")
    while step < settings.max_steps:
        noisy, t, labels = train_batches.draw(settings.batch_size)
        target = guided_prediction(teacher, noisy, t, labels)
        loss = torch.nn.functional.mse_loss(unet(noisy, t, class_labels=labels).sample.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tuned, 1.0)
        optimizer.step()
        lr_schedule.step()
        optimizer.zero_grad()
        ema.step(tuned)
        step += 1
        recent = (recent + [loss.item()])[-50:]
        out_of_time = settings.minutes is not None and time.monotonic() - started > settings.minutes * 60
        if step % 10 == 0:
            log(f"step {step}: loss {np.mean(recent):.5f}")
        if step % settings.save_every == 0 or step >= settings.max_steps or out_of_time:
            save(final=step >= settings.max_steps or out_of_time)
        if out_of_time:
            break
    if not (student_dir / "livegen.json").exists():
        save(final=True)
    return summary
