"""The dashboard drawn into recorded consoles of real sizes, from the engine's snapshot as plain data."""

import copy
import io

import numpy as np
import pytest
from rich.console import Console

from livegen.engine.snapshot import Snapshot
from livegen.ui.dashboard import Dashboard, Thumbnail, ThumbnailCache, render_dashboard

# What Engine.snapshot() holds in the middle of a set.
STATE = {
    "time": 1795687201.398, "sample": 1828608, "seconds": 38.096, "bpm": 124.0, "bar": 19, "beat": 2,
    "playing": {"id": 9, "genre": "techno", "seed": 13, "mode": "new", "bpm": 124.0, "bars": 2, "steps": 8,
                "sampler": "ddim", "loudness": -18.0, "gain_db": 2.4, "key": "8A", "key_confidence": 0.93},
    "next": {"id": 10, "genre": "techno", "seed": 14, "mode": "variation", "bpm": 124.0, "bars": 2, "steps": 8,
             "sampler": "ddim", "loudness": -18.0, "gain_db": -1.2, "key": None, "key_confidence": 0.99},
    "genre": "techno", "steps": None, "sampler": None, "quantise": "1", "auto_bars": 2,
    "key": {"key": "9A", "label": "9A Em", "mode": "shift", "auto": True},
    "depth": 3, "buffer": {"techno": 3, "house": 1}, "generated": {"techno": 9, "house": 3},
    "dropped": {"techno": 0, "house": 1},
    "genre_errors": {"broken": "…/model_index.json: not valid JSON"}, "launches": 6, "late_launches": 0,
    "underflows": 0,
    "worker": {"state": "ready", "device": "cuda", "threads": 15, "compiled": "inductor", "prep_processes": 8,
               "restarts": 0, "pid": 13723, "in_flight": 1},
    "realtime_factor": 2.832, "level": 0.41, "levels": [0.41, 0.41], "gain": 0.8, "filter": 0.0,
    "loudness": -18.0,
    "sync": {"source": "internal", "detail": ""}, "recording": "set.wav", "cue": False,
    "controller": "Akai APC mini", "errors": [],
}
LOG = [f"note_on channel=0 note={36 + i} velocity=100" for i in range(40)]
SIZES = [(40, 12), (80, 24), (120, 40), (200, 60)]


@pytest.fixture(scope="module")
def mel():
    """A mel image like the codec's: 64 bands (row 0 the lowest) x 128 frames, a beat's worth of hits."""
    bands = np.linspace(1.0, 0.2, 64)[:, None]  # more energy low down, as in music
    hits = (np.arange(128) % 16 < 4)[None, :]
    return (255 * bands * np.where(hits, 1.0, 0.4)).astype(np.uint8)


