"""The performer's dashboard: the engine's snapshot drawn in the terminal with rich.

It only reads plain data (the mapping ``Engine.snapshot()`` returns, the playing
loop's mel image and a log of recent events), never the engine itself, and it
imports neither the engine nor torch. Early in a set any key may be missing or
None, so every field is read defensively and shown as "–".

The layout is chosen when rich draws it, from the space it gets: panels side
by side on a big terminal, one line per topic on a small one. The audio
callback shares the GIL with whoever draws this, so the costly part (the
spectrogram, resampled and turned into coloured cells) is made once per loop
and reused every frame until the playing loop changes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from livegen.control.keyboard import KEY_HELP
from livegen.loops.key import key_label

DASH = "–"
BEATS_PER_BAR = 4  # the transport's bar; the snapshot does not carry it

# Below this the panels' borders cost more than they show: one line per topic instead.
COMPACT_WIDTH, COMPACT_HEIGHT = 60, 20
WIDE_WIDTH = 120  # room for three panels in the top row
HELP_HEIGHT = 30  # room for the key help line at the bottom
TOP_ROW = 6  # four lines of content and a border

# Level meters run over this range of dBFS (the level is the block's peak after gain).
METER_FLOOR_DB = -48.0
METER_YELLOW, METER_RED = 0.75, 0.9  # fractions of the meter: -12 dB and about -5 dB

FRAME_STYLE = "grey50"  # panel borders

SYNC_NAMES = {"internal": "internal clock", "midi": "MIDI clock", "link": "Ableton Link"}
WORKER_STYLES = {"ready": "green", "starting": "yellow", "loading": "yellow", "restarting": "bold red"}


# ------------------------------------------------------------ reading the snapshot
def _section(state: dict, key: str) -> dict:
    value = state.get(key)
    return value if isinstance(value, Mapping) else {}


def _fmt(value, spec: str = "") -> str:
    """The value formatted, or a dash when it is not there yet."""
    if value is None:
        return DASH
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _count(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _db(gain) -> str:
    try:
        return f"{20 * math.log10(gain):.1f} dB" if gain > 0 else "-∞ dB"
    except TypeError:
        return DASH


def _line(*parts: str | tuple[str, str] | Text) -> Text:
    """One line that never wraps: past the edge it ends in an ellipsis."""
    text = Text.assemble(*parts)
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


# ------------------------------------------------------------ pieces
def _beat_dots(beat) -> Text:
    dots = Text()
    for index in range(BEATS_PER_BAR):
        if index:
            dots.append(" ")
        lit = index == beat
        dots.append("●" if lit else "○", ("bold yellow" if index == 0 else "bold green") if lit else "dim")
    return dots


def _bar_number(bar) -> str:
    # The transport counts bars from 0; performers count from 1.
    return _fmt(bar + 1) if isinstance(bar, int) else _fmt(bar)


def _quantise(value) -> str:
    if value in (None, "off"):
        return "off" if value else DASH
    if value == "beat":
        return "beat"
    return f"{value} bar" + ("" if str(value) == "1" else "s")


def _auto(value) -> str:
    return f"{value} bars" if value else "off"


def _sound(state: dict) -> Text:
    """Steps and sampler; None in the snapshot means each genre preset's own, so show the playing loop's."""
    playing = _section(state, "playing")
    steps, sampler = state.get("steps"), state.get("sampler")
    text = Text("steps ")
    text.append(_fmt(steps if steps is not None else playing.get("steps")), "bold")
    text.append(" · ")
    text.append(_fmt(sampler if sampler is not None else playing.get("sampler")), "bold")
    if steps is None or sampler is None:
        text.append(" (preset)", "dim")
    return text


def _set_key(state: dict) -> Text:
    """The set's key and how launches keep to it: ``key 8A Am pick``, ``key auto …``, ``key off``."""
    rule = _section(state, "key")
    mode = rule.get("mode")
    if not rule or mode == "off":
        return Text("key off", "dim")
    text = Text("key ")
    text.append(rule.get("label") or ("auto …" if rule.get("auto") else DASH), "bold magenta")
    text.append(f" {mode}")
    return text


def _rtf(state: dict) -> Text:
    """Generation speed as a real-time factor: under 1 the worker cannot keep the buffers full."""
    rtf = state.get("realtime_factor")
    if not isinstance(rtf, (int, float)):
        return Text(DASH, "dim")
    style = "green" if rtf >= 1.5 else "yellow" if rtf >= 1.0 else "bold red"
    return Text(f"{rtf:.2f}× real time", style)


