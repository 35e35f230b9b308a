"""The listening page: its files, and what a real browser makes of it."""

import html
import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from livegen.audio import MelCodec
from livegen.diffusion.architectures import ARCHITECTURES
from tests.synth import drum_pattern
from training.report import PEAK, Clip, write_listening_page

CONFIG = ARCHITECTURES["micro"].mel  # 32 bands x 64 frames, 0.74 s a slice
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HEADER = ["model", "Frechet distance", "beat steadiness"]
FIGURES = [["techno-lite", "12.3", "0.61"], ["untrained <ceiling>", "85.0", "0.02"]]


@pytest.fixture(scope="module")
def sections():
    """Clips as the evaluation makes them: decoded generations, codec round trips, a loop, edge cases."""
    codec = MelCodec(CONFIG)
    slices = codec.slices(drum_pattern(120, 3.0, CONFIG.sample_rate, seed=3))
    images = [codec.audio_to_image(s) for s in slices]
    rate = CONFIG.sample_rate
    generated = [Clip(f"generated, seed {1000 + i}", image, codec.images_to_audio(image, n_iter=8, seed=i),
                      rate, note=f"sharpness {10 + i}.5") for i, image in enumerate(images[:2])]
    ceiling = [Clip(f"ceiling, techno_0042.flac slice {i + 1}", image, s, rate)
               for i, (image, s) in enumerate(zip(images, slices))]
    loop = np.concatenate(slices)
    odd = [
        Clip("four-slice loop", np.concatenate(images, axis=1), loop, rate, note="4 bars at 120 BPM"),
        Clip("silence", np.zeros_like(images[0]), np.zeros(len(slices[0]), np.float32), rate),
        Clip("quiet", images[1], slices[1] * (0.1 / np.abs(slices[1]).max()), rate, note="peak -20 dBFS"),
        Clip('too loud <b>&"quoted"</b>', images[0], slices[0] * 4.0, rate, note="x < y & z"),
    ]
    return {"techno: generated loops": generated,
            "techno: ceiling (held-out corpus through the codec)": ceiling,
            "edge cases": odd,
            "nothing here": []}


def clip_files(out_dir: Path, sections) -> list[tuple[Clip, Path, Path]]:
    """Each clip with its PNG and WAV, read back from the page in page order."""
    text = (out_dir / "index.html").read_text()
    pngs = re.findall(r'<img src="([^"]+)"', text)
    wavs = re.findall(r'<audio controls preload="metadata" src="([^"]+)"', text)
    clips = [clip for clips in sections.values() for clip in clips]
    assert len(pngs) == len(wavs) == len(clips)
    return [(clip, out_dir / png, out_dir / wav) for clip, png, wav in zip(clips, pngs, wavs)]


def test_files_are_safe_and_readable(tmp_path, sections):
    out_dir = tmp_path / "new" / "listen"  # created by the writer
    page = write_listening_page(out_dir, "Eval <techno> & co", FIGURES, HEADER, sections)
    assert page == out_dir / "index.html"
    for path in out_dir.iterdir():
        assert re.fullmatch(r"[a-z0-9-]+\.(png|wav|html)", path.name), path.name
    for clip, png, wav in clip_files(out_dir, sections):
        audio, rate = soundfile.read(wav, dtype="float32")
        assert soundfile.info(wav).subtype == "PCM_16"
        assert rate == clip.sample_rate and len(audio) == len(clip.audio)
        assert np.isfinite(audio).all() and np.abs(audio).max() <= PEAK + 1e-3
        with Image.open(png) as image:
            assert image.height >= 128 and image.height % clip.image.shape[0] == 0
            assert image.width % clip.image.shape[1] == 0
            width, height = image.size
            assert f'src="{png.name}" alt="mel spectrogram: {html.escape(clip.label)}" ' \
                   f'width="{width}" height="{height}"' in page.read_text()

    wavs = {clip.label.split(",")[0]: (clip, wav) for clip, _, wav in clip_files(out_dir, sections)}
    assert np.abs(soundfile.read(wavs['too loud <b>&"quoted"</b>'][1])[0]).max() == pytest.approx(PEAK, abs=1e-3)
    assert not soundfile.read(wavs["silence"][1])[0].any()  # not amplified into NaN or noise
    quiet_clip, quiet_wav = wavs["quiet"]
    np.testing.assert_allclose(soundfile.read(quiet_wav)[0], quiet_clip.audio, atol=1e-4)  # not amplified

    text = page.read_text()
    assert "<b>" not in text and "&lt;b&gt;&amp;&quot;quoted&quot;&lt;/b&gt;" in text
    assert "<title>Eval &lt;techno&gt; &amp; co</title>" in text and "untrained &lt;ceiling&gt;" in text
    assert "<script" not in text and "http" not in text  # self-contained
    assert text.index("<table>") < text.index("<h2>")


