"""A grid data set's train split, small enough to travel to a GPU machine that has no ``datasets``.

The windows of one file start a bar apart and overlap by three of their four bars, so one strip of
spectrogram columns a file holds them all (each window is cut back out at its bar). That is a third of
the windows' bytes; lzma takes it to about 0.7 of that (the spectrograms' low bits are noise). The
strips are not the windows bit for bit: a window's first three bars come from its neighbours,
which were cut a sub-frame apart and levelled on their own, a mean 0.43 uint8 steps (0.13 dB)
off on /work/data-keys24.

    python training/recipes/gpu_strips.py pack DATA_DIR OUT_DIR PART PARTS   # here, per part
    python training/recipes/gpu_strips.py train PARTS_DIRS INIT MODEL SECONDS BATCH LR  # there

``pack`` writes every PARTS-th file of the train split from the PART-th (parts: so each fits one
device call's 64 MiB). ``train`` runs ``training train``'s loop (key-conditioned lite-keys, min-SNR 5,
bf16) on the parts that are there (a comma-separated list), first timing 150 steps to size the
cosine schedule to SECONDS.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training import prepare  # noqa: E402


def pack(data_dir: Path, out: Path, part: int, parts: int) -> None:
    rows = prepare.load_split(data_dir, "train")
    width, frames_per_beat = rows.images.shape[2], rows.grid.frames_per_beat
    key_names = sorted({k or "" for k in rows.keys})  # over all parts, so their key indices agree
    by_file: dict[str, list[int]] = {}
    for i, name in enumerate(rows.files):
        by_file.setdefault(name, []).append(i)
    chosen = [members for n, (_, members) in enumerate(sorted(by_file.items())) if n % parts == part]
    strips, index, drift, column = [], [], [], 0
    for members in chosen:
        members.sort(key=lambda i: rows.starts[i])
        first = rows.starts[members[0]]
        starts = [round((rows.starts[i] - first) * rows.bpms[i] / 60 * frames_per_beat) for i in members]
        strip = np.zeros((rows.images.shape[1], starts[-1] + width), np.uint8)
        for i, start in zip(members, starts):
            strip[:, start:start + width] = rows.images[i]
        for i, start in zip(members, starts):
            drift.append(np.abs(strip[:, start:start + width].astype(int) - rows.images[i]).mean())
            index.append((column + start, int(rows.labels[i]), key_names.index(rows.keys[i] or "")))
        strips.append(strip)
        column += strip.shape[1]
    columns = np.ascontiguousarray(np.concatenate(strips, axis=1).T)  # column-major: one frame after another
    out.mkdir(parents=True, exist_ok=True)
    (out / ".prepare").mkdir(exist_ok=True)
    for name in ("mel_config.json", "grid.json"):  # the codec and grid, as training train reads them
        shutil.copy(data_dir / ".prepare" / name, out / ".prepare" / name)
    (out / "strips.xz").write_bytes(lzma.compress(columns.tobytes(), preset=6))
    np.save(out / "index.npy", np.array(index, np.int64))
    (out / "train.json").write_text(json.dumps({"genres": rows.genres, "key_names": key_names,
                                                "rows": int(columns.shape[1]), "columns": int(columns.shape[0]),
                                                "width": int(width)}))
    print(f"{out}: {len(index)} windows of {len(strips)} files, {(out / 'strips.xz').stat().st_size / 1e6:.1f} MB; "
          f"windows off by a mean {np.mean(drift):.2f} uint8 steps (most {np.max(drift):.2f})")


def unpack(parts: list[Path]) -> prepare.Split:
    images, indexes = [], []
    for part in parts:
        meta = json.loads((part / "train.json").read_text())
        columns = np.frombuffer(lzma.decompress((part / "strips.xz").read_bytes()), np.uint8)
        strips = columns.reshape(meta["columns"], meta["rows"]).T
        index = np.load(part / "index.npy")
        images.append(np.stack([strips[:, start:start + meta["width"]] for start in index[:, 0]]))
        indexes.append(index)
    index = np.concatenate(indexes)
    keys = [meta["key_names"][k] for k in index[:, 2]]
    return prepare.Split(np.concatenate(images), index[:, 1].copy(), meta["genres"], [], [], [], [], None, keys)


def train_on_parts(parts: list[Path], init: Path, model_dir: Path, seconds: float, batch: int, lr: float) -> None:
    import torch

    import training.train as training_loop

    rows = unpack(parts)
    prepare.load_split = lambda data_dir, split="train": rows  # training train reads the strips' windows
    print(f"{len(rows.images)} windows from {[str(p) for p in parts]}", flush=True)
    torch.backends.cudnn.benchmark = True

    def settings(steps: int, minutes: float | None = None) -> training_loop.TrainSettings:
        return training_loop.TrainSettings(
            size="lite-keys", class_conditional=True, key_conditional=True, snr_gamma=5.0, batch_size=batch, lr=lr,
            warmup_steps=50, max_steps=steps, minutes=minutes, mixed_precision="bf16", save_every=10**9,
            init=str(init))

    step_times: list[float] = []
    update = training_loop._Progress.update

    def timed(self, step, *rest):
        step_times.append(time.monotonic())
        return update(self, step, *rest)

    probe = int(os.environ.get("PROBE_STEPS", 150))
    training_loop._Progress.update = timed
    shutil.rmtree("/tmp/gpu-strips-probe", ignore_errors=True)  # else it would resume there
    training_loop.train(parts[0], Path("/tmp/gpu-strips-probe"), settings(probe), log=lambda *a: None)
    training_loop._Progress.update = update
    skip = min(20, probe // 2)  # the first steps include cuDNN's autotuning
    rate = 0.97 * (len(step_times) - 1 - skip) / (step_times[-1] - step_times[skip])
    steps = int(rate * seconds)
    print(f"probe: {rate:.1f} steps/s at batch {batch}; training {steps} steps", flush=True)
    summary = training_loop.train(parts[0], model_dir, settings(steps, seconds / 60 * 1.15), log=print)
    print(json.dumps({k: summary[k] for k in ("steps", "minutes", "final_loss", "device")}), flush=True)


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    if verb == "pack":
        pack(Path(args[0]), Path(args[1]), int(args[2]), int(args[3]))
    elif verb == "train":
        parts = [Path(p) for p in args[0].split(",") if (Path(p) / "strips.xz").is_file()]
        train_on_parts(parts, Path(args[1]), Path(args[2]), float(args[3]), int(args[4]), float(args[5]))
    else:
        raise SystemExit(f"unknown verb {verb!r}: pack or train")