def _alarm(label: str, value) -> Text:
    """A counter that should stay at zero, red once it isn't."""
    count = _count(value)
    return Text.assemble(f"{label} ", (str(count), "bold red" if count else "green"))


def _dsp_load(value) -> Text:
    """The share of real time the audio callback spends on its blocks: yellow past a quarter, red past half."""
    if not isinstance(value, (int, float)):
        return Text("dsp -", style="dim")
    style = "bold red" if value > 0.5 else "yellow" if value > 0.25 else "green"
    return Text.assemble("dsp ", (f"{value * 100:.0f}%", style))


def _meter_fraction(level) -> float:
    if not isinstance(level, (int, float)) or level <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - 20 * math.log10(level) / METER_FLOOR_DB))


def _meter(level, width: int) -> Text:
    """A peak meter on a dB scale: green, then yellow, then red near full scale."""
    width = max(width, 1)
    lit = round(_meter_fraction(level) * width)
    yellow, red = round(width * METER_YELLOW), round(width * METER_RED)
    text = Text()
    for start, stop, colour in ((0, yellow, "green"), (yellow, red, "yellow"), (red, width, "red")):
        text.append("█" * max(0, min(stop, lit) - start), colour)
    text.append("░" * (width - lit), "grey30")
    return text


def _channel_labels(count: int) -> list[str]:
    if count == 2:
        return ["L", "R"]
    if count == 4:  # channels 3-4 are the cue pair
        return ["L", "R", "cL", "cR"]
    return [str(index + 1) for index in range(count)]


def _levels(state: dict) -> list[tuple[str, float | None]]:
    levels = state.get("levels")
    if isinstance(levels, (list, tuple)) and levels:
        return list(zip(_channel_labels(len(levels)), levels))
    return [("out", state.get("level"))]


def _filter(value) -> str:
    """-1..1: negative is a low-pass, positive a high-pass, 0 off."""
    if not isinstance(value, (int, float)):
        return DASH
    if abs(value) < 0.005:
        return "off"
    return f"{'LP' if value < 0 else 'HP'} {abs(value):.0%}"


def _recording(value) -> Text:
    if not value:
        return Text("rec off", "dim")
    return Text("● REC" + (f" {value}" if isinstance(value, str) else ""), "bold red")


def _cue(value) -> Text:
    if not value:
        return Text("cue off", "dim")
    return Text("CUE" + (f" {value}" if isinstance(value, str) else " on"), "bold yellow")


def _loudness(value) -> str:
    """A loudness in LUFS, or "peak" for a loop left at loop prep's peak (levelling off)."""
    return f"{value:.1f} LUFS" if isinstance(value, (int, float)) else "peak"


def _key(loop: dict) -> str:
    """``8A Am`` (Camelot code and name), ``no key``, or a dash for a loop whose key was not estimated."""
    if loop.get("key_confidence") is None:
        return DASH
    try:
        return key_label(loop.get("key"))
    except ValueError:  # a key this livegen cannot read: show it as it came
        return str(loop.get("key"))


def _loop_lines(marker: str, marker_style: str, loop: dict) -> list[Text]:
    """Two lines: what the loop is, then how it was made."""
    if not loop:
        return [_line((marker, marker_style), " ", ("none yet", "dim")), _line("")]
    return [_line((f"{marker} ", marker_style), (_fmt(loop.get("genre")), "bold"), f"  seed {_fmt(loop.get('seed'))}  ",
                  (_fmt(loop.get("mode")), "cyan")),
            _line(f"  {_fmt(loop.get('bars'))} bars  {_fmt(loop.get('bpm'), '.1f')} BPM  ",
                  (_key(loop), "bold magenta"), "  ", _loudness(loop.get("loudness")), "  ",
                  (f"{_fmt(loop.get('steps'))} steps {_fmt(loop.get('sampler'))}", "dim"))]


# ------------------------------------------------------------ panel contents
def transport_lines(state: dict) -> list[Text]:
    sync = _section(state, "sync")
    source = sync.get("source")
    return [
        _line((f"{_fmt(state.get('bpm'), '.1f')} BPM", "bold"), "  ", SYNC_NAMES.get(source, _fmt(source)),
              (f" {sync['detail']}" if sync.get("detail") else "", "dim")),
        _line("bar ", (_bar_number(state.get("bar")), "bold"), "  ", _beat_dots(state.get("beat")), "  ",
              _set_key(state)),
        _line("quantise ", (_quantise(state.get("quantise")), "bold"),
              "  auto ", (_auto(state.get("auto_bars")), "bold"),
              "  loops ≤", (_fmt(state.get("bars")), "bold"), " bars"),
        _line(_sound(state)),
    ]


