"""Grid models: images of whole bars from the downbeat become loops with no beat finding."""

import json

import numpy as np
import pytest

from livegen.audio import MelCodec, MelConfig
from livegen.diffusion import CheckpointError, load_model
from livegen.diffusion.architectures import Architecture, new_model
from livegen.loops import Loop, LoopError, bar_choices
from livegen.loops.fromimage import LIVE_ITERATIONS, loops_from_images
from livegen.loops.grid import Grid, grid_cut
from livegen.render import RenderSettings, loop_canvas, render
from tests.loops.test_fromimage import kick_phase_ms
from tests.synth import drum_pattern
from training.gridprep import Window, grid_image

CONFIG = MelConfig(x_res=256, y_res=64)  # the lite codec: 4 bars of 4 beats x 16 frames
CODEC = MelCodec(CONFIG)
RATE = CONFIG.sample_rate
GRID = Grid(beats_per_bar=4, bars=4, frames_per_beat=16)


def grid_image_of(bpm: float, seed: int = 0) -> np.ndarray:
    """A drum pattern at ``bpm`` with its first kick at 0.5 s, drawn on the grid from that downbeat."""
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), drum_pattern(bpm, 16 * 60 / bpm + 1, offset=0.0,
                                                                          seed=seed)])
    return grid_image(audio, CODEC, GRID, Window(start=0.5, beat=60 / bpm))


def test_grid_from_livegen_json_is_checked():
    assert Grid.from_dict({"bars": 2}) == Grid(bars=2)
    assert Grid.from_dict({}).frames == 256
    for bad, words in [({"bars": 0}, "bars"), ({"frames_per_beat": 1.5}, "frames_per_beat"), ({"beat": 4}, "unknown"),
                       ([4, 4, 16], "object"), ({"bars": True}, "bars")]:
        with pytest.raises(ValueError, match=words):
            Grid.from_dict(bad)


def test_grid_cut_takes_the_most_whole_bars_from_the_downbeat():
    cut = grid_cut(GRID, 256, CONFIG, bpm=125, out_rate=48000, bar_choices=bar_choices(4), seam_seconds=0.01)
    assert (cut.bars, cut.first, cut.last) == (4, 0, 256 * CONFIG.hop_length) and cut.use_tail
    assert cut.target_frames == round(16 * 60 / 125 * 48000)
    assert grid_cut(GRID, 256, CONFIG, bpm=125, out_rate=48000, bar_choices=bar_choices(2),
                    seam_seconds=0.01).bars == 2
    with pytest.raises(LoopError, match="holds no"):
        grid_cut(GRID, 40, CONFIG, bpm=125, out_rate=48000, bar_choices=bar_choices(4), seam_seconds=0.01)


def test_grid_images_put_the_beats_on_the_same_columns_at_any_tempo():
    for bpm in (90, 128, 170):
        image = grid_image_of(bpm).astype(float)
        flux = np.maximum(0, np.diff(image[:12], axis=1)).mean(axis=0)  # low bands: the kick
        beat_columns = np.arange(0, 257, 16)  # 256: the next downbeat (a rise just before it)
        # the strongest rises sit on (or one frame before) the beat columns
        strongest = np.sort(np.argsort(flux)[-8:] + 1)
        assert all(np.min(np.abs(beat_columns - c)) <= 1 for c in strongest), (bpm, strongest)


@pytest.mark.parametrize("source_bpm, target_bpm, out_rate", [(90, 92, 48000), (128, 124, 44100), (170, 140, 48000),
                                                              (100, 128, 22050)])
def test_grid_loops_are_exact_bars_at_the_set_tempo_with_the_kick_on_the_beat(source_bpm, target_bpm, out_rate):
    loop = loops_from_images([grid_image_of(source_bpm, seed=source_bpm)], CONFIG, bpm=target_bpm,
                             out_rate=out_rate, n_iter=LIVE_ITERATIONS, grid=GRID)[0]
    assert isinstance(loop, Loop), loop
    assert loop.bars == 4 and loop.bpm == target_bpm and loop.sample_rate == out_rate
    assert len(loop.audio) == round(16 * 60 / target_bpm * out_rate)
    # the loop starts on the downbeat: the kicks' phase in the beat cycle from sample 0 is near zero
    reference = drum_pattern(target_bpm, seconds=loop.seconds, sample_rate=out_rate, offset=0.0, seed=99)
    lag = kick_phase_ms(loop.audio, target_bpm, out_rate) - kick_phase_ms(reference, target_bpm, out_rate)
    assert abs(lag) <= 30, lag
    # played round, the wrap is no bigger a jump than those inside
    assert abs(float(loop.audio[0]) - float(loop.audio[-1])) <= np.percentile(np.abs(np.diff(loop.audio)), 99.9)


def test_a_grid_image_without_a_set_tempo_plays_at_the_genre_tempo():
    loop = loops_from_images([grid_image_of(120)], CONFIG, tempo_hint=96, n_iter=4, grid=GRID,
                             bar_choices=bar_choices(2))[0]
    assert loop.bpm == 96 and loop.bars == 2 and len(loop.audio) == round(8 * 60 / 96 * RATE)


SMALL_GRID = Grid(beats_per_bar=4, bars=1, frames_per_beat=16)
SMALL = Architecture(MelConfig(x_res=64, y_res=32, n_fft=512, hop_length=256), (16, 32), norm_num_groups=8)


def test_grid_model_dir_loads_and_renders_whole_bars(tmp_path):
    model = new_model(SMALL, class_names=["techno"], seed=4)
    model.extra["grid"] = SMALL_GRID.to_dict()
    model.save(tmp_path / "grid")
    loaded = load_model(tmp_path / "grid", "cpu")
    assert loaded.grid == SMALL_GRID
    assert loop_canvas(loaded, "fit", 4, 90, None) == 64  # its own width holds its bars at any tempo
    settings = RenderSettings(steps=2, genre="techno", bpm=140, bars=4, batch_size=2)
    for rendered in render(loaded, [1, 2], settings):
        assert rendered.image.shape == (32, 64)
        # an untrained model's noise still makes a loop: no beat is looked for
        assert rendered.loop is not None and rendered.loop.bars == 1
        assert len(rendered.loop.audio) == round(4 * 60 / 140 * SMALL.mel.sample_rate)


@pytest.mark.parametrize("grid, words", [({"bars": 2}, "128 frames.*64 wide"), ({"bars": "four"}, "bars")])
def test_a_grid_that_does_not_fit_the_images_names_livegen_json(tmp_path, grid, words):
    model = new_model(SMALL, seed=4)
    model.save(tmp_path / "bad")
    (tmp_path / "bad" / "livegen.json").write_text(json.dumps({"grid": grid}))
    with pytest.raises(CheckpointError, match=f"livegen.json.*{words}"):
        load_model(tmp_path / "bad", "cpu")
