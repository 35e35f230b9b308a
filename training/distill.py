"""Few-step distillation: a student that draws in 1, 2 or 4 steps what its teacher draws in many.

    python -m training distill TEACHER_DIR STUDENT_DIR --student-steps 1 2 4 --pairs 49152 --minutes 5

Direct distillation of the deterministic DDIM sampler (Luhman & Luhman 2021,
"Knowledge distillation in iterative generative models"), unrolled through
the student's own short schedule:

1. The teacher samples ``pairs`` loops with DDIM (eta 0) at ``teacher_steps``
   (its default: the quality the shipped presets play today). With eta 0 a
   loop is a fixed function of its starting noise, so each (noise, label,
   loop) triple is a training example; no data set is needed.
2. The student starts as a copy of the teacher and predicts ``v``
   (Salimans & Ho 2022), which stays well scaled at t = 999 where an
   epsilon-prediction would be divided by sqrt(alpha) ~ 0.006. Its schedule
   is DDIM with "trailing" timesteps (1 step: t = 999; 2: 999, 499; 4: 999,
   749, 499, 249), so even one step starts from pure noise at the top of the
   schedule rather than at t = 0, where diffusers' default "leading" spacing
   puts a single step.
3. For each student step count, the student's DDIM chain is run exactly as
   the sampler will run it (the same x0 clipping), gradients flow through
   the whole chain, and the loss is the mean squared distance of its final
   loop to the teacher's. One student serves every listed step count.

The result is a model directory in the usual layout (DDIMScheduler with
``prediction_type = v_prediction``, ``timestep_spacing = trailing``; EMA
weights), so ``livegen`` and diffusers' pipeline sample it with the plain
DDIM sampler. ``livegen.json`` records the teacher, the settings and the
held-out distance to the teacher per step count. State is saved every
``save_every`` steps and a new run resumes from it; the teacher's loops are
drawn again from their seeds (they are a fixed function of them).
"""

from __future__ import annotations

import copy
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

STATE_NAME = "distill-state.pt"


@dataclass
class DistillSettings:
    teacher_steps: int | None = None  # None: the teacher's default steps (livegen.json), else 8
    student_steps: tuple[int, ...] = (1, 2, 4)
    pairs: int = 4096  # teacher loops to learn from
    heldout: int = 64  # further teacher loops, only for the reported distance
    batch_size: int = 64
    teacher_batch: int = 256
    lr: float = 1e-4
    warmup_steps: int = 50
    max_steps: int = 2000
    minutes: float | None = None  # wall-clock budget for the student's training (the teacher's loops excluded)
    texture_weight: float = 0.0  # weight of the texture term (see texture_loss); 0: plain mean squared error
    init: str | None = None  # start from this student's weights instead of the teacher's
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # no | bf16 (the student's forward; the teacher always samples in fp32)
    save_every: int = 500
    seed: int = 0
    device: str | None = None