def loop_lines(state: dict) -> list[Text]:
    return (_loop_lines("▶", "bold green", _section(state, "playing"))
            + _loop_lines("»", "yellow", _section(state, "next")))


def engine_lines(state: dict) -> list[Text]:
    worker = _section(state, "worker")
    worker_state = worker.get("state")
    controller = state.get("controller")
    return [
        _line("worker ", (_fmt(worker_state), WORKER_STYLES.get(worker_state, "yellow")), " on ",
              (_fmt(worker.get("device")), "bold"), (f" x{_fmt(worker.get('threads'))}", "dim"), "  ",
              _alarm("restarts", worker.get("restarts"))),
        _line("speed ", _rtf(state), (f"  {_count(worker.get('in_flight'))} in flight", "dim"),
              ("  compiled" if worker.get("compiled") else "", "dim"),
              (f"  +{worker['prep_processes']} prep" if worker.get("prep_processes") else "", "dim")),
        _line(_alarm("underflows", state.get("underflows")), "  ", _alarm("late launches", state.get("late_launches")),
              (f" of {_count(state.get('launches'))}", "dim"), "  ", _dsp_load(state.get("dsp_load"))),
        _line("controller ", (controller, "bold") if controller else ("none", "dim")),
    ]


def buffer_lines(state: dict, width: int) -> list[Text]:
    """One line per genre: how many finished loops wait, against the depth the worker keeps."""
    buffer, errors = _section(state, "buffer"), _section(state, "genre_errors")
    generated, dropped = _section(state, "generated"), _section(state, "dropped")
    names = list(buffer) + [name for name in errors if name not in buffer]
    if not names:
        return [_line(("no genres yet", "dim"))]
    depth = _count(state.get("depth")) or max((_count(n) for n in buffer.values()), default=0) or 1
    name_width = min(12, max(cell_len(str(name)) for name in names))
    stats = width >= name_width + 40  # room for the loops made and dropped
    bar_width = max(3, min(24, width - name_width - 8 - (18 if stats else 0)))
    selected = state.get("genre")
    lines = []
    for name in names:
        marker = ("▶ ", "bold green") if name == selected else "  "
        label = set_cell_size(str(name), name_width) + " "  # long names cut, so the bars line up
        if name in errors:
            lines.append(_line(marker, (label, "red"), ("✗ not loaded (see log)", "red")))
            continue
        ready = _count(buffer.get(name))
        filled = min(bar_width, round(bar_width * ready / depth))
        colour = "green" if ready >= depth else "red" if ready == 0 else "yellow"
        line = _line(marker, (label, "bold" if name == selected else ""),
                     ("█" * filled, colour), ("░" * (bar_width - filled), "grey30"), f" {ready}/{depth}")
        if stats:
            line.append(f"  made {_count(generated.get(name))} dropped {_count(dropped.get(name))}", "dim")
        lines.append(line)
    return lines


def output_lines(state: dict, width: int) -> list[Text]:
    levels = _levels(state)
    label_width = max(len(label) for label, _ in levels)
    lines = [_line(f"{label:<{label_width}} ", _meter(level, width - label_width - 10), f" {_db(level):>8}")
             for label, level in levels]
    gain = state.get("gain")
    lines.append(_line("gain ", (_fmt(gain, ".2f"), "bold"), f" ({_db(gain)})" if gain is not None else "",
                       "  filter ", (_filter(state.get("filter")), "bold")))
    lines.append(_line(_recording(state.get("recording")), "  ", _cue(state.get("cue")),
                       "  level ", (_loudness(state.get("loudness")) if "loudness" in state else DASH, "bold")))
    return lines


def log_lines(state: dict, log: list[str] | None, height: int) -> list[Text]:
    """Errors first (they stay until fixed), then as many of the newest events as fit, newest last."""
    problems = [f"{name}: {message}" for name, message in _section(state, "genre_errors").items()]
    problems += [str(error) for error in state.get("errors") or []]
    problems = problems[-height:] if height > 0 else []
    room = max(0, height - len(problems))
    events = list(log or [])[-room:] if room else []
    lines = [_line((" ".join(str(problem).split()), "red")) for problem in problems]
    lines += [_line(" ".join(str(event).split())) for event in events]  # one line each, however they came
    return lines or [_line(("no events yet", "dim"))]


