"""Mel inversion: livegen's torch fast Griffin-Lim vs librosa's mel_to_audio.

Synthetic test clips (drums and bass, a chord, an arpeggio) are encoded to
uint8 spectrograms with livegen's codec at 256 and 128 mel bands, then
inverted by both with 32 iterations. Reported per 5.94 s clip: the median
time, the speed ratio, and the spectral convergence of each result against
the image's mel power (lower is better), plus our time per clip in a batch
of 8. The target: ours at least 5x faster, convergence within 5% of librosa's.

    .venv/bin/python bench/inversion.py               # 5 timed runs per cell
    .venv/bin/python bench/inversion.py --repeats 1   # a smoke test
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from benchkit import (machine_header, markdown_table, median, progress, publish, set_threads, timed,
                      use_checkout)

use_checkout()

from livegen.audio.griffinlim import spectral_convergence  # noqa: E402
from livegen.audio.mel import MelCodec, MelConfig  # noqa: E402

N_ITER = 32
MOMENTUM = 0.99  # librosa's default, which mel_to_audio does not let us change
BATCH = 8
SPEED_TARGET = 5.0  # ours at least this many times faster ...
CONVERGENCE_TOLERANCE = 0.05  # ... with spectral convergence at most this much worse (relative)

CONFIGS = {  # by mel bands
    256: MelConfig(),  # teticio's models
    128: MelConfig(y_res=128),  # livegen's "small" model
}


# --------------------------------------------------------------- test clips
def _place(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    end = min(len(out), start + len(sound))
    out[start:end] += sound[: end - start]


def _decay(seconds: float, rate: float, sr: int) -> np.ndarray:
    return np.exp(-rate * np.arange(int(seconds * sr)) / sr)


def _harmonic_note(freq: float, seconds: float, sr: int, harmonics: int, decay: float) -> np.ndarray:
    """A plucked or struck note: harmonics that fade faster the higher they are."""
    t = np.arange(int(seconds * sr)) / sr
    note = sum(np.sin(2 * np.pi * freq * k * t) * np.exp(-decay * k * t) / k for k in range(1, harmonics + 1))
    attack = np.minimum(1.0, t / 0.005)  # 5 ms, so the onset does not click
    return note * attack


def drums_and_bass(samples: int, sr: int, bpm: float = 120.0) -> np.ndarray:
    """Kick on every beat, snare on 2 and 4, hats on eighths, and a bass line."""
    rng = np.random.default_rng(0)
    beat = int(sr * 60 / bpm)
    t = np.arange(int(0.3 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(45 + 75 * np.exp(-30 * t)) / sr) * np.exp(-12 * t)
    snare = 0.5 * rng.standard_normal(len(t)) * np.exp(-25 * t) + 0.3 * np.sin(2 * np.pi * 185 * t) * np.exp(-30 * t)
    out = np.zeros(samples)
    for i, start in enumerate(range(0, samples, beat)):
        _place(out, start, kick)
        if i % 2 == 1:
            _place(out, start, snare)
        for hat_start in (start, start + beat // 2):
            hat = np.diff(rng.standard_normal(int(0.05 * sr)), prepend=0.0)  # differenced noise: bright
            _place(out, hat_start, 0.15 * hat * _decay(0.05, 80, sr))
        bass_notes = (55.0, 55.0, 43.65, 49.0)  # A1 A1 F1 G1, one per beat
        _place(out, start, 0.4 * _harmonic_note(bass_notes[i % 4], 60 / bpm, sr, harmonics=5, decay=1.5))
    return out


def chord(samples: int, sr: int, bpm: float = 120.0) -> np.ndarray:
    """A minor seventh, struck every two beats, with a slow vibrato."""
    out = np.zeros(samples)
    strike = int(sr * 2 * 60 / bpm)
    for start in range(0, samples, strike):
        for freq in (220.0, 261.63, 329.63, 392.0):
            _place(out, start, _harmonic_note(freq, 2 * 60 / bpm, sr, harmonics=8, decay=0.8))
    vibrato = 1 + 0.1 * np.sin(2 * np.pi * 5 * np.arange(samples) / sr)  # amplitude wobble, 5 Hz
    return out * vibrato


def arpeggio(samples: int, sr: int, bpm: float = 120.0) -> np.ndarray:
    """Sixteenth-note plucks up and down a pentatonic scale: many short pitched onsets."""
    scale = [261.63, 293.66, 329.63, 392.0, 440.0, 523.25, 587.33, 659.26]
    pattern = scale + scale[-2:0:-1]
    step = int(sr * 60 / bpm / 4)
    out = np.zeros(samples)
    for i, start in enumerate(range(0, samples, step)):
        _place(out, start, _harmonic_note(pattern[i % len(pattern)], 0.4, sr, harmonics=6, decay=6.0))
    return out


SIGNALS = {"drums + bass": drums_and_bass, "chord": chord, "arpeggio": arpeggio}


def test_images(config: MelConfig) -> dict[str, np.ndarray]:
    """Each test signal, one slice long, as the uint8 spectrogram the codec makes of it."""
    codec = MelCodec(config)
    images = {}
    for name, make in SIGNALS.items():
        audio = make(config.slice_size, config.sample_rate)
        audio = (0.9 * audio / np.abs(audio).max()).astype(np.float32)
        images[name] = codec.audio_to_images(audio)[0]
    return images


# ----------------------------------------------------------------- inverters
def invert_ours(codec: MelCodec, images: np.ndarray) -> np.ndarray:
    return codec.images_to_audio(images, n_iter=N_ITER, momentum=MOMENTUM)


def invert_librosa(codec: MelCodec, image: np.ndarray) -> np.ndarray:
    """What diffusers' Mel.image_to_audio does: dB pixels -> power -> librosa.feature.inverse.mel_to_audio."""
    import librosa

    cfg = codec.config
    power = librosa.db_to_power(image.astype(np.float64) * cfg.top_db / 255 - cfg.top_db)
    return librosa.feature.inverse.mel_to_audio(power, sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                                hop_length=cfg.hop_length, n_iter=N_ITER)


