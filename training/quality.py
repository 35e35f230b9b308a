"""Would a DJ play it: three figures of a loop's sound, and a model's loops beside its ceiling.

Per loop (mono, peak-normalised, at 22050 Hz):

* transient sharpness: 95th percentile over median of the onset strength
  (hop 512). Crisp hits with quiet between them score high, smear low.
* tonal peak share: the harmonic part of |STFT| (n_fft 4096, hop 512, HPSS),
  averaged over time between 40 and 2000 Hz; the share of its magnitude in
  its top 5% of frequency bins. Bass lines and chords concentrate it, noise
  spreads it. (Magnitude, not energy: squared, it saturates on anything with
  a bass line, 0.92-0.99 on corpus clips against 0.08 for white noise;
  unsquared 0.32-0.82 against 0.07.)
* beat steadiness: the highest normalised autocorrelation of the onset
  envelope at beat periods of 0.25-1.5 s (near 0 for noise).

Per genre, the model's loops are made the way the live worker makes them
(the model's steps and sampler, the fitted canvas, the image path at the
genre's tempo), and set beside two references from the held-out files:

* the ceiling: held-out slices encoded to the model's own images and made
  into loops by the same path. A perfect model of the representation
  sounds like this;
* the corpus: the same slices' original audio.

The ratios are taken against the ceiling through the loop path, as that
path's own losses (the stretch, the live Griffin-Lim's 16 iterations) are no
model's doing. The same slices decoded whole by the codec (32 iterations, no
stretch) are reported beside it ("whole-slice ceiling").

The targets of "Loops a DJ would play": loops reach 0.6 of the ceiling's
sharpness, 0.8 of its tonal peak share and 0.9 of the corpus's steadiness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATE = 22050
HOP = 512
FIGURES = ("sharpness", "tonal", "steadiness")
# figure -> (reference it is held against, share of it to reach)
TARGETS = {"sharpness": ("ceiling", 0.6), "tonal": ("ceiling", 0.8), "steadiness": ("corpus", 0.9)}
TITLES = {"sharpness": "transient sharpness", "tonal": "tonal peak share", "steadiness": "beat steadiness"}


def _prepared(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    from livegen.loops import resample

    audio = np.asarray(audio, dtype=np.float32)
    if sample_rate != RATE:
        audio = resample(audio, sample_rate, RATE)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return audio / peak if peak > 0 else audio


def onset_envelope(audio: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.onset.onset_strength(y=audio, sr=RATE, hop_length=HOP)


def transient_sharpness(envelope: np.ndarray, cap: float = 100.0) -> float:
    """p95 over median of the onset strength, at most ``cap``: hits over digital silence have a median
    of 0 (real ceilings measure 10-40)."""
    p95 = float(np.percentile(envelope, 95))
    return p95 / max(float(np.median(envelope)), p95 / cap) if p95 > 0 else 0.0


def tonal_peak_share(audio: np.ndarray, low: float = 40.0, high: float = 2000.0, top: float = 0.05) -> float:
    import librosa

    magnitude = np.abs(librosa.stft(audio, n_fft=4096, hop_length=HOP))
    harmonic, _ = librosa.decompose.hpss(magnitude)
    frequencies = librosa.fft_frequencies(sr=RATE, n_fft=4096)
    spectrum = harmonic[(frequencies >= low) & (frequencies <= high)].mean(axis=1)
    total = float(spectrum.sum())
    if total <= 0:
        return 0.0
    count = max(1, int(np.ceil(top * len(spectrum))))
    return float(np.sort(spectrum)[-count:].sum() / total)


def autocorrelation(envelope: np.ndarray) -> np.ndarray:
    centred = envelope - envelope.mean()
    full = np.correlate(centred, centred, mode="full")[len(centred) - 1:]
    return full / full[0] if full[0] > 0 else np.zeros_like(full)


def steadiness_of(envelope: np.ndarray, low: float = 0.25, high: float = 1.5) -> float:
    ac = autocorrelation(envelope)
    frames_per_second = RATE / HOP
    lo, hi = int(low * frames_per_second), min(int(high * frames_per_second) + 1, len(ac))
    return float(max(ac[lo:hi].max(), 0.0)) if hi > lo else 0.0


def loop_figures(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The three figures of one loop or clip (see the module docstring)."""
    audio = _prepared(audio, sample_rate)
    envelope = onset_envelope(audio)
    return {"sharpness": transient_sharpness(envelope), "tonal": tonal_peak_share(audio),
            "steadiness": steadiness_of(envelope)}


