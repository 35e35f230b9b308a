"""From a decoded slice to a stage-ready loop: beat grid, whole bars, tempo, seam, rate.

    slice audio --beat grid--> start + beat period --whole bars--> segment (+ a little beyond)
      --time-stretch (Rubber Band via pedalboard) to the target tempo--> --resample-->
      --cut to exactly bars * beats * 60 / bpm seconds--> --seam--> Loop

The seam: the audio just past the loop's end is the natural continuation of
its last sample, so it is crossfaded (equal power, a few ms) over the loop's
start. Played round, the end then runs into what followed it in the source:
no click at the loop point. Where the segment reaches the end of the slice,
the audio just before its start is crossfaded over its end instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

BAR_LENGTHS = (4, 2, 1)  # the loop lengths loop prep cuts, in bars, longest first
SEAM_SECONDS = 0.01  # the crossfade at a loop's loop point


def bar_choices(max_bars: int) -> tuple[int, ...]:
    """The loop lengths up to ``max_bars`` (1, 2 or 4): a slice too short for the longest gives the next."""
    if max_bars not in BAR_LENGTHS:
        raise ValueError(f"loop length must be 1, 2 or 4 bars, not {max_bars!r}")
    return tuple(bars for bars in BAR_LENGTHS if bars <= max_bars)


# How wide a slice the worker and ``livegen generate`` draw (``render.loop_canvas``): "fit", wide
# enough for the loop length at the tempo (``slice_seconds``), or "native", the model's own width.
CANVASES = ("fit", "native")
# A generated slice's tempo strays a little from its genre's: the room ``slice_seconds`` leaves for it.
TEMPO_ALLOWANCE = 0.02


def slice_seconds(bars: int, bpm: float | None = None, tempo_hint: float | None = None,
                  beats_per_bar: int = 4) -> float | None:
    """Seconds a slice must last to hold ``bars`` whole bars wherever its beats fall (None: unknown).

    At the tempo the slice is expected to have: ``tempo_hint`` (its genre's) folded toward ``bpm``
    as ``plan_cut`` folds what it detects, else ``bpm``. One beat more than the bars, as the first
    whole beat may start up to a beat in, at a tempo up to ``TEMPO_ALLOWANCE`` slower.
    """
    reference = bpm or tempo_hint
    if reference is None:
        return None
    tempo = fold_tempo(tempo_hint, reference) if tempo_hint else reference
    return (bars * beats_per_bar + 1) * 60.0 / (tempo * (1.0 - TEMPO_ALLOWANCE))


class LoopError(ValueError):
    """A slice that cannot become a loop (no steady beat, silent, NaN); the engine drops it."""


@dataclass(frozen=True)
class Loop:
    audio: np.ndarray  # float32, (frames,) mono
    sample_rate: int
    bpm: float
    bars: int
    beats_per_bar: int = 4
    loudness: float | None = None  # integrated LUFS, once measured (loudness.level)
    gain_db: float = 0.0  # what levelling gave it
    key: str | None = None  # Camelot code ("8A"), once estimated (key.with_key); None: no key, or not estimated
    key_confidence: float | None = None  # the estimate's confidence; None: not estimated
    pitch_shift: int = 0  # semitones it was moved to fit a set's key (key.fit_key)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class BeatGrid:
    start: float  # first beat, in samples
    period: float  # samples per beat
    count: int  # beats found


def check_audio(audio: np.ndarray, *, silence: float = 1e-4) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) == 0:
        raise LoopError(f"expected non-empty mono audio, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise LoopError("audio contains NaN or infinity")
    if np.abs(audio).max() < silence:
        raise LoopError("audio is silent")
    return audio


def find_beat_grid(audio: np.ndarray, sample_rate: int, *, expected_bpm: float = 120.0,
                   min_beats: int = 5) -> BeatGrid:
    """Beats by the beat tracker (``beats.track_beats``) on librosa's onset strength, regularised by a
    straight-line fit (beat index -> sample).

    ``expected_bpm`` centres the tracker's tempo prior: on a five-second slice
    the prior decides between readings such as 174 and 87 BPM, so the master
    tempo is passed in when there is one.
    """
    import librosa

    from .beats import track_beats

    tracker_hop = 512  # the median over bands: a steady tone has no onsets at all (the mean sees its wobble)
    envelope = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=tracker_hop, aggregate=np.median)
    beats = track_beats(envelope, sample_rate / tracker_hop, expected_bpm) * tracker_hop  # in samples
    period, start, count = fit_grid(beats, min_beats)
    # The tracker works on 23 ms frames, too coarse to loop on (2% tempo error
    # measured on a 120 BPM pattern). Refine on a finer onset envelope.
    hop = 128
    envelope = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop)
    period, start = refine_grid(envelope, hop, period, start, step=0.25)
    return BeatGrid(start=float(start), period=float(period), count=count)


def fit_grid(beats, min_beats: int = 5) -> tuple[float, float, int]:
    """(period, start, beats kept) of a straight line through tracked beat positions.

    Beats are numbered by the median gap (a skipped beat shows as a double gap),
    a line is fitted, beats far off it (trackers add stray ones at the edges)
    are dropped, and it is fitted again.
    """
    beats = np.asarray(beats, dtype=np.float64)
    if len(beats) < min_beats:
        raise LoopError(f"no steady beat: {len(beats)} beats found, {min_beats} needed")
    gap = float(np.median(np.diff(beats)))
    index = np.round((beats - beats[0]) / gap)
    for _ in range(2):
        period, start = np.polyfit(index, beats, 1)
        on_grid = np.abs(beats - (start + period * index)) < 0.1 * period
        beats, index = beats[on_grid], index[on_grid]
        if len(beats) < min_beats:
            raise LoopError(f"no steady beat: only {len(beats)} beats lie on one grid, {min_beats} needed")
    period, start = np.polyfit(index, beats, 1)
    if period <= 0:
        raise LoopError("no steady beat: beat positions do not advance")
    return float(period), float(start), len(beats)


def refine_grid(envelope: np.ndarray, hop: int, period: float, start: float,
                step: float = 0.25) -> tuple[float, float]:
    """Sharpen period and phase (in samples) on an onset envelope of ``hop``-sample frames.

    Period: the autocorrelation peak near the longest whole number of beats
    that fits twice in the slice, with parabolic interpolation. Phase: the
    offset (in steps of ``step`` frames) whose comb of beats collects the most
    onset strength, the envelope read between frames by linear interpolation.
    ``start`` is not used: the comb searches a whole beat.
    """
    envelope = np.asarray(envelope, dtype=np.float64)
    envelope = envelope - envelope.mean()
    frames_per_beat = period / hop
    beats_span = max(1, min(8, int(len(envelope) / 2 / frames_per_beat)))
    lag_guess = beats_span * frames_per_beat
    lo, hi = int(lag_guess * 0.96), int(np.ceil(lag_guess * 1.04)) + 1
    if hi + 1 < len(envelope):
        ac = np.array([np.dot(envelope[:-lag], envelope[lag:]) / (len(envelope) - lag) for lag in range(lo - 1, hi + 2)])
        best = int(np.argmax(ac[1:-1])) + 1
        a, b, c = ac[best - 1], ac[best], ac[best + 1]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
        frames_per_beat = (lo - 1 + best + shift) / beats_span
    offsets = np.arange(0, frames_per_beat, step)
    beats = np.arange(0, len(envelope) - 1 - offsets[-1], frames_per_beat)
    positions = offsets[:, None] + beats[None, :]  # (offsets, beats) in frames, all inside the envelope
    below = positions.astype(int)
    frac = positions - below
    combs = (envelope[below] * (1 - frac) + envelope[below + 1] * frac).sum(axis=1)
    phase = offsets[int(np.argmax(combs))]
    return frames_per_beat * hop, phase * hop


def fold_tempo(bpm: float, target: float) -> float:
    """The detected tempo halved or doubled to lie nearest the target (trackers often land an octave off)."""
    candidates = [bpm / 2, bpm, bpm * 2]
    return min(candidates, key=lambda c: abs(math.log(c / target)))


def _equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    phase = (np.arange(n, dtype=np.float32) + 0.5) / n * (np.pi / 2)
    return np.sin(phase), np.cos(phase)  # fade in, fade out


def _fade_over_start(body: np.ndarray, extra: np.ndarray) -> None:
    """The seam, in place: ``extra``, what followed ``body``'s end, fades out over its start."""
    fade_in, fade_out = _equal_power(len(extra))
    body[:len(extra)] = body[:len(extra)] * fade_in + extra * fade_out


def _stretch(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Change the length by 1/factor keeping pitch; factor 1 is a no-op."""
    if abs(factor - 1.0) < 1e-6:
        return audio
    from pedalboard import time_stretch

    out = time_stretch(audio[None, :].astype(np.float32), float(sample_rate), stretch_factor=float(factor),
                       high_quality=True)
    return out[0]


def shift_pitch(loop: Loop, semitones: int) -> Loop:
    """``loop`` moved ``semitones`` up (down if negative), its length and tempo kept: Rubber Band via
    pedalboard, transients kept crisp. It runs over the loop with the loop's own end before it and
    its start after it, and what came out past the end is seamed over the start (as loop prep
    seams), so the loop point stays seamless."""
    if semitones == 0:
        return loop
    from pedalboard import time_stretch

    audio = loop.audio
    wrap = min(len(audio), loop.sample_rate // 2)
    padded = np.concatenate([audio[-wrap:], audio, audio[:wrap]]).astype(np.float32)
    out = time_stretch(padded[None, :], float(loop.sample_rate), stretch_factor=1.0,
                       pitch_shift_in_semitones=float(semitones), high_quality=True, transient_mode="crisp")[0]
    body = out[wrap:wrap + len(audio)].copy()  # Rubber Band may give a few samples more or fewer
    body = np.pad(body, (0, len(audio) - len(body))) if len(body) < len(audio) else body
    extra = out[wrap + len(audio):wrap + len(audio) + int(SEAM_SECONDS * loop.sample_rate)]
    if len(extra):
        _fade_over_start(body, extra)
    return replace(loop, audio=np.ascontiguousarray(body, dtype=np.float32))


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio`` (..., samples) at ``to_rate``: soxr's high quality, ceil(samples x ratio) samples.

    soxr itself, not through librosa: librosa's resample imports its numba code (3.5 s in a new process).
    """
    if from_rate == to_rate:
        return audio
    import soxr

    audio = np.asarray(audio, dtype=np.float32)
    frames = audio.reshape(-1, audio.shape[-1]).T  # soxr takes (samples, channels)
    out = soxr.resample(frames, from_rate, to_rate, quality="HQ")
    length = int(math.ceil(audio.shape[-1] * to_rate / from_rate))
    out = out[:length] if len(out) >= length else np.pad(out, ((0, length - len(out)), (0, 0)))
    return np.ascontiguousarray(out.T, dtype=np.float32).reshape(*audio.shape[:-1], length)


@dataclass(frozen=True)
class Cut:
    """Where a loop lies in its source and what it becomes: the plan both loop paths carry out.

    Source positions are in samples at the source rate. The body ``[first, last)``
    is whole bars on the beat grid; the piece ``[lo, hi)`` is the body with the
    seam margin on one side. Stretched and resampled, the body becomes exactly
    ``target_frames`` samples at ``out_rate``.
    """

    bars: int
    beats_per_bar: int
    bpm: float  # the loop's tempo (the target)
    sample_rate: int  # the source's
    out_rate: int
    first: int
    last: int
    lo: int
    hi: int
    use_tail: bool  # True: the margin lies after the body (it fades over the start); False: before it
    target_frames: int

    @property
    def factor(self) -> float:
        """Source seconds per output second (above 1: the loop plays faster than its source)."""
        return ((self.last - self.first) / self.sample_rate) / (self.target_frames / self.out_rate)

    @property
    def margin(self) -> int:
        """The seam margin in output samples."""
        source = (self.hi - self.last) if self.use_tail else (self.first - self.lo)
        return int(round(source * self.target_frames / (self.last - self.first)))


def plan_cut(length: int, sample_rate: int, grid: BeatGrid, *, bpm: float | None = None,
             tempo_hint: float | None = None, out_rate: int | None = None, beats_per_bar: int = 4,
             bar_choices: tuple[int, ...] = BAR_LENGTHS,
             seam_seconds: float = SEAM_SECONDS, min_bpm: float = 50.0, max_bpm: float = 220.0) -> Cut:
    """The most whole bars (of ``bar_choices``) that a source of ``length`` samples holds on ``grid``.

    The detected tempo is folded by octaves toward ``bpm`` (the target), else ``tempo_hint``."""
    out_rate = out_rate or sample_rate
    detected = 60.0 * sample_rate / grid.period
    reference = bpm or tempo_hint
    tempo = fold_tempo(detected, reference) if reference else detected
    if not min_bpm <= tempo <= max_bpm:
        raise LoopError(f"no usable beat: tempo {tempo:.1f} BPM is outside {min_bpm:.0f}-{max_bpm:.0f}")
    period = 60.0 * sample_rate / tempo  # source samples per beat, after folding
    target_bpm = bpm or tempo
    seam = max(1, int(seam_seconds * sample_rate))

    for bars in sorted(bar_choices, reverse=True):
        span = bars * beats_per_bar * period
        # The grid may start a beat or so in: step back whole beats to start as early as possible.
        start = grid.start - math.floor(grid.start / period) * period
        while start + span > length and start >= period:
            start -= period
        if start + span <= length:
            break
    else:
        raise LoopError(f"no whole bar: {length / sample_rate:.2f}s holds no {min(bar_choices)} bar(s) "
                        f"at {tempo:.1f} BPM")

    first, last = int(round(start)), int(round(start + span))
    tail_after = min(length - last, seam)
    head_before = min(first, seam)
    use_tail = tail_after == seam or tail_after >= head_before
    return Cut(bars=bars, beats_per_bar=beats_per_bar, bpm=float(target_bpm), sample_rate=sample_rate,
               out_rate=out_rate, first=first, last=last,
               lo=first if use_tail else first - head_before, hi=last + tail_after if use_tail else last,
               use_tail=use_tail, target_frames=int(round(bars * beats_per_bar * 60.0 / target_bpm * out_rate)))


def finish_loop(piece: np.ndarray, cut: Cut) -> Loop:
    """The piece ``[cut.lo, cut.hi)``, already at the target tempo and ``cut.out_rate``, seamed and normalised.

    ``piece`` may run on past the margin (it is cut), or a few samples short
    (the body is padded with silence).
    """
    target_frames = cut.target_frames
    margin = max(0, min(cut.margin, len(piece) - target_frames))
    if cut.use_tail:
        body, extra = piece[:target_frames].copy(), piece[target_frames:target_frames + margin]
    else:
        body, extra = piece[margin:margin + target_frames].copy(), piece[:margin]
    if len(body) < target_frames:  # the stretcher came out a few samples short
        body = np.concatenate([body, np.zeros(target_frames - len(body), np.float32)])
    if len(extra) and cut.use_tail:
        _fade_over_start(body, extra)
    elif len(extra):  # what preceded the start fades in over the end
        fade_in, fade_out = _equal_power(len(extra))
        body[-len(extra):] = body[-len(extra):] * fade_out + extra * fade_in
    peak = np.abs(body).max()
    if not np.isfinite(peak) or peak < 1e-6:
        raise LoopError("loop came out silent or not finite")
    return Loop(audio=(body * (0.9 / peak)).astype(np.float32), sample_rate=cut.out_rate, bpm=cut.bpm,
                bars=cut.bars, beats_per_bar=cut.beats_per_bar)


def make_loop(audio: np.ndarray, sample_rate: int, *, bpm: float | None = None, out_rate: int | None = None,
              **options) -> Loop:
    """Cut ``audio`` to the most whole bars it holds, locked to ``bpm`` (Rubber Band stretch).

    Without ``bpm`` the loop keeps its detected tempo. The result is exactly
    ``bars * beats_per_bar * 60 / bpm`` seconds long at ``out_rate`` (rounded
    to a whole sample), peak-normalised, and seamless at its loop point.
    ``options``: those of ``plan_cut`` (bar_choices, beats_per_bar, seam_seconds,
    min_bpm, max_bpm). Generated images take ``loops_from_images`` instead.
    """
    audio = check_audio(audio)
    grid = find_beat_grid(audio, sample_rate, expected_bpm=bpm or 120.0)
    cut = plan_cut(len(audio), sample_rate, grid, bpm=bpm, out_rate=out_rate, **options)
    piece = resample(_stretch(audio[cut.lo:cut.hi], sample_rate, cut.factor), sample_rate, cut.out_rate)
    return finish_loop(piece, cut)


def raw_loop(audio: np.ndarray, sample_rate: int, *, out_rate: int | None = None) -> Loop:
    """The whole slice, uncut (untrained or non-rhythmic models); bpm 0 means unknown."""
    audio = check_audio(audio)
    out_rate = out_rate or sample_rate
    audio = resample(audio, sample_rate, out_rate)
    return Loop(audio=(audio * (0.9 / np.abs(audio).max())).astype(np.float32), sample_rate=out_rate,
                bpm=0.0, bars=0)