def compact_lines(state: dict, log: list[str] | None, width: int, height: int) -> list[Text]:
    """The dashboard as one line per topic, most important first, for a small terminal."""
    playing, coming = _section(state, "playing"), _section(state, "next")
    buffer, depth = _section(state, "buffer"), _count(state.get("depth")) or 1
    source = _section(state, "sync").get("source")
    genres = Text()
    for name, ready in buffer.items():
        ready = _count(ready)
        cells = "■" * min(ready, depth) + "□" * max(0, depth - ready) if depth <= 8 else f"{ready}/{depth}"
        genres.append(f"{name} ", "bold" if name == state.get("genre") else "")
        genres.append(f"{cells}  ", "green" if ready else "red")
    levels = _levels(state)
    meter_width = max(3, (width - 4 * len(levels)) // len(levels))
    meters = Text()
    for label, level in levels:
        meters.append(f"{label} ")
        meters.append(_meter(level, meter_width))
        meters.append("  ")
    worker = _section(state, "worker")
    lines = [
        _line((f"{_fmt(state.get('bpm'), '.1f')} BPM", "bold"), f" {source or DASH}  bar ",
              _bar_number(state.get("bar")), " ", _beat_dots(state.get("beat")),
              f"  q {_quantise(state.get('quantise'))}"),
        _line(("▶ ", "bold green"), f"{_fmt(playing.get('genre'))} seed {_fmt(playing.get('seed'))} "
                                    f"{_fmt(playing.get('mode'))} {_fmt(playing.get('bars'))} bars ",
              (_key(playing), "magenta")),
        _line(("» ", "yellow"),
              f"{_fmt(coming.get('genre'))} seed {_fmt(coming.get('seed'))} {_fmt(coming.get('mode'))}"),
        _line(genres) if buffer else _line(("no genres yet", "dim")),
        _line(meters),
        _line(f"{_fmt(worker.get('device'))} ", _rtf(state), "  ", _alarm("underflows", state.get("underflows")),
              "  ", _alarm("late", state.get("late_launches"))),
        _line(_recording(state.get("recording")), f"  gain {_fmt(state.get('gain'), '.2f')}",
              f"  filter {_filter(state.get('filter'))}  ", _cue(state.get("cue"))),
    ]
    lines += log_lines(state, log, height - len(lines))
    return lines[:height]


# ------------------------------------------------------------ spectrogram thumbnail
def _magma(levels: int) -> list[Color]:
    """A dark-to-bright palette (after matplotlib's magma): quiet is dark, loud is pale yellow."""
    anchors = np.array([(0, 0, 4), (80, 18, 123), (182, 54, 121), (251, 136, 97), (252, 253, 191)], float)
    positions = np.linspace(0, 1, len(anchors))
    x = np.linspace(0, 1, levels)
    rgb = np.stack([np.interp(x, positions, anchors[:, channel]) for channel in range(3)], axis=1)
    return [Color.from_rgb(*row) for row in rgb.round()]


PALETTE = _magma(32)
_CELL_STYLES: dict[tuple[int, int], Style] = {}  # (top, bottom) palette indices -> style, filled as met


def _cell_style(top: int, bottom: int) -> Style:
    style = _CELL_STYLES.get((top, bottom))
    if style is None:
        style = _CELL_STYLES[top, bottom] = Style(color=PALETTE[top], bgcolor=PALETTE[bottom])
    return style


def _resample_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Mean over the source cells each target cell covers (at least one): shrinks by area, grows by repeat."""
    length = image.shape[axis]
    edges = np.linspace(0, length, size + 1)
    start = np.minimum(np.floor(edges[:-1]).astype(int), length - 1)
    stop = np.maximum(np.floor(edges[1:]).astype(int), start + 1)
    sums = np.cumsum(image, axis=axis)
    sums = np.concatenate([np.zeros_like(np.take(sums, [0], axis=axis)), sums], axis=axis)
    shape = [1, 1]
    shape[axis] = size
    counts = (stop - start).reshape(shape)
    return (np.take(sums, stop, axis=axis) - np.take(sums, start, axis=axis)) / counts


class Thumbnail:
    """A mel image drawn once as rows of half-block cells: each cell is two pixels, ▀ over its background.

    With a ``title`` it draws its own rounded frame (``width`` x ``height``
    with it), so the dashboard's frames pass the cells through no more layers
    of rich than they must: they are most of what it draws.
    """

    def __init__(self, image: np.ndarray, width: int, height: int, title: str | None = None):
        self.width, self.height, self.title = width, height, title
        inner_width, inner_height = (width - 2, height - 2) if title is not None else (width, height)
        pixels = np.asarray(image, dtype=np.float64)
        pixels = _resample_axis(_resample_axis(pixels, 2 * max(1, inner_height), 0), max(1, inner_width), 1)
        pixels = pixels[::-1]  # row 0 is the lowest band: put it at the bottom of the screen
        levels = np.clip(np.rint(pixels * (len(PALETTE) - 1) / 255.0), 0, len(PALETTE) - 1).astype(int)
        self.lines: list[list[Segment]] = []
        for top, bottom in zip(levels[0::2].tolist(), levels[1::2].tolist()):
            # One segment per run of equal cells keeps the per-frame work small.
            self.lines.append([Segment("▀" * len(list(run)), _cell_style(*cell))
                               for cell, run in itertools.groupby(zip(top, bottom))])
        if title is not None and width >= 4 and height >= 3:
            self.lines = _framed(self.lines, width, title)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


def _framed(lines: list[list[Segment]], width: int, title: str) -> list[list[Segment]]:
    """Lines inside a rounded border like the panels', the title on the top edge."""
    border = Style.parse(FRAME_STYLE)
    title = f" {title} "
    if cell_len(title) > width - 5:
        title = set_cell_size(title, max(0, width - 5))
    top = [Segment("╭─", border), Segment(title), Segment("─" * (width - 3 - cell_len(title)) + "╮", border)]
    side = Segment("│", border)
    bottom = [Segment("╰" + "─" * (width - 2) + "╯", border)]
    return [top] + [[side, *line, side] for line in lines] + [bottom]


class ThumbnailCache:
    """The playing loop's thumbnail, made once and reused until the loop (or the space for it) changes."""

    def __init__(self):
        self._key: tuple | None = None
        self._thumbnail: Thumbnail | None = None
        self.made = 0  # thumbnails drawn so far: a cheap check that frames reuse them

    def get(self, loop_id, image: np.ndarray, width: int, height: int, title: str | None = None) -> Thumbnail:
        key = (loop_id, width, height, title)
        # Without a loop id there is nothing to tell one image from the next: draw it afresh.
        if self._thumbnail is None or loop_id is None or key != self._key:
            self._thumbnail = Thumbnail(image, width, height, title)
            self._key = key
            self.made += 1
        return self._thumbnail


def _usable(image) -> bool:
    return isinstance(image, np.ndarray) and image.ndim == 2 and image.size > 0


class _Sized:
    """Content drawn for the exact space it gets, which is only known when rich renders it."""

    def __init__(self, draw: Callable[[int, int], RenderableType | list[RenderableType]]):
        self.draw = draw

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        drawn = self.draw(max(1, options.max_width), max(1, options.height or options.max_height))
        yield from drawn if isinstance(drawn, list) else [drawn]


# ------------------------------------------------------------ the whole screen
class DashboardView:
    """What render_dashboard returns: it picks the layout for the size rich gives it."""

    def __init__(self, state: dict | None, thumbnail: np.ndarray | None, log: list[str] | None,
                 cache: ThumbnailCache, height: int | None = None):
        self.state = state if isinstance(state, Mapping) else {}
        self.thumbnail, self.log, self.cache, self.height = thumbnail, log, cache, height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = max(1, self.height or options.height or console.height)
        if width < COMPACT_WIDTH or height < COMPACT_HEIGHT:
            yield from compact_lines(self.state, self.log, width, height)
            return
        yield from console.render(self._layout(width, height), options.update_dimensions(width, height))

    def _spectrogram(self, width: int, height: int) -> RenderableType:
        playing = _section(self.state, "playing")
        title = f"playing · {_fmt(playing.get('genre'))} seed {_fmt(playing.get('seed'))}"
        if not _usable(self.thumbnail) or width < 4 or height < 3:
            return Panel(Text("waiting for the first loop", "dim"), title=Text(title), title_align="left",
                         border_style=FRAME_STYLE, height=height)
        return self.cache.get(playing.get("id"), self.thumbnail, width, height, title)

    def _layout(self, width: int, height: int) -> Layout:
        state = self.state
        wide = width >= WIDE_WIDTH

        def panel(title: str, draw: Callable[[int, int], RenderableType | list]) -> Panel:
            return Panel(_Sized(draw), title=Text(title), title_align="left", border_style=FRAME_STYLE)

        transport = panel("transport", lambda w, h: transport_lines(state))
        loops = panel("loops", lambda w, h: loop_lines(state))
        engine = panel("engine", lambda w, h: engine_lines(state))
        spectrogram = _Sized(self._spectrogram)  # frames itself, see Thumbnail
        buffers = panel(f"buffers · depth {_fmt(state.get('depth'))}", lambda w, h: buffer_lines(state, w))
        output = panel("output", lambda w, h: output_lines(state, w))
        events = panel("log", lambda w, h: log_lines(state, self.log, h))

        root = Layout()
        rows = [Layout(name="top", size=TOP_ROW), Layout(name="middle", ratio=2, minimum_size=6),
                Layout(name="bottom", ratio=1, minimum_size=TOP_ROW)]
        if height >= HELP_HEIGHT:
            rows.append(Layout(_line((KEY_HELP, "dim")), size=1))
        root.split_column(*rows)
        top = [Layout(transport, ratio=3), Layout(loops, ratio=4)]
        if wide:
            top.append(Layout(engine, ratio=4))
        root["top"].split_row(*top)
        mixer = Layout(ratio=2)
        mixer.split_column(Layout(buffers, ratio=1, minimum_size=3), Layout(output, size=len(_levels(state)) + 4))
        root["middle"].split_row(Layout(spectrogram, ratio=3), mixer)
        if wide:
            root["bottom"].update(events)
        else:
            root["bottom"].split_row(Layout(engine, ratio=1), Layout(events, ratio=1))
        return root


def render_dashboard(state: dict | None, thumbnail: np.ndarray | None = None, log: list[str] | None = None, *,
                     cache: ThumbnailCache | None = None, height: int | None = None) -> DashboardView:
    """The dashboard for one snapshot, as a rich renderable that fits whatever size it is drawn at.

    ``thumbnail`` is the playing loop's mel image (2-D uint8, row 0 the lowest
    band); ``log`` recent events, newest last. Pass the same ``cache`` every
    frame so the thumbnail is drawn once per loop. ``height``: rows to fill
    (default: all the console has).
    """
    return DashboardView(state, thumbnail, log, cache if cache is not None else ThumbnailCache(), height)


class Dashboard:
    """The dashboard live in the terminal, redrawn on each update() (no refresh thread of its own).

    ``with Dashboard() as dashboard: dashboard.update(engine.snapshot(), image, log)``
    """

    def __init__(self, console: Console | None = None, screen: bool = True):
        self.screen = screen
        self.thumbnails = ThumbnailCache()
        self._live = Live(console=console, screen=screen, auto_refresh=False, refresh_per_second=10)

    @property
    def console(self) -> Console:
        return self._live.console

    def update(self, state: dict | None, thumbnail: np.ndarray | None = None, log: list[str] | None = None) -> None:
        # Outside the alternate screen a frame as tall as the terminal would scroll it by a line each time.
        height = None if self.screen else max(1, self.console.height - 1)
        view = render_dashboard(state, thumbnail, log, cache=self.thumbnails, height=height)
        self._live.update(view, refresh=True)

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def loop_thumbnail(audio: np.ndarray, sample_rate: int, rows: int = 48, columns: int = 160) -> np.ndarray:
    """A small log-frequency spectrogram of a loop's audio (uint8, row 0 lowest), for the dashboard.

    Made once per loop in the main process, so plain numpy: a windowed FFT per column, bins pooled
    into log-spaced bands from 40 Hz up, in dB over a 60 dB range.
    """
    audio = np.asarray(audio, dtype=np.float32)
    n_fft = 1024
    if len(audio) < n_fft:
        return np.zeros((rows, 1), np.uint8)
    starts = np.linspace(0, len(audio) - n_fft, min(columns, len(audio) // n_fft * 4)).astype(int)
    frames = audio[starts[:, None] + np.arange(n_fft)] * np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (columns, bins)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.geomspace(40.0, sample_rate / 2, rows + 1)
    band = np.clip(np.searchsorted(edges, freqs) - 1, 0, rows - 1)
    pooled = np.zeros((rows, len(starts)))
    np.add.at(pooled, band, power.T)
    db = 10 * np.log10(pooled + 1e-12)
    db = np.clip(db - db.max() + 60.0, 0.0, 60.0)
    return (db * 255 / 60).astype(np.uint8)
