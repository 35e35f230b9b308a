"""A folder of audio -> a dataset of mel images (Hugging Face ``datasets``, saved to disk).

Any wav/flac/mp3/ogg/m4a under the folder, at any rate and channel count, is
read as mono at the codec's rate and cut into whole slices; each slice becomes
one row: ``image`` (the uint8 spectrogram, as teticio's data sets store it),
``audio_file``, ``slice``, ``genre`` (the first sub-folder under the audio
folder, as a class label) and ``key`` (the Camelot code of the file's key
where its sidecar JSON gives one, as the demo corpus's do; else the key
estimator's read of the slice; "" for no key). Silent slices are skipped. A file that cannot be
read is reported by name and skipped.

With a ``grid`` (``--grid``), each row is instead a window of whole bars
from a downbeat at a fixed number of frames a beat (``gridprep``): ``slice``
numbers the windows, and ``start`` and ``bpm`` say where each lies. Windows
whose beat is unsure are skipped and counted.

Resumable: finished files are recorded in ``DATA_DIR/.prepare/`` with their
images, so a second run only reads what is new, then writes the data set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.audio import MelCodec, MelConfig
from livegen.loops.grid import Grid

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".m4a"}
SILENCE_DBFS = -60.0


@dataclass
class PrepareReport:
    files: int = 0
    slices: int = 0
    silent: int = 0
    unsure: int = 0  # grid windows skipped: their beat was not sure
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

    path = Path(path)
    problem = None
    with _decoder_messages() as notes:
        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception as error:  # libsndfile cannot read it (m4a, some mp3): try librosa's decoders
            try:
                import warnings

                import librosa

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    audio, rate = librosa.load(path, sr=None, mono=False)
                audio = np.atleast_2d(audio).T.astype(np.float32)
            except Exception:
                problem = _unreadable(path, error)
    if problem is not None:
        said = f"; the decoder said: {notes[0]}" if notes else ""
        raise ValueError(f"not readable audio ({problem}{said})")
    if audio.size == 0:
        raise ValueError("empty (no samples)")
    if not np.isfinite(audio).all():
        raise ValueError("contains NaN or infinite samples")
    return resample(audio.mean(axis=1), rate, sample_rate)


def _unreadable(path: Path, error: Exception) -> str:
    """What was wrong, in words that fit: libsndfile says "File does not exist or is not a regular file"
    of files that exist but hold nothing it can decode."""
    message = str(error)
    if path.is_file() and ("does not exist" in message or "not a regular file" in message):
        return (f"the file is there ({path.stat().st_size} bytes) but holds no {path.suffix.lstrip('.') or 'audio'} "
                "stream that libsndfile or librosa's decoders can read: damaged, or not what its name says")
    return message.removeprefix(f"Error opening {str(path)!r}: ")


@contextlib.contextmanager
def _decoder_messages():
    """Keep what the C decoders print (mpg123's "Illegal Audio-MPEG-Header" notes) off the user's terminal;
    yields a list that holds those lines afterwards, for the error message of a file that fails."""
    import tempfile

    notes: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield notes
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            notes.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def _is_silent(audio_slice: np.ndarray) -> bool:
    rms = float(np.sqrt(np.mean(np.square(audio_slice, dtype=np.float64))))
    return rms < 10 ** (SILENCE_DBFS / 20)


def prepare(audio_dir: Path, data_dir: Path, config: MelConfig, *, grid: Grid | None = None,
            expected_bpm: float = 120.0, on_file=None, log=print) -> PrepareReport:
    """Build (or finish building) the data set; returns what was done. ``grid``: a grid data set
    (``expected_bpm``: the beat tracker's prior for files with no sidecar tempo)."""
    audio_dir, data_dir = Path(audio_dir), Path(data_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: no such folder")
    if grid is not None and grid.frames != config.x_res:
        raise ValueError(f"a grid of {grid.bars} bars x {grid.beats_per_bar} beats x {grid.frames_per_beat} frames "
                         f"is {grid.frames} frames wide, the mel images {config.x_res}")
    work = data_dir / ".prepare"
    work.mkdir(parents=True, exist_ok=True)
    config_path, grid_path = work / "mel_config.json", work / "grid.json"
    if config_path.exists() and MelConfig.load(config_path) != config:
        raise ValueError(f"{config_path}: this data set was started with other mel settings; use a new DATA_DIR")
    if config_path.exists() and data_grid(data_dir) != grid:
        raise ValueError(f"{grid_path}: this data set was started with another grid (or none); use a new DATA_DIR")
    config.save(work)
    if grid is not None:
        grid_path.write_text(json.dumps(grid.to_dict()) + "\n")
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
                entry = {"file": key, "genre": genre_of(path, audio_dir), "chunk": None, "silent": 0, "unsure": 0}
                try:
                    audio = read_audio(path, config.sample_rate)
                    if grid is None:
                        pieces = _slices(codec, audio)
                    else:
                        pieces = _windows(path, audio, codec, grid, expected_bpm)
                        entry["unsure"] = pieces.pop("unsure")
                    entry["silent"] = pieces.pop("silent")
                    beats = grid.bars * grid.beats_per_bar if grid else 0
                    lengths = beats * 60.0 / pieces["bpms"] if grid else np.full(len(pieces["starts"]),
                                                                                   config.slice_seconds)
                    pieces["keys"] = _keys(path, audio, config.sample_rate, pieces["starts"], lengths)
                    if len(pieces["images"]):
                        chunk = work / f"{number:06d}.npz"
                        np.savez_compressed(chunk, **pieces)
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
                report.unsure += entry.get("unsure", 0)
            if on_file is not None:
                on_file()
    report.slices = _write_dataset(data_dir, work, [done[str(p.relative_to(audio_dir))] for p in files],
                                   config)
    return report


def _slices(codec: MelCodec, audio: np.ndarray) -> dict:
    """The file's whole slices that are not silent: images, slice numbers, start seconds."""
    slices = codec.slices(audio)
    keep = [i for i, s in enumerate(slices) if not _is_silent(s)]
    images = np.stack([codec.audio_to_image(slices[i]) for i in keep]) if keep else np.zeros((0, 1, 1), np.uint8)
    starts = np.array(keep, dtype=np.float64) * codec.config.slice_size / codec.config.sample_rate
    return {"images": images, "slices": np.array(keep, dtype=np.int64), "starts": starts,
            "bpms": np.full(len(keep), np.nan), "silent": len(slices) - len(keep)}


def _windows(path: Path, audio: np.ndarray, codec: MelCodec, grid: Grid, expected_bpm: float) -> dict:
    """The file's grid windows that are sure and not silent: images, window numbers, starts, tempi."""
    from .gridprep import file_windows, grid_image

    rate = codec.config.sample_rate
    windows, unsure = file_windows(path, audio, rate, grid, expected_bpm)
    keep = [i for i, w in enumerate(windows)
            if not _is_silent(audio[int(w.start * rate):int((w.start + w.beat * grid.bars * grid.beats_per_bar) * rate)])]
    images = np.stack([grid_image(audio, codec, grid, windows[i]) for i in keep]) if keep else \
        np.zeros((0, 1, 1), np.uint8)
    return {"images": images, "slices": np.array(keep, dtype=np.int64),
            "starts": np.array([windows[i].start for i in keep]), "bpms": np.array([60.0 / windows[i].beat for i in keep]),
            "silent": len(windows) - len(keep), "unsure": unsure}


def _keys(path: Path, audio: np.ndarray, rate: int, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each piece's key as a Camelot code ("" for none): the sidecar's key of the whole file, where it
    names one (or says ``"key": null``, drums alone), else the estimator's read of the piece's audio."""
    from livegen.loops.key import estimate_key, parse_key

    from .gridprep import read_sidecar

    facts = read_sidecar(path)
    if "key" in facts:
        try:
            code = "" if facts["key"] is None else parse_key(str(facts["key"])).camelot
        except ValueError as err:
            raise ValueError(f"{path.with_suffix('.json')}: {err}") from None
        return np.array([code] * len(starts), dtype=str)
    codes = []
    for start, seconds in zip(starts, lengths):
        estimate = estimate_key(audio[int(start * rate):int((start + seconds) * rate)], rate)
        codes.append("" if estimate.key is None else estimate.key.camelot)
    return np.array(codes, dtype=str)


def _write_dataset(data_dir: Path, work: Path, entries: list[dict], config: MelConfig) -> int:
    from datasets import ClassLabel, Dataset, Features, Image, Value
    from PIL import Image as PILImage

    genres = sorted({e["genre"] for e in entries if e.get("chunk")})
    if not genres:
        raise ValueError(f"{data_dir}: no usable slices: every file was unreadable, silent or without a sure beat "
                         "(what was found is kept in .prepare/)")
    features = Features({"image": Image(), "audio_file": Value("string"), "slice": Value("int32"),
                         "genre": ClassLabel(names=genres or ["unlabelled"]), "start": Value("float64"),
                         "bpm": Value("float64"), "key": Value("string")})

    def rows():
        for entry in entries:
            if not entry.get("chunk"):
                continue
            with np.load(work / entry["chunk"]) as data:
                # chunks written before starts were recorded hold whole slices
                starts = data["starts"] if "starts" in data.files else \
                    data["slices"] * config.slice_size / config.sample_rate
                bpms = data["bpms"] if "bpms" in data.files else np.full(len(starts), np.nan)
                keys = data["keys"] if "keys" in data.files else [None] * len(starts)  # chunks from before keys
                for image, index, start, bpm, key in zip(data["images"], data["slices"], starts, bpms, keys):
                    yield {"image": PILImage.fromarray(image), "audio_file": entry["file"], "slice": int(index),
                           "genre": entry["genre"], "start": float(start), "bpm": float(bpm),
                           "key": None if key is None else str(key)}

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
    slices: list[int]  # slice (or grid window) index within its file
    starts: list[float]  # seconds into its file
    bpms: list[float]  # a grid window's tempo (NaN for whole slices)
    grid: Grid | None  # the grid its images are on, if any
    keys: list[str | None]  # Camelot code, "" no key, None not known (prepared before keys were recorded)


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
    slices = [int(i) for i in subset["slice"]]
    if "start" in dataset.features:
        starts, bpms = [float(t) for t in subset["start"]], [float(b) for b in subset["bpm"]]
    else:  # prepared before starts were recorded: whole slices
        config = MelConfig.load(Path(data_dir) / ".prepare" / "mel_config.json")
        starts, bpms = [i * config.slice_size / config.sample_rate for i in slices], [float("nan")] * len(slices)
    keys = [None if k is None else str(k) for k in subset["key"]] if "key" in dataset.features else [None] * len(slices)
    return Split(images, np.asarray(subset["genre"], dtype=np.int64), dataset.features["genre"].names,
                 [str(f) for f in subset["audio_file"]], slices, starts, bpms, data_grid(data_dir), keys)


def load_images(data_dir: Path, split: str = "all"):
    """(uint8 images (N, H, W), genre labels (N,), genre names) of a prepared data set (see ``load_split``)."""
    rows = load_split(data_dir, split)
    return rows.images, rows.labels, rows.genres


def data_grid(data_dir: Path) -> Grid | None:
    """The grid a data set was prepared on (``prepare --grid``), or None for whole slices."""
    record = Path(data_dir) / ".prepare" / "grid.json"
    return Grid.from_dict(json.loads(record.read_text())) if record.is_file() else None


def data_codec(data_dir: Path) -> MelConfig | None:
    """The codec settings a data set was prepared with, where ``prepare`` recorded them."""
    record = Path(data_dir) / ".prepare" / "mel_config.json"
    return MelConfig.load(record) if record.is_file() else None


def audio_source(data_dir: Path) -> Path | None:
    """The audio folder a data set was prepared from, where ``prepare`` recorded it."""
    record = Path(data_dir) / ".prepare" / "source.json"
    return Path(json.loads(record.read_text())["audio_dir"]) if record.is_file() else None