def beat_steadiness(audio: np.ndarray, sample_rate: int) -> float:
    return steadiness_of(onset_envelope(_prepared(audio, sample_rate)))


# ------------------------------------------------------------------ per genre
@dataclass
class Example:
    """One loop or clip kept for the listening page."""

    label: str
    image: np.ndarray
    audio: np.ndarray
    sample_rate: int
    figures: dict[str, float]


@dataclass
class GenreQuality:
    bpm: float | None
    generated: dict[str, float]  # figure -> mean over the loops
    ceiling: dict[str, float]
    whole_slice: dict[str, float]  # the ceiling's slices decoded whole by the codec
    corpus: dict[str, float]  # empty when the original audio was not found
    loops: int
    dropped: int  # generated slices the loop prep could not cut (no beat): the worker would draw again
    examples: dict[str, list[Example]] = field(default_factory=dict, repr=False)  # "generated"/"ceiling"

    def ratio(self, figure: str) -> float | None:
        reference = getattr(self, TARGETS[figure][0]).get(figure)
        return self.generated[figure] / reference if reference else None

    def met(self, figure: str) -> bool | None:
        ratio = self.ratio(figure)
        return None if ratio is None else ratio >= TARGETS[figure][1]


def _mean_figures(figures: list[dict[str, float]]) -> dict[str, float]:
    return {name: float(np.mean([f[name] for f in figures])) for name in FIGURES} if figures else {}


def genre_tempo(genre: str | None) -> float | None:
    """The shipped genre preset's tempo (the middle of its range), if a preset of that name exists."""
    from livegen.presets import PresetError, load_genre

    if genre is None:
        return None
    try:
        return load_genre(genre).tempo_hint
    except PresetError:
        return None


def live_loops(model, images_or_none, *, label: int | list[int] | None, seeds: list[int], steps: int, sampler: str,
               bpm: float | None, bars: int = 4, eta: float = 0.0):
    """(images, loops or LoopErrors) as the live worker makes them: the fitted canvas for ``bars`` bars at
    ``bpm``, the model's sampler (and DDIM eta), the image path with the live Griffin-Lim iterations. With
    ``images_or_none`` given, those images go through the same loop prep instead (the ceiling). ``label``:
    one for every seed, or a list of one each."""
    from livegen.diffusion import decode_images, generate
    from livegen.loops import bar_choices, loops_from_images
    from livegen.loops.fromimage import LIVE_ITERATIONS
    from livegen.render import loop_canvas

    images = images_or_none
    if images is None:
        width = loop_canvas(model, "fit", bars, bpm, bpm)
        x = generate(model, seeds, steps=steps, sampler=sampler, eta=eta, width=width,
                     class_labels=label if label is None or isinstance(label, list) else [label] * len(seeds))
        images = decode_images(model, x)
    loops = loops_from_images(list(images), model.mel, bpm=bpm, device=model.device, n_iter=LIVE_ITERATIONS,
                              bar_choices=bar_choices(bars), grid=model.grid)
    return images, loops


def asked_labels(model, genre: str | int | None, count: int, keys: list[str] | None = None) -> list[int] | None:
    """The class labels of ``count`` loops of a genre: with ``keys``, a key-conditioned model's loops ask
    for each in turn."""
    if not model.is_class_conditional:
        return None
    return [model.class_label(genre, keys[i % len(keys)] if keys else None) for i in range(count)]


