"""Does a key-conditioned model make loops in the key it is asked for?

For each genre and each asked key, loops are made as the live worker makes them (the genre's tempo,
the fitted canvas, the live Griffin-Lim) and their key is read by the key estimator. A loop hits
when the key read mixes with the one asked for (the same, a step round the Camelot wheel, or the
relative: ``compatible``); a loop read as no key misses. Beside that, as many loops made without a
key (the "any" label) are scored against the same asked keys: the chance level. With a data set,
its held-out windows through the codec, scored against their labelled keys: the most a model of
this codec can show.

    python -m training key-eval MODEL [--data DATA_DIR] --loops-per-key 2 --steps 6
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class KeyHits:
    """Shares over one genre's loops (or the ceiling's windows)."""

    loops: int = 0
    hit: float = float("nan")  # the key read mixes with the one asked for
    exact: float = float("nan")  # the key read is the one asked for
    no_key: float = float("nan")  # read as no key
    chance_hit: float = float("nan")  # loops made without a key, against the same asked keys
    chance_loops: int = 0


@dataclass
class KeyReport:
    model: str
    steps: int
    keys: list[str]
    genres: dict[str, KeyHits] = field(default_factory=dict)
    ceiling: KeyHits | None = None

    def overall(self) -> KeyHits:
        """All genres' loops together."""
        return _pooled(list(self.genres.values()))

    def table(self) -> str:
        lines = ["| genre | loops | in a mixing key | in the asked key | no key | made without a key: in a mixing key |",
                 "|---|---|---|---|---|---|"]
        rows = dict(self.genres)
        if self.genres:
            rows["all"] = self.overall()
        for name, hits in rows.items():
            lines.append(f"| {name} | {hits.loops} | {hits.hit:.2f} | {hits.exact:.2f} | {hits.no_key:.2f} | "
                         f"{hits.chance_hit:.2f} ({hits.chance_loops} loops) |")
        if self.ceiling is not None:
            c = self.ceiling
            lines.append(f"| ceiling (held-out windows through the codec) | {c.loops} | {c.hit:.2f} | "
                         f"{c.exact:.2f} | {c.no_key:.2f} | |")
        return "\n".join(lines)


def _pooled(parts: list[KeyHits]) -> KeyHits:
    def mean(name, weight):
        total = sum(getattr(p, weight) for p in parts)
        return sum(getattr(p, name) * getattr(p, weight) for p in parts) / total if total else float("nan")

    return KeyHits(loops=sum(p.loops for p in parts), hit=mean("hit", "loops"), exact=mean("exact", "loops"),
                   no_key=mean("no_key", "loops"), chance_hit=mean("chance_hit", "chance_loops"),
                   chance_loops=sum(p.chance_loops for p in parts))


def score_reads(reads: list, asked: list) -> tuple[float, float, float]:
    """(mixing share, exact share, no-key share) of estimated keys (None: no key) against asked ones."""
    from livegen.loops.key import compatible

    if not reads:
        return float("nan"), float("nan"), float("nan")
    hits = [r is not None and compatible(r, a) for r, a in zip(reads, asked)]
    exact = [r == a for r, a in zip(reads, asked)]
    return float(np.mean(hits)), float(np.mean(exact)), float(np.mean([r is None for r in reads]))


def measure_key_hits(model, *, keys: list[str] | None = None, loops_per_key: int = 2, steps: int,
                     sampler: str = "ddim", eta: float = 0.0, seed: int = 2000, data_dir: Path | None = None,
                     log=lambda message: None) -> KeyReport:
    from livegen.loops import LoopError
    from livegen.loops.key import KEY_CODES, estimate_key, parse_key

    from .quality import genre_tempo, live_loops

    if not model.is_key_conditional:
        raise ValueError(f"{model.name}: not key-conditioned (no key_names in its livegen.json)")
    keys = list(keys or KEY_CODES)
    asked_keys = [parse_key(k) for k in keys]
    report = KeyReport(model.name, steps, keys)

    def reads(label: int, seeds: list[int], bpm: float) -> list:
        _, loops = live_loops(model, None, label=label, seeds=seeds, steps=steps, sampler=sampler, bpm=bpm, eta=eta)
        return [estimate_key(loop.audio, loop.sample_rate).key for loop in loops if not isinstance(loop, LoopError)]

    for genre in model.class_names:
        bpm = genre_tempo(genre)
        got, asked = [], []
        for number, (code, key) in enumerate(zip(keys, asked_keys)):
            seeds = [seed + number * loops_per_key + i for i in range(loops_per_key)]
            made = reads(model.class_label(genre, code), seeds, bpm)
            got += made
            asked += [key] * len(made)
        unasked = reads(model.class_label(genre), list(range(seed, seed + len(keys) * loops_per_key)), bpm)
        # Each loop made without a key, against every asked key: the share a random draw would hit.
        chance = [score_reads([r] * len(asked_keys), asked_keys)[0] for r in unasked]
        hit, exact, no_key = score_reads(got, asked)
        report.genres[genre] = KeyHits(len(got), hit, exact, no_key, float(np.mean(chance)) if chance else float("nan"),
                                       len(unasked))
        log(f"{genre}: {len(got)} loops asked for a key, {hit:.2f} in a mixing key, {exact:.2f} in it; "
            f"without a key {report.genres[genre].chance_hit:.2f}")
    if data_dir is not None:
        report.ceiling = _ceiling(model, Path(data_dir), steps, sampler, log)
    return report


def _ceiling(model, data_dir: Path, steps: int, sampler: str, log) -> KeyHits:
    from livegen.loops import LoopError
    from livegen.loops.key import estimate_key, parse_key

    from .prepare import load_split
    from .quality import genre_tempo, live_loops

    rows = load_split(data_dir, "heldout")
    got, asked = [], []
    for index, genre in enumerate(rows.genres):
        chosen = [i for i in np.flatnonzero(rows.labels == index) if rows.keys[i]][:48]
        if not chosen:
            continue
        _, loops = live_loops(model, rows.images[chosen], label=None, seeds=[], steps=steps, sampler=sampler,
                              bpm=genre_tempo(genre))
        for row, loop in zip(chosen, loops):
            if not isinstance(loop, LoopError):
                got.append(estimate_key(loop.audio, loop.sample_rate).key)
                asked.append(parse_key(rows.keys[row]))
    if not got:
        raise ValueError(f"{data_dir}: no held-out windows with a key (prepared before keys were recorded?)")
    hit, exact, no_key = score_reads(got, asked)
    log(f"ceiling: {len(got)} held-out windows, {hit:.2f} in a mixing key, {exact:.2f} in theirs")
    return KeyHits(len(got), hit, exact, no_key)


def report_dict(report: KeyReport) -> dict:
    return asdict(report)
