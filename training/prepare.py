"""A folder of audio -> a dataset of mel images (Hugging Face ``datasets``, saved to disk).

Any wav/flac/mp3/ogg/m4a under the folder, at any rate and channel count, is
read as mono at the codec's rate and cut into whole slices; each slice becomes
one row: ``image`` (the uint8 spectrogram, as teticio's data sets store it),
``audio_file``, ``slice`` and ``genre`` (the first sub-folder under the audio
folder, as a class label). Silent slices are skipped. A file that cannot be
read is reported by name and skipped.

Resumable: finished files are recorded in ``DATA_DIR/.prepare/`` with their
images, so a second run only reads what is new, then writes the data set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.audio import MelCodec, MelConfig

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".m4a"}
SILENCE_DBFS = -60.0


@dataclass
class PrepareReport:
    files: int = 0
    slices: int = 0
    silent: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def find_audio(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                  and ".part." not in p.name)


def genre_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else "unlabelled"


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate``; raises ValueError saying what was wrong."""
    import soundfile

    from livegen.loops import resample

    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as first_error:  # libsndfile cannot read it (m4a, some mp3): try librosa's decoders
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                audio, rate = librosa.load(path, sr=None, mono=False)
            audio = np.atleast_2d(audio).T.astype(np.float32)
        except Exception:
            raise ValueError(f"not readable audio ({first_error})") from None
    if audio.size == 0:
        raise ValueError("empty (no samples)")
    if not np.isfinite(audio).all():
        raise ValueError("contains NaN or infinite samples")
    return resample(audio.mean(axis=1), rate, sample_rate)


def _is_silent(audio_slice: np.ndarray) -> bool:
    rms = float(np.sqrt(np.mean(np.square(audio_slice, dtype=np.float64))))
    return rms < 10 ** (SILENCE_DBFS / 20)


def prepare(audio_dir: Path, data_dir: Path, config: MelConfig, *, on_file=None, log=print) -> PrepareReport:
    """Build (or finish building) the data set; returns what was done."""
    audio_dir, data_dir = Path(audio_dir), Path(data_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: no such folder")
    work = data_dir / ".prepare"
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "mel_config.json"
    if config_path.exists() and MelConfig.load(config_path) != config:
        raise ValueError(f"{config_path}: this data set was started with other mel settings; use a new DATA_DIR")
    config.save(work)
    (work / "source.json").write_text(json.dumps({"audio_dir": str(audio_dir.resolve())}) + "\n")
    manifest_path = work / "done.jsonl"
    done = {}
    if manifest_path.exists():
        for line in manifest_path.read_text().splitlines():
            entry = json.loads(line)
            done[entry["file"]] = entry
    codec = MelCodec(config)
    report = PrepareReport()
    files = find_audio(audio_dir)
    with manifest_path.open("a") as manifest:
        for number, path in enumerate(files):
            key = str(path.relative_to(audio_dir))
            if key not in done:
                entry = {"file": key, "genre": genre_of(path, audio_dir), "chunk": None, "silent": 0}
                try:
                    slices = codec.slices(read_audio(path, config.sample_rate))
                    keep = [s for s in slices if not _is_silent(s)]
                    entry["silent"] = len(slices) - len(keep)
                    if keep:
                        chunk = work / f"{number:06d}.npz"
                        np.savez_compressed(chunk, images=np.stack([codec.audio_to_image(s) for s in keep]),
                                            slices=np.array([i for i, s in enumerate(slices) if not _is_silent(s)]))
                        entry["chunk"] = chunk.name
                except (ValueError, OSError) as err:
                    entry["error"] = str(err)
                manifest.write(json.dumps(entry) + "\n")
                manifest.flush()
                done[key] = entry
            entry = done[key]
            if "error" in entry:
                report.skipped.append((key, entry["error"]))
                log(f"skipped {path}: {entry['error']}")
            else:
                report.files += 1
                report.silent += entry["silent"]
            if on_file is not None:
                on_file()
    report.slices = _write_dataset(data_dir, work, [done[str(p.relative_to(audio_dir))] for p in files])
    return report


def _write_dataset(data_dir: Path, work: Path, entries: list[dict]) -> int:
    from datasets import ClassLabel, Dataset, Features, Image, Value
    from PIL import Image as PILImage

    genres = sorted({e["genre"] for e in entries if e.get("chunk")})
    features = Features({"image": Image(), "audio_file": Value("string"), "slice": Value("int32"),
                         "genre": ClassLabel(names=genres or ["unlabelled"])})

    def rows():
        for entry in entries:
            if not entry.get("chunk"):
                continue
            with np.load(work / entry["chunk"]) as data:
                for image, index in zip(data["images"], data["slices"]):
                    yield {"image": PILImage.fromarray(image), "audio_file": entry["file"], "slice": int(index),
                           "genre": entry["genre"]}

    dataset = Dataset.from_generator(rows, features=features)
    dataset.save_to_disk(str(data_dir / "dataset"))
    return len(dataset)


def is_held_out(audio_file: str) -> bool:
    """About one file in ten, fixed by its name, is kept out of training for evaluation."""
    return int(hashlib.sha1(audio_file.encode()).hexdigest()[:8], 16) % 10 == 0


@dataclass
class Split:
    """Rows of a prepared data set: images, genre labels, and where each slice came from."""

    images: np.ndarray  # uint8 (N, H, W)
    labels: np.ndarray  # int64 (N,)
    genres: list[str]
    files: list[str]  # audio file, relative to the audio folder
    slices: list[int]  # slice index within its file


def load_split(data_dir: Path, split: str = "all") -> Split:
    """The rows of a prepared data set.

    ``split``: "all", "train" or "heldout" (whole files, by ``is_held_out``; when a small
    data set has no such file, its first file is held out).
    """
    from datasets import load_from_disk

    if split not in ("all", "train", "heldout"):
        raise ValueError(f"unknown split {split!r}")
    path = Path(data_dir) / "dataset"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no prepared data set (run python -m training prepare first)")
    dataset = load_from_disk(str(path))
    files = dataset["audio_file"]
    held = {f for f in set(files) if is_held_out(f)} or {min(files)}
    if split == "all":
        rows = range(len(files))
    else:
        rows = [i for i, f in enumerate(files) if (f in held) == (split == "heldout")]
    subset = dataset.select(rows).with_format("numpy")
    images = np.stack([np.asarray(i) for i in subset["image"]]).astype(np.uint8) if len(subset) else \
        np.zeros((0, 0, 0), np.uint8)
    return Split(images, np.asarray(subset["genre"], dtype=np.int64), dataset.features["genre"].names,
                 [str(f) for f in subset["audio_file"]], [int(i) for i in subset["slice"]])


def load_images(data_dir: Path, split: str = "all"):
    """(uint8 images (N, H, W), genre labels (N,), genre names) of a prepared data set (see ``load_split``)."""
    rows = load_split(data_dir, split)
    return rows.images, rows.labels, rows.genres


def audio_source(data_dir: Path) -> Path | None:
    """The audio folder a data set was prepared from, where ``prepare`` recorded it."""
    record = Path(data_dir) / ".prepare" / "source.json"
    return Path(json.loads(record.read_text())["audio_dir"]) if record.is_file() else None