def student_scheduler(teacher_scheduler):
    """DDIM on the teacher's noise schedule, v-prediction, trailing timesteps."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(teacher_scheduler.config, prediction_type="v_prediction",
                                     timestep_spacing="trailing")


def schedule_timesteps(scheduler, steps: int) -> list[int]:
    """The timesteps the DDIM sampler visits in ``steps`` steps (as ``denoise`` will)."""
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def unrolled_ddim(unet, noise: torch.Tensor, labels, timesteps: list[int], alphas_cumprod: torch.Tensor,
                  clip: bool = True) -> torch.Tensor:
    """The student's DDIM chain (eta 0, v-prediction), differentiable; returns the last x0 prediction.

    It mirrors ``diffusers.DDIMScheduler.step``: x0 and epsilon from v, x0
    clipped to [-1, 1] before the step down. The last prediction is returned
    unclipped, so the loss still has a gradient where it overshoots (the
    sampler clips it).
    """
    x = noise
    x0 = noise
    for i, t in enumerate(timesteps):
        a = alphas_cumprod[t]
        step = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        v = unet(x, step, class_labels=labels).sample.float()
        x0 = a.sqrt() * x - (1 - a).sqrt() * v
        if i + 1 < len(timesteps):
            eps = a.sqrt() * v + (1 - a).sqrt() * x
            a_next = alphas_cumprod[timesteps[i + 1]]
            x = a_next.sqrt() * (x0.clamp(-1, 1) if clip else x0) + (1 - a_next).sqrt() * eps
    return x0


def texture_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """How far two statistics of each mel band, over time, are from the teacher's.

    A few-step student regressing onto a sampler as sensitive as DDIM averages
    what it cannot predict: onsets smear and the spectrogram goes flat (on the
    shipped model, one step alone kept 59% of the teacher's frame-to-frame
    change and 70% of its spread). This term compares statistics, not pixels:
    per loop and band, the mean absolute change between neighbouring frames
    (transients) and the spread over time (contrast). So it asks for as much
    of both as the teacher has, without asking for them in the same place.
    """
    def stats(x):
        return torch.cat([(x[..., 1:] - x[..., :-1]).abs().mean(-1), x.std(-1)], dim=-1)

    return torch.nn.functional.mse_loss(stats(student), stats(teacher))


def teacher_loops(teacher, seeds: list[int], labels: list[int] | None, steps: int, batch: int, log=print):
    """(noise, loop) of the teacher's DDIM sampler for each seed, on the teacher's device."""
    from livegen.diffusion.sampling import denoise, initial_noise, seed_generators

    noises, loops = [], []
    started = time.monotonic()
    for i in range(0, len(seeds), batch):
        part = seeds[i:i + batch]
        noise = initial_noise(teacher, seed_generators(part))
        x = denoise(teacher, part, steps=steps, sampler="ddim", noise=noise,
                    class_labels=None if labels is None else labels[i:i + batch])
        noises.append(noise)
        loops.append(x)
        if (i // batch) % 20 == 0:
            log(f"teacher: {i + len(part)}/{len(seeds)} loops ({time.monotonic() - started:.0f} s)")
    return torch.cat(noises), torch.cat(loops)


def save_student(teacher, unet, student_dir: Path, record_name: str, record: dict, scheduler=None, **settings) -> None:
    """Save a student of ``teacher``: its UNet (and scheduler), the teacher's livegen.json with ``settings``
    changed, and ``record`` under ``record_name`` in place of the teacher's training record (kept inside it)."""
    student = copy.copy(teacher)
    student.unet = unet
    if scheduler is not None:
        student.scheduler = scheduler
    student.extra = dict(teacher.extra, **settings, **{record_name: dict(record)})
    student.extra.pop("training", None)
    student.extra[record_name]["teacher_training"] = teacher.extra.get("training")
    student.save(student_dir)