@dataclass
class Result:
    seconds: float  # median per clip
    convergence: float  # median spectral convergence (librosa's phase start is unseeded)


def measure(invert, image: np.ndarray, target_power: np.ndarray, config: MelConfig, repeats: int) -> Result:
    runs = [timed(invert, image) for _ in range(repeats)]
    convergences = [spectral_convergence(audio, target_power, config) for _, audio in runs]
    return Result(median(s for s, _ in runs), median(convergences))


# ----------------------------------------------------------------------- run
@dataclass
class Row:
    mel: str
    signal: str
    ours: Result
    librosa: Result

    @property
    def speedup(self) -> float:
        return self.librosa.seconds / self.ours.seconds

    @property
    def convergence_change(self) -> float:
        """Ours relative to librosa's; positive means ours is worse."""
        return self.ours.convergence / self.librosa.convergence - 1

    def cells(self) -> list[str]:
        return [self.mel, self.signal, f"{self.ours.seconds:.3f}", f"{self.librosa.seconds:.3f}",
                f"{self.speedup:.1f}x", f"{self.ours.convergence:.4f}", f"{self.librosa.convergence:.4f}",
                f"{100 * self.convergence_change:+.1f}%"]


HEADERS = ["mel (bands x frames)", "signal", "ours s/clip", "librosa s/clip", "speed-up",
           "convergence ours", "convergence librosa", "ours vs librosa"]
BATCH_HEADERS = ["mel (bands x frames)", "ours batch 1 s/clip", f"ours batch {BATCH} s/clip",
                 "librosa s/clip", f"speed-up at batch {BATCH}"]


def bench_config(config: MelConfig, repeats: int) -> tuple[list[Row], list[str]]:
    """One row per test signal, and the batch row of this config."""
    mel = f"{config.y_res} x {config.x_res}"
    codec = MelCodec(config)
    images = test_images(config)
    first = next(iter(images.values()))
    progress(f"{mel}: warm-up")
    invert_ours(codec, first)
    invert_librosa(codec, first)

    rows = []
    for signal, image in images.items():
        progress(f"{mel}: {signal}")
        target = codec.image_to_mel_power(image).numpy()
        rows.append(Row(mel, signal,
                        measure(lambda im: invert_ours(codec, im), image, target, config, repeats),
                        measure(lambda im: invert_librosa(codec, im), image, target, config, repeats)))
        progress("  " + " | ".join(rows[-1].cells()))

    batch = np.stack([list(images.values())[i % len(images)] for i in range(BATCH)])
    invert_ours(codec, batch)  # warm-up at the batch shape
    batch_seconds = median(timed(invert_ours, codec, batch)[0] for _ in range(repeats)) / BATCH
    ours_single = median(r.ours.seconds for r in rows)
    librosa_single = median(r.librosa.seconds for r in rows)
    batch_row = [mel, f"{ours_single:.3f}", f"{batch_seconds:.3f}", f"{librosa_single:.3f}",
                 f"{librosa_single / batch_seconds:.1f}x"]
    return rows, batch_row


def verdict(rows: list[Row]) -> str:
    slowest = min(r.speedup for r in rows)
    worst = max(r.convergence_change for r in rows)
    met = slowest >= SPEED_TARGET and worst <= CONVERGENCE_TOLERANCE
    return (f"**Target ({SPEED_TARGET:g}x faster, convergence within {100 * CONVERGENCE_TOLERANCE:g}%): "
            f"{'met' if met else 'NOT met'}** (smallest speed-up {slowest:.1f}x, "
            f"convergence at worst {100 * worst:+.1f}% vs librosa)")


def report(rows: list[Row], batch_rows: list[list[str]], repeats: int) -> str:
    config = MelConfig()
    details = [
        f"Clip: {config.slice_seconds:.2f} s ({config.x_res} frames, hop {config.hop_length}, "
        f"n_fft {config.n_fft}, {config.sample_rate} Hz); {N_ITER} iterations, momentum {MOMENTUM}",
        "ours: livegen MelCodec.images_to_audio (batched torch fast Griffin-Lim, pseudo-inverse filterbank) "
        "on the CPU; librosa: librosa.feature.inverse.mel_to_audio as diffusers' Mel.image_to_audio calls it",
        f"Median of {repeats} run(s) after a warm-up; convergence = spectral convergence on mel magnitudes "
        "against the image's mel power (lower is better; livegen.audio.griffinlim.spectral_convergence)",
    ]
    return "\n\n".join([
        machine_header("Mel inversion", details),
        markdown_table(HEADERS, [r.cells() for r in rows]),
        markdown_table(BATCH_HEADERS, batch_rows),
        verdict(rows),
    ])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell; the median is reported")
    parser.add_argument("--mels", nargs="+", type=int, choices=list(CONFIGS), default=list(CONFIGS),
                        help="mel band counts to run")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core); 1 on a shared machine")
    parser.add_argument("--output", default="inversion.md", help="file name under bench/results/")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main():
    args = parse_args()
    set_threads(args.threads)
    rows, batch_rows = [], []
    for mel in args.mels:
        config_rows, batch_row = bench_config(CONFIGS[mel], args.repeats)
        rows += config_rows
        batch_rows.append(batch_row)
    publish(report(rows, batch_rows, args.repeats), args.output)


if __name__ == "__main__":
    main()
