"""Which pitch shift keeps a loop's sound best, for ``--key-mode shift`` and key up / key down.

Held-out demo-corpus clips (known keys) are moved by -3..+3 semitones three ways:

    rubberband   Rubber Band through pedalboard, crisp transients (livegen.loops.prep.shift_pitch, shipped)
    vocoder      librosa's phase vocoder and resampling (librosa.effects.pitch_shift)
    mel          the clip's mel image moved along its frequency axis before Griffin-Lim inversion, as a
                 worker could move a generated image; a 256-band codec, since 64 bands hold no key

Figures, each against the same clip unmoved by the same path (the mel path's reference is the clip
through the codec unmoved): the share whose key the learnt estimator reads as the moved key
(MIREX-weighted), transient sharpness kept (95th percentile over median of librosa's onset
strength, moved over unmoved), and the cost per second of audio.

    .venv/bin/python bench/pitchshift.py --clips 8 --palette /work/corpus/.palette.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from benchkit import machine_header, markdown_table, progress, publish, use_checkout

use_checkout()

from livegen.audio.mel import MelCodec  # noqa: E402
from livegen.diffusion.checkpoint import load_model  # noqa: E402
from livegen.loops.key import Key, mirex_score, parse_key  # noqa: E402
from livegen.loops.keynet import estimate_key_net, load_key_net  # noqa: E402
from livegen.loops.prep import Loop, shift_pitch  # noqa: E402
from livegen.presets import load_genre  # noqa: E402
from training.corpus import GENRES, RATE, build_corpus  # noqa: E402

SEED = 977  # bench/keys.py's held-out clips
SHIFTS = (-3, -2, -1, 1, 2, 3)


def sharpness(audio: np.ndarray) -> float:
    import librosa

    onset = librosa.onset.onset_strength(y=audio, sr=RATE, hop_length=512)
    return float(np.percentile(onset, 95) / max(np.median(onset), 1e-9))


def mel_shift(codec: MelCodec, audio: np.ndarray, semitones: int) -> np.ndarray:
    """The clip's mel images moved ``semitones`` along the mel axis (interpolated on band centre
    frequencies), then inverted as the live worker inverts a loop."""
    import librosa

    images = codec.audio_to_images(audio).astype(np.float32)
    bands = codec.config.y_res
    centres = librosa.mel_frequencies(n_mels=bands + 2, fmax=codec.config.sample_rate / 2)[1:-1]
    source = centres / 2 ** (semitones / 12)  # what each band holds after the move
    moved = np.stack([np.stack([np.interp(source, centres, column, left=0.0, right=0.0) for column in image.T], 1)
                      for image in images])
    return np.concatenate(list(codec.images_to_audio(np.clip(np.round(moved), 0, 255).astype(np.uint8),
                                                     n_iter=16)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8, help="clips a genre")
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/livegen-key-corpus"))
    parser.add_argument("--palette", type=Path, help="a rendered note palette to reuse (corpus/.palette.npz)")
    parser.add_argument("--output", default="pitchshift.md")
    args = parser.parse_args()

    import librosa

    build_corpus(args.corpus, clips_per_genre=args.clips, seed=SEED, palette_cache=args.palette)
    model = load_model(load_genre("techno").model, device="cpu")
    codec = MelCodec(dataclasses.replace(model.mel, y_res=256))
    net = load_key_net()
    methods = {
        "rubberband": lambda audio, s: shift_pitch(Loop(audio, RATE, 120.0, 1), s).audio,
        "vocoder": lambda audio, s: librosa.effects.pitch_shift(audio, sr=RATE, n_steps=s),
        "mel": lambda audio, s: mel_shift(codec, audio, s),
    }
    scores = {name: [] for name in methods}
    kept = {name: [] for name in methods}
    cost = {name: [] for name in methods}
    clips = 0
    for genre in GENRES:
        for clip in sorted((args.corpus / genre).glob("*.flac"))[:args.clips]:
            import soundfile

            audio, _ = soundfile.read(clip, dtype="float32")
            truth = parse_key(json.loads(clip.with_suffix(".json").read_text())["key"])
            references = {"rubberband": audio, "vocoder": audio, "mel": mel_shift(codec, audio, 0)}
            for name, shift in methods.items():
                reference = sharpness(references[name])
                for semitones in SHIFTS:
                    started = time.perf_counter()
                    moved = shift(audio, semitones)
                    cost[name].append((time.perf_counter() - started) / (len(audio) / RATE))
                    expected = Key((truth.tonic + semitones) % 12, truth.minor)
                    scores[name].append(mirex_score(estimate_key_net(moved, RATE, net).key, expected))
                    kept[name].append(sharpness(moved) / reference)
            clips += 1
            progress(f"{clips} clips")
    unmoved = np.mean([mirex_score(estimate_key_net(soundfile.read(c, dtype="float32")[0], RATE, net).key,
                                   parse_key(json.loads(c.with_suffix(".json").read_text())["key"]))
                       for g in GENRES for c in sorted((args.corpus / g).glob("*.flac"))[:args.clips]])
    rows = [[name, f"{np.mean(scores[name]):.3f}", f"{np.median(kept[name]):.2f}",
             f"{1000 * np.median(cost[name]):.0f}"] for name in methods]
    text = machine_header("Pitch shift: the key it lands in and the transients it keeps", [
        f"clips: {clips} held-out demo-corpus clips ({args.clips} a genre, corpus seed {SEED}), 12 s each, each "
        f"moved by {', '.join(f'{s:+d}' for s in SHIFTS)} semitones",
        "key: MIREX-weighted score of the learnt estimator's reading against the moved key "
        f"(the same clips unmoved: {unmoved:.3f})",
        "transients kept: median over clips and moves of the transient sharpness moved over unmoved (the mel "
        "path's unmoved reference has been through the codec too)",
        "mel: a 256-band codec (the shipped models have 64, which hold no key), Griffin-Lim 16 iterations",
    ]) + "\n\n" + markdown_table(["method", "key (weighted)", "transients kept", "ms per second of audio"], rows)
    publish(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
