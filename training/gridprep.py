"""Grid data: windows of whole bars from a downbeat, drawn at a fixed number of mel frames a beat.

    audio --tempo and downbeat (sidecar, else beat tracker)--> windows of N bars, hopping by a bar
      --mel power at a fine hop, read at the grid's frame times--> uint8 image (y_res, N x beats x frames)

A window starts on a downbeat and holds ``grid.bars`` bars; frame ``k`` of its
image is centred ``k / frames_per_beat`` beats after the downbeat, so every
image is in musical time: the kick of a four-to-the-floor pattern lands on
columns 0, 16, 32, ... whatever the record's tempo. The mel frames are read
off a 128-sample hop by linear interpolation of power, the same operation the
loop prep undoes when it stretches an image to the set's tempo.

Where the tempo and bar 0 come from:

* a sidecar JSON beside the audio (``clip.flac`` -> ``clip.json``) with
  ``bpm`` and optionally ``downbeat`` (seconds, default 0): the demo corpus
  writes one. Its bar 0 is t = 0, where its first kick is due (it is
  sometimes dropped, so the first onset is not a safe guide);
* else the beat tracker on the audio, a line fitted through the beats of
  each window, and the downbeat taken as the beat of the bar (of
  ``beats_per_bar``) with the most low-frequency onset strength: the kick.
  A window is unsure, skipped and counted, where fewer than 3 in 4 of the
  grid's beats have a tracked beat near them (a tenth of a beat), or where
  its onset envelope has no pulse at the beat: its autocorrelation at a lag
  of one beat under 0.3 (a tracker finds regular "beats" in noise too;
  drum patterns measure 0.5-0.9 there, noise under 0.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livegen.loops.grid import Grid

FINE_HOP = 128  # samples: mel frames read at the grid's times are interpolated from these
SURE_SHARE = 0.75  # of a window's beats that must have a tracked beat near them
NEAR = 0.1  # of a beat: how near a tracked beat must be
MIN_PULSE = 0.3  # the window's onset autocorrelation at one beat's lag


@dataclass(frozen=True)
class Window:
    start: float  # seconds: the downbeat it starts on
    beat: float  # seconds a beat


def read_sidecar(path: Path) -> dict:
    """The audio file's sidecar JSON (``tempo`` facts), or {} when it has none or it says nothing usable."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{sidecar}: not readable JSON ({err})") from None
    return data if isinstance(data, dict) else {}


def windows_from_tempo(duration: float, grid: Grid, bpm: float, downbeat: float = 0.0) -> list[Window]:
    """Every window of ``grid.bars`` bars from ``downbeat`` on, a bar apart, that lies wholly in the audio."""
    if not bpm > 0:
        raise ValueError(f"tempo must be above 0 BPM, not {bpm}")
    beat = 60.0 / bpm
    bar = beat * grid.beats_per_bar
    count = int(np.floor((duration - downbeat - grid.bars * bar) / bar + 1e-9)) + 1
    return [Window(downbeat + i * bar, beat) for i in range(max(0, count))]


def tracked_windows(audio: np.ndarray, sample_rate: int, grid: Grid,
                    expected_bpm: float = 120.0) -> tuple[list[Window], int]:
    """(windows, unsure windows skipped) from the beat tracker, each window's beats fitted by a line."""
    import librosa

    from livegen.loops import LoopError
    from livegen.loops.beats import track_beats
    from livegen.loops.prep import fit_grid

    hop = 512
    envelope = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop, aggregate=np.median)
    beats = track_beats(envelope, sample_rate / hop, expected_bpm) * hop / sample_rate  # seconds
    try:
        period, start, _ = fit_grid(beats)
    except LoopError:
        return [], 0
    kick = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop, fmax=150.0, n_mels=16)
    beat_frames = (start + period * np.arange(int((len(audio) / sample_rate - start) / period) + 1)) \
        * sample_rate / hop
    strength = np.interp(beat_frames, np.arange(len(kick)), kick, right=0.0)
    phase = int(np.argmax([strength[p::grid.beats_per_bar].mean() if len(strength[p::grid.beats_per_bar]) else 0
                           for p in range(grid.beats_per_bar)]))
    downbeat = start + phase * period
    bar = period * grid.beats_per_bar
    downbeat -= np.floor(downbeat / bar) * bar  # the earliest bar line in the audio
    windows, unsure = [], 0
    beats_in_window = grid.bars * grid.beats_per_bar
    for candidate in windows_from_tempo(len(audio) / sample_rate, grid, 60.0 / period, downbeat):
        expected = candidate.start + period * np.arange(beats_in_window)
        nearest = beats[np.abs(beats[None, :] - expected[:, None]).argmin(axis=1)] if len(beats) else expected + 1e9
        near = np.abs(nearest - expected) < NEAR * period
        span = slice(int(candidate.start * sample_rate / hop), int(expected[-1] * sample_rate / hop) + 1)
        if near.mean() < SURE_SHARE or _pulse(envelope[span], period * sample_rate / hop) < MIN_PULSE:
            unsure += 1
            continue
        local_period, local_start = np.polyfit(np.flatnonzero(near), nearest[near], 1)
        windows.append(Window(float(local_start), float(local_period)))
    return windows, unsure


def _pulse(envelope: np.ndarray, lag: float) -> float:
    """The envelope's normalised autocorrelation at ``lag`` frames (the best of the frames either side)."""
    centred = envelope - envelope.mean()
    energy = float(np.dot(centred, centred))
    if energy <= 0 or lag + 1 >= len(centred):
        return 0.0
    return max(float(np.dot(centred[:-k], centred[k:])) / energy
               for k in (int(lag), int(lag) + 1) if 0 < k < len(centred))


def grid_image(audio: np.ndarray, codec, grid: Grid, window: Window) -> np.ndarray:
    """The window's uint8 image (y_res, grid.frames): frame k centred k / frames_per_beat beats after its start."""
    config = codec.config
    rate = config.sample_rate
    times = window.start + np.arange(grid.frames) * window.beat / grid.frames_per_beat
    lo = max(0, int(times[0] * rate) - config.n_fft)
    hi = min(len(audio), int(np.ceil(times[-1] * rate)) + config.n_fft)
    power = codec.band_power(audio[lo:hi], hop_length=FINE_HOP)
    positions = np.clip((times * rate - lo) / FINE_HOP, 0, power.shape[1] - 1)
    below = np.minimum(positions.astype(int), power.shape[1] - 2)
    frac = positions - below
    return codec.mel_power_to_image(power[:, below] * (1 - frac) + power[:, below + 1] * frac)


def file_windows(path: Path, audio: np.ndarray, sample_rate: int, grid: Grid,
                 expected_bpm: float = 120.0) -> tuple[list[Window], int]:
    """(windows, unsure ones skipped) of one file: by its sidecar's tempo where it has one, else tracked."""
    facts = read_sidecar(path)
    if "bpm" in facts:
        try:
            bpm, downbeat = float(facts["bpm"]), float(facts.get("downbeat", 0.0))
        except (TypeError, ValueError):
            raise ValueError(f"{path.with_suffix('.json')}: bpm {facts['bpm']!r} is not a number") from None
        return windows_from_tempo(len(audio) / sample_rate, grid, bpm, downbeat), 0
    return tracked_windows(audio, sample_rate, grid, expected_bpm)
