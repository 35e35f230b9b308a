"""Key estimation on held-out demo-corpus clips: the learnt estimator beside template matching, and their cost.

Clips are rendered fresh (``training.corpus``, a seed no training used), each labelled with the key
its chords and bass establish. Every clip is estimated as rendered, and through codecs of several
row counts and frequency scales (its images inverted by Griffin-Lim as the live worker inverts a
loop): what a generated loop of a model with that codec can at best sound like. Scored the MIREX way: 1 exact, 0.5 a fifth, 0.3
relative, 0.2 parallel.

    .venv/bin/python bench/keys.py --clips 16 --corpus /tmp/key-corpus
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
from livegen.loops.key import (PROFILES, compatible, key_from_profile, mirex_score, parse_key,  # noqa: E402
                               pitch_profile)
from livegen.loops.keynet import estimate_key_net, load_key_net  # noqa: E402
from livegen.presets import load_genre  # noqa: E402
from training.corpus import GENRES, RATE, build_corpus, load_kits, render_clip, render_palette  # noqa: E402

SEED = 977  # not the seed of any corpus a shipped model or the key estimator learnt from


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16, help="clips a genre")
    parser.add_argument("--drums-alone", type=int, default=4, help="clips a genre of drums alone (no key)")
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/livegen-key-corpus"))
    parser.add_argument("--palette", type=Path, help="a rendered note palette to reuse (corpus/.palette.npz)")
    parser.add_argument("--codecs", nargs="+", default=["mel:64", "mel:128", "mel:256", "semitone:64"],
                        help="codecs compared, as SCALE:ROWS (the genre models: mel:64; key-conditioned: semitone:64)")
    parser.add_argument("--output", default="keys.md")
    args = parser.parse_args()

    build_corpus(args.corpus, clips_per_genre=args.clips, seed=SEED, palette_cache=args.palette)
    model = load_model(load_genre("techno").model, device="cpu")
    codecs = {}
    for name in args.codecs:
        scale, _, rows = name.partition(":")
        codecs[f"{rows} {scale} rows"] = MelCodec(dataclasses.replace(model.mel, y_res=int(rows), frequency_scale=scale))
    rate = model.mel.sample_rate
    assert rate == RATE
    net = load_key_net()
    methods = ["net", *PROFILES]

    def estimates(audio) -> dict:
        """Each method's KeyEstimate of ``audio``, and each one's seconds per second of audio."""
        made, cost = {}, {}
        started = time.perf_counter()
        made["net"] = estimate_key_net(audio, rate, net)
        cost["net"] = time.perf_counter() - started
        started = time.perf_counter()
        energies = pitch_profile(audio, rate)
        cost["profiles"] = time.perf_counter() - started
        made.update({name: key_from_profile(energies, name) for name in PROFILES})
        return made, {k: v / (len(audio) / rate) for k, v in cost.items()}

    truths, costs = [], []
    read = {"rendered": [], **{name: [] for name in codecs}}
    for genre in GENRES:
        for clip in sorted((args.corpus / genre).glob("*.flac"))[:args.clips]:
            import soundfile

            audio, clip_rate = soundfile.read(clip, dtype="float32")
            assert clip_rate == rate, (clip, clip_rate)
            truths.append(parse_key(json.loads(clip.with_suffix(".json").read_text())["key"]))
            made, cost = estimates(audio)
            read["rendered"].append(made)
            costs.append(cost)
            for name, codec in codecs.items():
                through = np.concatenate(list(codec.images_to_audio(codec.audio_to_images(audio), n_iter=16)))
                read[name].append(estimates(through)[0])
        progress(f"{genre}: {len(truths)} clips so far")

    kits = load_kits()
    palette = render_palette(sorted({p for g in GENRES.values() for p in (*g.bass_program, *g.chord_program)}),
                             args.palette or args.corpus / ".palette.npz")
    drums = [estimates(render_clip(genre, kits, palette, np.random.default_rng([SEED, 99, index, clip]),
                                   tonal=False)[0])[0]
             for index, genre in enumerate(GENRES.values()) for clip in range(args.drums_alone)]

    rows = []
    for method in methods:
        for path in read:
            made = [m[method] for m in read[path]]
            scores = [mirex_score(e.key, t) for e, t in zip(made, truths)]
            exact = np.mean([e.key == t for e, t in zip(made, truths)])
            mixes = np.mean([e.key is not None and compatible(e.key, t) for e, t in zip(made, truths)])
            none = np.mean([e.key is None for e in made])
            alone = f"{np.mean([d[method].key is None for d in drums]):.2f}" if path == "rendered" else ""
            rows.append([method, path, f"{np.mean(scores):.3f}", f"{exact:.2f}", f"{mixes:.2f}", f"{none:.2f}", alone])
            progress(" | ".join(rows[-1]))
    modes = sum(t.minor for t in truths)
    text = machine_header("Key estimation on held-out demo-corpus clips", [
        f"clips: {len(truths)} ({args.clips} a genre, corpus seed {SEED}), {modes} minor and {len(truths) - modes} "
        f"major, 12 s each, and {len(drums)} clips of drums alone; rendered: the clip as made; N mel / semitone "
        "rows: its images through a codec of N rows on that frequency scale (the genre models': 64 mel; the "
        "key-conditioned ones': 64 semitone, livegen/audio/bands.py; otherwise the shipped settings) and "
        "Griffin-Lim (16 iterations, as the live worker)",
        "net: the learnt estimator (livegen.loops.keynet, livegen/loops/key-net; trained on clips of other seeds "
        "of the same corpus generator, as made, none through a codec); no key when that class wins or the winner's "
        "probability is under 0.5",
        "krumhansl, temperley, edma: template matching (livegen.loops.key.pitch_profile): the harmonic part (HPSS "
        "soft mask), librosa CQT chroma from C3 up 4 octaves, log-compressed and summed over the clip, correlated "
        "with the profile at the 12 tonics in both modes; under 0.5 correlation: no key",
        "weighted: MIREX score (1 exact, 0.5 fifth, 0.3 relative, 0.2 parallel); exact: share right; mixes: share "
        "read as a key that mixes with the true one (the same, a step round the Camelot wheel, the relative: "
        "what key-eval counts as a hit); "
        "no key: share read as having none; drums alone: share of the drums-alone clips read as no key",
        f"cost, ms per second of audio (median, one thread): net {1000 * np.median([c['net'] for c in costs]):.1f}, "
        f"templates {1000 * np.median([c['profiles'] for c in costs]):.1f}",
    ]) + "\n\n" + markdown_table(["method", "audio", "weighted", "exact", "mixes", "no key", "drums alone: no key"], rows)
    publish(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