def test_figures_rows_must_match_header(tmp_path):
    with pytest.raises(ValueError, match="3 columns"):
        write_listening_page(tmp_path, "t", [["a", "b"]], HEADER, {})


# ---------------------------------------------------------------- in a real browser
class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A localhost HTTP server over a folder of pages: what someone opening the report would use."""
    root = tmp_path_factory.mktemp("pages")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (scripts/install.sh does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def page_problems(browser, url: str, seconds: list[float]) -> list[str]:
    """What a listener would find broken: pictures, players (with their lengths), errors, failed requests."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    try:
        page.goto(url)
        try:  # players do not hold up the load event: wait until each has its metadata or has given up
            page.wait_for_function("""() => [...document.querySelectorAll('audio')].every(a =>
                a.readyState >= 1 || a.error !== null || a.networkState === HTMLMediaElement.NETWORK_NO_SOURCE)""",
                                   timeout=15_000)
        except PlaywrightTimeout:
            problems.append("players still loading after 15 s")
        images = page.eval_on_selector_all(
            "img", "els => els.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        players = page.eval_on_selector_all(
            "audio", "els => els.map(a => [a.getAttribute('src'), a.readyState, a.duration, a.error && a.error.code])")
    finally:
        page.close()
    problems += [f"picture not loaded: {src}" for src, complete, width in images if not (complete and width > 0)]
    if len(players) != len(seconds):
        problems.append(f"{len(players)} players for {len(seconds)} clips")
    for (src, ready, duration, error), expected in zip(players, seconds):
        if ready < 1 or error or not duration > 0:
            problems.append(f"player not loaded: {src} (readyState {ready}, error {error})")
        elif abs(duration - expected) > 0.01:
            problems.append(f"player length wrong: {src} lasts {duration:.3f} s, clip {expected:.3f} s")
    return problems


def lengths(sections) -> list[float]:
    return [len(c.audio) / c.sample_rate for clips in sections.values() for c in clips]


def test_page_plays_in_chromium(browser, server, sections):
    root, base = server
    write_listening_page(root / "good", "Eval", FIGURES, HEADER, sections)
    assert page_problems(browser, f"{base}/good/index.html", lengths(sections)) == []


def test_checker_sees_missing_picture(browser, server, sections):
    root, base = server
    write_listening_page(root / "no-picture", "Eval", FIGURES, HEADER, sections)
    (root / "no-picture" / "section-1-clip-2.png").unlink()
    problems = page_problems(browser, f"{base}/no-picture/index.html", lengths(sections))
    assert "picture not loaded: section-1-clip-2.png" in problems
    assert all("section-1-clip-2.png" in p or p.startswith("console error: Failed to load resource")
               for p in problems), problems


def test_checker_sees_corrupt_audio(browser, server, sections):
    root, base = server
    write_listening_page(root / "bad-audio", "Eval", FIGURES, HEADER, sections)
    wav = root / "bad-audio" / "section-2-clip-1.wav"
    wav.write_bytes(wav.read_bytes()[:20])
    problems = page_problems(browser, f"{base}/bad-audio/index.html", lengths(sections))
    assert any(p.startswith("player not loaded: section-2-clip-1.wav") for p in problems), problems
