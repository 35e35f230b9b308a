"""A listening page: the evaluation's figures beside spectrograms and players for every clip.

Numbers alone cannot say whether loops sound good, so the evaluation writes a
plain HTML page (``index.html``, one PNG and one WAV per clip) that anyone can
open from disk or a static file server and listen through. The page is
self-contained: inline CSS, no JavaScript, nothing fetched from elsewhere.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Louder clips are scaled down to -1 dBFS so 16-bit PCM does not clip; quieter ones keep their level.
PEAK = 10 ** (-1 / 20)
MIN_HEIGHT = 128  # px: a 32-band spectrogram is too small to read at its own size
MIN_WIDTH = 256
# matplotlib's magma at 9 even steps; interpolated to 256 entries below.
_MAGMA_STOPS = np.array([
    (0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
    (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191),
], dtype=np.float64)
_MAGMA = np.stack([
    np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_MAGMA_STOPS)), _MAGMA_STOPS[:, c])
    for c in range(3)
], axis=1).round().astype(np.uint8)


@dataclass(frozen=True)
class Clip:
    """One thing to look at and listen to."""

    label: str  # e.g. "generated, seed 1000" or "ceiling, techno_0042.flac slice 1"
    image: np.ndarray  # uint8 mel spectrogram (H, W), row 0 = lowest mel band
    audio: np.ndarray  # float32 mono
    sample_rate: int
    note: str = ""  # optional short text under it, e.g. "sharpness 12.3"


def write_listening_page(out_dir: Path, title: str, figures: list[list[str]], header: list[str],
                         sections: dict[str, list[Clip]]) -> Path:
    """Write ``index.html`` with a PNG and a WAV per clip into ``out_dir``; return the page's path.

    ``figures`` are the rows of a table with ``header`` as its columns; ``sections``
    maps a section title to its clips, shown in order.
    """
    out_dir = Path(out_dir)
    for row in figures:
        if len(row) != len(header):
            raise ValueError(f"figures row {row!r} has {len(row)} cells for {len(header)} columns")
    out_dir.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>{html.escape(title)}</h1>", _table(header, figures)]
    for s, (section_title, clips) in enumerate(sections.items(), start=1):
        body.append(f"<h2>{html.escape(section_title)}</h2>")
        if not clips:
            body.append("<p>No clips.</p>")
            continue
        body.append('<div class="clips">')
        for c, clip in enumerate(clips, start=1):
            stem = f"section-{s}-clip-{c}"  # safe by construction: no user text in file names
            width, height = _write_png(clip.image, out_dir / f"{stem}.png")
            _write_wav(clip.audio, clip.sample_rate, out_dir / f"{stem}.wav")
            body.append(_figure(clip, stem, width, height))
        body.append("</div>")
    page = out_dir / "index.html"
    page.write_text(_PAGE.format(title=html.escape(title), body="\n".join(body)), encoding="utf-8")
    return page


def _write_png(image: np.ndarray, path: Path) -> tuple[int, int]:
    """Colour-map, flip (low bands at the bottom) and enlarge the spectrogram; return its size."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"{path.name}: expected a uint8 (H, W) spectrogram, got {image.dtype} {image.shape}")
    height, width = image.shape
    rows = -(-MIN_HEIGHT // height)  # ceil: whole repeats keep every band the same height
    cols = -(-MIN_WIDTH // width)
    pixels = _MAGMA[image[::-1]].repeat(rows, axis=0).repeat(cols, axis=1)
    Image.fromarray(pixels, "RGB").save(path)
    return width * cols, height * rows


def _write_wav(audio: np.ndarray, sample_rate: int, path: Path) -> None:
    """16-bit PCM; a diverged model's NaNs become silence rather than an unplayable file."""
    import soundfile as sf

    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if audio.ndim != 1:
        raise ValueError(f"{path.name}: expected mono audio, got shape {audio.shape}")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > PEAK:
        audio = audio * (PEAK / peak)
    sf.write(path, audio, sample_rate, subtype="PCM_16")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>\n"
                   for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _figure(clip: Clip, stem: str, width: int, height: int) -> str:
    label = html.escape(clip.label)
    note = f'<br><span class="note">{html.escape(clip.note)}</span>' if clip.note else ""
    return (
        "<figure>"
        f'<img src="{stem}.png" alt="mel spectrogram: {label}" width="{width}" height="{height}">'
        f'<audio controls preload="metadata" src="{stem}.wav"></audio>'
        f"<figcaption>{label}{note}</figcaption>"
        "</figure>"
    )


# The empty data: icon stops browsers asking the server for /favicon.ico.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
        color: #222; background: #fff; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 1em 0 2em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }}
th {{ background: #f3f3f3; }}
td {{ font-variant-numeric: tabular-nums; }}
.clips {{ display: flex; flex-wrap: wrap; gap: 1.5em; }}
figure {{ margin: 0; width: min(100%, 24em); }}
figure img {{ display: block; width: 100%; height: auto; image-rendering: pixelated; }}
figure audio {{ display: block; width: 100%; margin: 0.4em 0; }}
figcaption {{ font-size: 0.9em; }}
.note {{ color: #666; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