def distill(teacher_dir: Path, student_dir: Path, settings: DistillSettings, log=print) -> dict:
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from livegen.diffusion import load_model
    from livegen.diffusion.sampling import alphas_cumprod_of

    from .eval import relative_distance

    student_dir = Path(student_dir)
    if any(k < 1 for k in settings.student_steps):
        raise ValueError(f"student steps must be at least 1, got {settings.student_steps}")
    teacher = load_model(teacher_dir, settings.device, "fp32")
    if teacher.vqvae is not None:
        raise ValueError(f"{teacher_dir}: latent models are not supported by distill yet")
    if teacher.scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"{teacher_dir}: the teacher must be an epsilon-prediction model "
                         f"(this one predicts {teacher.scheduler.config.get('prediction_type')})")
    device = teacher.device
    teacher_steps = settings.teacher_steps or int(teacher.extra.get("default_steps", 8))
    torch.manual_seed(settings.seed)

    # The teacher's loops: seeds 0..pairs-1 to learn from, then the held-out ones. Labels cycle.
    total = settings.pairs + settings.heldout
    seeds = [settings.seed * 1_000_003 + i for i in range(total)]
    labels = [i % len(teacher.class_names) for i in range(total)] if teacher.is_class_conditional else None
    started = time.monotonic()
    noise, target = teacher_loops(teacher, seeds, labels, teacher_steps, settings.teacher_batch, log)
    teacher_seconds = time.monotonic() - started
    log(f"teacher: {total} loops at {teacher_steps} steps in {teacher_seconds:.0f} s")
    label_tensor = torch.as_tensor(labels, device=device) if labels is not None else None
    train_index = torch.arange(settings.pairs, device=device)
    held_index = torch.arange(settings.pairs, total, device=device)

    unet = copy.deepcopy(teacher.unet).train().requires_grad_(True)
    if settings.init:
        unet.load_state_dict(load_model(settings.init, "cpu", "fp32").unet.state_dict())
    scheduler = student_scheduler(teacher.scheduler)
    alphas = alphas_cumprod_of(teacher).to(device)
    schedules = {k: schedule_timesteps(scheduler, k) for k in settings.student_steps}
    ema = EMAModel(unet.parameters(), decay=settings.ema_decay, use_ema_warmup=True, power=3 / 4)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.lr, weight_decay=0.0)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps, settings.max_steps)
    state_path = student_dir / "checkpoints" / STATE_NAME
    step = 0
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        ema.load_state_dict(state["ema"])
        step = state["step"]
        log(f"resumed from {state_path} at step {step}")
    ema.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.mixed_precision == "bf16")

    def batch_loss(index, net) -> dict[int, torch.Tensor]:
        lab = None if label_tensor is None else label_tensor[index]
        losses = {}
        with autocast:
            for k, ts in schedules.items():
                x0 = unrolled_ddim(net, noise[index], lab, ts, alphas)
                losses[k] = torch.nn.functional.mse_loss(x0, target[index])
                if settings.texture_weight:
                    losses[k] = losses[k] + settings.texture_weight * texture_loss(x0, target[index])
        return losses

    @torch.no_grad()
    def heldout_distance(net) -> dict[int, float]:
        """Relative L2 of the student's loops to the teacher's, held-out seeds (the eval's fidelity figure)."""
        net.eval()
        out = {}
        for k, ts in schedules.items():
            got = []
            for i in range(0, len(held_index), settings.batch_size):
                index = held_index[i:i + settings.batch_size]
                lab = None if label_tensor is None else label_tensor[index]
                with autocast:
                    got.append(unrolled_ddim(net, noise[index], lab, ts, alphas).clamp(-1, 1).float())
            out[k] = relative_distance(torch.cat(got), target[held_index])
        net.train()
        return out

    def save(final: bool) -> None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"unet": unet.state_dict(), "optimizer": optimizer.state_dict(),
                    "lr_schedule": lr_schedule.state_dict(), "ema": ema.state_dict(), "step": step},
                   state_path.with_suffix(".tmp"))
        state_path.with_suffix(".tmp").replace(state_path)  # a kill mid-write keeps the last state
        export = copy.deepcopy(unet)
        ema.copy_to(export.parameters())
        export.eval()
        distance = heldout_distance(export) if len(held_index) else {}
        summary.update(steps=step, minutes=round((time.monotonic() - train_started) / 60, 2),
                       final_loss=float(sum(recent) / len(recent)) if recent else None,
                       heldout_distance_to_teacher=distance)
        save_student(teacher, export.float(), student_dir, "distilled", summary, scheduler=scheduler,
                     default_steps=min(settings.student_steps), default_sampler="ddim")
        log(f"{student_dir}: saved at step {step}; distance to the teacher per step count "
            f"{ {k: round(v, 4) for k, v in distance.items()} }" + (" (final)" if final else ""))

    summary = {
        "teacher": str(teacher_dir), "teacher_steps": teacher_steps, "teacher_seconds": round(teacher_seconds, 1),
        "student_steps": list(settings.student_steps), "pairs": settings.pairs, "heldout": settings.heldout,
        "settings": asdict(settings),
        "device": str(device), "machine": f"{platform.processor() or platform.machine()}",
        "command": " ".join(sys.argv),
    }
    recent: list[float] = []
    train_started = time.monotonic()
    generator = torch.Generator(device="cpu").manual_seed(settings.seed + step)
    while step < settings.max_steps:
        index = train_index[torch.randint(settings.pairs, (settings.batch_size,), generator=generator).to(device)]
        losses = batch_loss(index, unet)
        loss = sum(losses.values()) / len(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        ema.step(unet.parameters())
        step += 1
        recent = (recent + [loss.item()])[-50:] if step % 10 == 0 or step < 20 else recent
        if step % 100 == 0:
            log(f"{time.strftime('%H:%M:%S')} step {step}: loss {loss.item():.5f} "
                + " ".join(f"{k}-step {v.item():.5f}" for k, v in losses.items()))
        out_of_time = settings.minutes is not None and time.monotonic() - train_started > settings.minutes * 60
        if step % settings.save_every == 0 or out_of_time or step >= settings.max_steps:
            save(final=out_of_time or step >= settings.max_steps)
        if out_of_time:
            break
    if step == 0 or not (student_dir / "model_index.json").exists():
        save(final=True)
    return summary