def measure_quality(model, data_dir: Path, *, count: int = 8, steps: int, sampler: str, eta: float = 0.0,
                    seed: int = 1000, keys: list[str] | None = None,
                    corpus_dir: Path | None = None, bpm: float | None = None, examples: int = 3,
                    log=lambda message: None) -> dict[str, GenreQuality]:
    """Per genre of the model (one "all" for an unconditional model): its loops' figures beside the ceiling
    and the corpus. ``bpm``: the tempo of every loop (default: each genre preset's); ``keys``: Camelot
    codes a key-conditioned model's loops ask for in turn (default: none, its "any" key)."""
    from livegen.audio import MelCodec
    from livegen.loops import LoopError

    from .prepare import audio_source, load_split

    rows = load_split(data_dir, "heldout")
    if rows.grid != model.grid:
        raise ValueError(f"{data_dir}: the data set's grid ({rows.grid}) is not the model's ({model.grid}); "
                         "the ceiling must be drawn the way the model draws")
    corpus_dir = corpus_dir or audio_source(data_dir)
    rng = np.random.default_rng(seed)
    genres = model.class_names if model.is_class_conditional else ["all"]
    result = {}
    for index, genre in enumerate(genres):
        tempo = bpm or genre_tempo(genre if genre != "all" else None)
        seeds = list(range(seed, seed + count))
        label = asked_labels(model, genre if genre != "all" else None, count, keys)
        images, loops = live_loops(model, None, label=label, seeds=seeds, steps=steps, sampler=sampler, bpm=tempo,
                                   eta=eta)
        generated = []
        for s, image, loop in zip(seeds, images, loops):
            if not isinstance(loop, LoopError):
                generated.append(Example(f"generated, seed {s}", image, loop.audio, loop.sample_rate,
                                         loop_figures(loop.audio, loop.sample_rate)))

        if genre == "all":
            candidates = np.arange(len(rows.images))
        else:
            candidates = np.flatnonzero(np.asarray(rows.genres)[rows.labels] == genre)
        chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False) if len(candidates) else []
        _, real_loops = live_loops(model, rows.images[chosen], label=None, seeds=[], steps=steps, sampler=sampler,
                                   bpm=tempo) if len(chosen) else (None, [])
        ceiling, corpus = [], []
        whole = [loop_figures(a, model.mel.sample_rate)
                 for a in MelCodec(model.mel).images_to_audio(rows.images[chosen])] if len(chosen) else []
        for row, loop in zip(chosen, real_loops):
            name = f"{rows.files[row]} slice {rows.slices[row]}"
            if not isinstance(loop, LoopError):
                ceiling.append(Example(f"ceiling, {name}", rows.images[row], loop.audio, loop.sample_rate,
                                       loop_figures(loop.audio, loop.sample_rate)))
            original = _original_audio(corpus_dir, rows, row, model.mel)
            if original is not None:
                corpus.append(loop_figures(original, model.mel.sample_rate))
        quality = GenreQuality(
            bpm=tempo, generated=_mean_figures([e.figures for e in generated]),
            ceiling=_mean_figures([e.figures for e in ceiling]), whole_slice=_mean_figures(whole),
            corpus=_mean_figures(corpus),
            loops=len(generated), dropped=len(loops) - len(generated),
            examples={"generated": generated[:examples], "ceiling": ceiling[:examples]})
        log(f"{genre}: {quality.loops} loops ({quality.dropped} dropped), {len(ceiling)} ceiling, "
            f"{len(corpus)} corpus slices")
        result[genre] = quality
    return result


def _original_audio(corpus_dir: Path | None, rows, row: int, mel) -> np.ndarray | None:
    """The original audio of a data set's row (a whole slice, or a grid window), if the file is there."""
    from .prepare import read_audio

    path = Path(corpus_dir) / rows.files[row] if corpus_dir is not None else None
    if path is None or not path.is_file():
        return None
    if rows.grid is not None:
        seconds = rows.grid.bars * rows.grid.beats_per_bar * 60.0 / rows.bpms[row]
    else:
        seconds = mel.slice_size / mel.sample_rate
    start = int(round(rows.starts[row] * mel.sample_rate))
    audio = read_audio(path, mel.sample_rate)[start:start + int(round(seconds * mel.sample_rate))]
    return audio if len(audio) else None


def quality_table(quality: dict[str, GenreQuality]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per genre and figure, loops / reference (ratio, target met or not)."""
    header = ["genre", "BPM", "loops (dropped)"] + [
        f"{TITLES[f]}: loops / {TARGETS[f][0]} (ratio; target {TARGETS[f][1]})" for f in FIGURES] + [
        "whole-slice ceiling: sharpness, tonal"]
    rows = []
    for genre, q in quality.items():
        row = [genre, f"{q.bpm:.0f}" if q.bpm else "detected", f"{q.loops} ({q.dropped})"]
        for figure in FIGURES:
            reference = getattr(q, TARGETS[figure][0]).get(figure)
            mine = q.generated.get(figure)
            if mine is None or reference is None:
                row.append("n/a")
                continue
            mark = "met" if q.met(figure) else "not met"
            row.append(f"{mine:.2f} / {reference:.2f} ({q.ratio(figure):.2f}, {mark})")
        row.append(f"{q.whole_slice['sharpness']:.2f}, {q.whole_slice['tonal']:.2f}" if q.whole_slice else "n/a")
        rows.append(row)
    return header, rows