def draw(renderable, width: int, height: int) -> str:
    console = Console(record=True, width=width, height=height, force_terminal=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("width,height", SIZES)
def test_fits_and_shows_the_essentials(mel, width, height):
    text = draw(render_dashboard(Snapshot(STATE), mel, LOG), width, height)
    assert len(text.splitlines()) <= height  # never scrolls the terminal
    assert all(len(line) <= width for line in text.splitlines())
    for expected in ("techno", "124", "seed 13", "underflows", "REC set.wav", "█"):  # █: a level meter
        assert expected in text
    assert "note=75" in text  # the newest event always shows
    assert "bar 20" in text and "○ ○ ● ○" in text  # bar 19 counted from 0, third beat
    if width >= 80:
        for expected in ("house", "1/3", "seed 14", "variation", "cuda x15", "2.83×", "Akai APC mini", "-7.7 dB",
                         "quantise 1 bar", "steps 8 · ddim (preset)", "internal clock", "restarts 0",
                         "-18.0 LUFS", "8A Am", "no key", "key 9A Em"):
            assert expected in text
    if width >= 120:
        assert "broken: …/model_index.json: not valid JSON" in text
        assert "level -18.0 LUFS" in text  # the set's target
    if width >= 200:
        assert "key 9A Em shift" in text  # the set's key, with how launches keep to it
        assert "made 9 dropped 0" in text
        assert "in flight  compiled  +8 prep" in text


@pytest.mark.parametrize("width,height", SIZES)
def test_large_sizes_draw_the_spectrogram_and_panels(mel, width, height):
    text = draw(render_dashboard(STATE, mel, LOG), width, height)
    if width >= 80:
        assert "▀" in text and "╭─ buffers" in text and "╭─ log" in text
    else:
        assert "▀" not in text and "╭" not in text  # too small for panels: one line per topic


@pytest.mark.parametrize("state", [{}, None, {"playing": None, "next": {}, "buffer": None, "levels": [],
                                               "worker": None, "sync": None, "bpm": None, "beat": None,
                                               "errors": None, "genre_errors": None}])
@pytest.mark.parametrize("width,height", SIZES + [(60, 20), (250, 70), (250, 12), (40, 70)])
def test_missing_fields_never_raise(mel, state, width, height):
    text = draw(render_dashboard(state, mel if state else None, None), width, height)
    assert len(text.splitlines()) <= height and "–" in text


def test_odd_values_never_raise():
    state = copy.deepcopy(STATE)
    state.update(bpm="fast", bar="x", levels=[0.0, -1, 2.0, None], gain=0, filter=-0.4, cue=True, recording=True,
                 realtime_factor=0.5, underflows=3, sync={"source": "link", "detail": "3 peers"},
                 buffer={"a" * 40: 9, "b": None}, depth=0, errors=["[bold]not markup[/]\nsecond line"])
    text = draw(render_dashboard(state, np.zeros((3, 2), np.uint8), ["x"]), 120, 40)
    assert "[bold]not markup[/] second line" in text  # shown as typed, on one line
    assert "a" * 13 not in text and "█ 9/9" in text  # a long name is cut, its bar still shows
    assert "LP 40%" in text and "CUE on" in text and "Ableton Link" in text and "underflows 3" in text


def test_errors_stay_while_the_log_scrolls():
    state = dict(STATE, errors=["worker died (exit -9)"])
    text = draw(render_dashboard(state, None, LOG), 120, 40)
    assert "worker died (exit -9)" in text and "not valid JSON" in text
    assert LOG[-1] in text and LOG[0] not in text  # oldest events give way first


def test_thumbnail_puts_low_frequencies_at_the_bottom():
    image = np.zeros((8, 4), np.uint8)
    image[:4] = 255  # the four lowest bands loud
    thumbnail = Thumbnail(image, width=4, height=2)
    (top,), (bottom,) = thumbnail.lines  # one run of equal cells per line
    assert top.text == bottom.text == "▀▀▀▀"
    assert top.style.color == top.style.bgcolor != bottom.style.color  # quiet on top, loud below
    assert bottom.style.color.triplet > top.style.color.triplet


def test_thumbnail_is_made_once_per_loop(mel):
    cache = ThumbnailCache()
    first = cache.get(9, mel, 40, 10)
    assert cache.get(9, mel.copy(), 40, 10) is first  # same loop: reused, whatever array comes
    assert cache.get(10, mel, 40, 10) is not first  # the next loop plays
    resized = cache.get(10, mel, 60, 10)
    assert resized.width == 60 and cache.made == 3  # the terminal was resized

    # Frame after frame of the same loop draw it once.
    cache = ThumbnailCache()
    for beat in range(4):
        draw(render_dashboard(dict(STATE, beat=beat), mel, LOG, cache=cache), 120, 40)
    assert cache.made == 1
    draw(render_dashboard(dict(STATE, playing=dict(STATE["playing"], id=10)), mel, LOG, cache=cache), 120, 40)
    assert cache.made == 2


def test_live_dashboard_updates_in_place(mel):
    console = Console(record=True, width=100, height=30, force_terminal=True, file=io.StringIO())
    with Dashboard(console=console, screen=False) as dashboard:
        dashboard.update(STATE, mel, LOG)
        dashboard.update(dict(STATE, underflows=5, beat=3), mel, LOG)
    text = console.export_text()
    assert "underflows 5" in text and "Akai APC mini" in text
    assert dashboard.thumbnails.made == 1
