"""Grid models: every image is whole bars from the downbeat, a fixed number of mel frames a beat.

A grid model's ``livegen.json`` declares its grid::

    "grid": {"beats_per_bar": 4, "bars": 4, "frames_per_beat": 16}

Its images are exactly ``bars x beats_per_bar x frames_per_beat`` frames wide,
frame 0 centred on the downbeat (``training prepare --grid`` makes such data).
So its loops need no beat finding and lose no slice to a beat not found: the
loop prep cuts whole bars from frame 0, stretches them to the set's tempo and
inverts them. The loop point is seamless because the image wraps: what
follows its last frame is its first (the next downbeat), and that is what is
crossfaded over the loop's start. Models without a grid keep the
beat-finding path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .prep import Cut, LoopError

DEFAULT_BPM = 120.0  # a grid image's tempo when neither the set nor the genre gives one


@dataclass(frozen=True)
class Grid:
    beats_per_bar: int = 4
    bars: int = 4
    frames_per_beat: int = 16

    @property
    def frames(self) -> int:
        """The image's width: every frame of its bars."""
        return self.bars * self.beats_per_bar * self.frames_per_beat

    @classmethod
    def from_dict(cls, data) -> "Grid":
        """A grid from its JSON object; ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"grid must be an object like {asdict(cls())}, not {data!r}")
        unknown = set(data) - set(asdict(cls()))
        if unknown:
            raise ValueError(f"grid has unknown key(s) {', '.join(sorted(unknown))}")
        values = {**asdict(cls()), **data}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"grid {key} must be a whole number from 1, not {value!r}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def grid_cut(grid: Grid, width: int, config, *, bpm: float, out_rate: int, bar_choices: tuple[int, ...],
             seam_seconds: float) -> Cut:
    """The cut of a grid image ``width`` frames wide: the most whole bars (of ``bar_choices``, from the
    downbeat at frame 0) it holds, played at ``bpm``. Positions are in samples as the image would decode at
    the codec's hop; the seam margin is what follows the bars (the image wraps round at its end)."""
    period = grid.frames_per_beat * config.hop_length  # samples a beat, decoded at the codec's hop
    fitting = [bars for bars in bar_choices if bars * grid.beats_per_bar * grid.frames_per_beat <= width]
    if not fitting:
        raise LoopError(f"a grid image of {width} frames holds no {min(bar_choices)} bar(s) of "
                        f"{grid.beats_per_bar} x {grid.frames_per_beat} frames")
    if not 0 < bpm:
        raise LoopError(f"tempo must be above 0, not {bpm}")
    bars = max(fitting)
    last = bars * grid.beats_per_bar * period
    seam = max(1, int(seam_seconds * config.sample_rate))
    return Cut(bars=bars, beats_per_bar=grid.beats_per_bar, bpm=float(bpm), sample_rate=config.sample_rate,
               out_rate=out_rate, first=0, last=last, lo=0, hi=last + seam, use_tail=True,
               target_frames=int(round(bars * grid.beats_per_bar * 60.0 / bpm * out_rate)))
