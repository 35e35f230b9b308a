"""Demo corpus: multi-genre loops played on real recorded instruments from Debian packages.

Drums are the samples of the Hydrogen kits (``hydrogen-drumkits``); bass, keys,
pads and stabs are notes of the FluidR3 General MIDI soundfont
(``fluid-soundfont-gm``) rendered once through ``fluidsynth`` into a note
palette, then placed like a sampler would. Each clip is one genre's pattern
at a tempo from its range, with swing, humanised timing and velocity, a kit
and a key drawn from the clip's own random generator, so the corpus is the
same for the same seed.

    OUT/techno/techno_0000.flac   + .json (bpm, key, kit, bars)

Each clip is in one key, major or minor, that its chords and bass establish: the
progression starts on the tonic, a chord a bar, the bass on each chord's root.
    OUT/house/...   OUT/hiphop/...   OUT/breaks/...

The genre sub-folders are what ``prepare`` takes as labels.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.loops.key import Key

RATE = 22050
DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CLIP_SECONDS = 12.0  # two codec slices of 5.94 s


class CorpusError(RuntimeError):
    pass


# ------------------------------------------------------------------ genres
@dataclass(frozen=True)
class Genre:
    """One style: tempo range, swing, 16-step drum patterns and its instruments.

    Pattern letters: ``X`` accent, ``x`` normal, ``o`` ghost, ``.`` rest. Each
    voice lists alternatives; a clip picks one per voice, and each bar may
    drop or add a ghost hit.
    """

    name: str
    bpm: tuple[float, float]
    swing: tuple[float, float]  # fraction of a 16th pair the second 16th lands at (0.5 = straight)
    kits: tuple[str, ...]
    drums: dict[str, tuple[str, ...]]
    bass_program: tuple[int, ...]
    bass_rhythm: tuple[str, ...]
    chord_program: tuple[int, ...]
    chord_rhythm: tuple[str, ...]
    chord_length: float  # in 16ths
    levels: dict[str, float] = field(default_factory=dict)


GENRES = {
    "techno": Genre(
        "techno", (125, 135), (0.5, 0.52), ("HardElectro1", "ElectricEmpireKit", "rumpf_kit_z01_h2", "Audiophob"),
        {"kick": ("X...X...X...X...",),
         "clap": ("....x.......x...", "....x.......x..o"),
         "hat": ("..x...x...x...x.", "o.x.o.x.o.x.o.xo", "ooxoooxoooxoooxo"),
         "open": ("..x...x...x...x.", "................")},
        (38, 39, 87), ("..x...x...x...x.", ".xx..xx..xx..xx.", "x.x.x.x.x.x.x.x."),
        (81, 89, 62, 50), ("......x.......x.", "..x.....x.......", "x..x..x........."), 1.5,
        {"bass": 0.5, "chord": 0.28}),
    "house": Genre(
        "house", (118, 126), (0.54, 0.62), ("HardElectro1", "ElectricEmpireKit", "rumpf_kit_z01_h2", "Audiophob",
                                            "Millo-Drums_v.1"),
        {"kick": ("X...X...X...X...",),
         "clap": ("....X.......X...",),
         "hat": ("oooooooooooooooo", "x.x.x.x.x.x.x.x."),
         "open": ("..x...x...x...x.",)},
        (36, 38, 33), ("x..x..x...x.x...", "..x..x....x..x..", "x.....x.x.....x."),
        (0, 4, 17, 18), ("...x..x....x..x.", "x..x..x.........", "..x...x...x...x."), 2.0,
        {"bass": 0.5, "chord": 0.35}),
    "hiphop": Genre(
        "hiphop", (84, 96), (0.56, 0.66), ("Millo-Drums_v.1", "Millo_MultiLayered2", "The Black Pearl 1.0",
                                           "ColomboAcousticDrumkit", "BJA_Pacific"),
        {"kick": ("X......x..x.....", "X.........X..x..", "X..x......X....."),
         "snare": ("....X.......X...", "....X.......X..o"),
         "hat": ("x.x.x.x.x.x.x.x.", "x.xox.x.x.xox.x.")},
        (33, 32, 34), ("x......x..x.....", "x.........x.....", "x..x......x....."),
        (4, 5, 0, 48), ("x...............", "x.......x.......", "x.....x........."), 6.0,
        {"bass": 0.55, "chord": 0.3}),
    "breaks": Genre(
        "breaks", (160, 176), (0.5, 0.54), ("VariBreaks", "ForzeeStereo", "Millo_MultiLayered2",
                                            "The Black Pearl 1.0", "Millo-Drums_v.1"),
        {"kick": ("X.........X.....", "X.........x..X..", "X.X.......X....."),
         "snare": ("....X.......X...", "....X..o.o..X...", "....X.......X.o."),
         "hat": ("x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo")},
        (39, 38, 35), ("x...............", "x.......x.......", "x.........x....."),
        (89, 91, 50), ("x...............", "x.......x......."), 8.0,
        {"bass": 0.5, "chord": 0.22}),
}


# ------------------------------------------------------------------ drums
ROLES = {  # instrument-name patterns, tried in order
    "kick": re.compile(r"kick|bass ?drum|\bbd\b"),
    "snare": re.compile(r"snare(?!.*roll)"),
    "clap": re.compile(r"clap"),
    "open": re.compile(r"(open|\bop\b|ohh).*|.*(hat|hh).*(open|\bop\b)"),
    "hat": re.compile(r"(closed|\bcl\b|chh).*|.*(hat|hh).*(clos|\bcl\b)|hi-?hat closed|closed hh"),
}


@dataclass
class Kit:
    name: str
    sounds: dict[str, list[np.ndarray]]  # role -> samples at RATE, mono


def _load_sample(path: Path) -> np.ndarray | None:
    """A kit sample as mono at RATE, at most 1.5 s, peak 1; None if broken or silent."""
    from .prepare import read_audio

    try:
        mono = read_audio(path, RATE)[: int(1.5 * RATE)]
    except (ValueError, OSError):  # a broken sample in a kit: leave it out
        return None
    if np.abs(mono).max() < 1e-4:
        return None
    return mono / np.abs(mono).max()


def load_kit(folder: Path) -> Kit | None:
    """The kit's kick, snare, clap and hats by instrument name; None if it lacks the basics."""
    try:
        root = ET.parse(folder / "drumkit.xml").getroot()
    except (ET.ParseError, OSError):
        return None
    sounds: dict[str, list[np.ndarray]] = {}
    for instrument in root.iter():
        if instrument.tag.split("}")[-1] != "instrument":
            continue
        name = (instrument.findtext("{*}name") or instrument.findtext("name") or "").lower()
        files = [e.text for e in instrument.iter() if e.tag.split("}")[-1] == "filename" and e.text]
        role = next((r for r, pattern in ROLES.items() if pattern.search(name)), None)
        if role is None or not files:
            continue
        sample = _load_sample(folder / files[-1])  # the last layer is the loudest
        if sample is not None:
            sounds.setdefault(role, []).append(sample)
    if "snare" not in sounds and "clap" in sounds:
        sounds["snare"] = sounds["clap"]
    if "clap" not in sounds and "snare" in sounds:
        sounds["clap"] = sounds["snare"]
    if "open" not in sounds and "hat" in sounds:
        sounds["open"] = sounds["hat"]
    if not all(role in sounds for role in ("kick", "snare", "hat")):
        return None
    return Kit(folder.name, sounds)


def load_kits(drumkits: Path = DRUMKITS) -> dict[str, Kit]:
    kits = {}
    for folder in sorted(drumkits.iterdir()) if drumkits.is_dir() else []:
        kit = load_kit(folder)
        if kit is not None:
            kits[kit.name] = kit
    if not kits:
        raise CorpusError(f"{drumkits}: no usable Hydrogen drum kits (install hydrogen-drumkits)")
    return kits


# --------------------------------------------------------- melodic palette
PALETTE_LOW, PALETTE_HIGH = 28, 84  # MIDI notes rendered per program
NOTE_SECONDS, NOTE_GAP = 2.0, 3.0


def render_palette(programs: list[int], cache: Path, soundfont: Path = SOUNDFONT) -> dict[int, np.ndarray]:
    """Each program's notes PALETTE_LOW..HIGH, (notes, samples), rendered once with fluidsynth and cached."""
    import mido

    if cache.exists():
        with np.load(cache) as data:
            stored = {int(k): data[k] for k in data.files}
        if all(p in stored for p in programs):
            return stored
    if shutil.which("fluidsynth") is None or not soundfont.exists():
        raise CorpusError(f"fluidsynth and {soundfont} are needed (install fluidsynth fluid-soundfont-gm)")
    notes = list(range(PALETTE_LOW, PALETTE_HIGH + 1))
    palette = {}
    with tempfile.TemporaryDirectory() as tmp:
        for program in programs:
            midi = mido.MidiFile(ticks_per_beat=480)
            track = mido.MidiTrack()
            midi.tracks.append(track)
            track.append(mido.MetaMessage("set_tempo", tempo=500000))  # 120 BPM: 960 ticks a second
            track.append(mido.Message("program_change", program=program, channel=0, time=0))
            ticks = lambda seconds: int(round(seconds * 960))  # noqa: E731
            for note in notes:
                track.append(mido.Message("note_on", note=note, velocity=100, channel=0, time=0))
                track.append(mido.Message("note_off", note=note, velocity=0, channel=0, time=ticks(NOTE_SECONDS)))
                track.append(mido.Message("note_off", note=0, velocity=0, channel=0,
                                          time=ticks(NOTE_GAP - NOTE_SECONDS)))
            midi_path, wav_path = Path(tmp) / f"{program}.mid", Path(tmp) / f"{program}.wav"
            midi.save(midi_path)
            subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(RATE), "-F", str(wav_path),
                            str(soundfont), str(midi_path)], check=True, capture_output=True, timeout=600)
            import soundfile

            audio, _ = soundfile.read(wav_path, dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
            step = int(NOTE_GAP * RATE)
            audio = np.pad(audio, (0, max(0, step * len(notes) - len(audio))))
            palette[program] = np.stack([audio[i * step:(i + 1) * step] for i in range(len(notes))])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **{str(k): v for k, v in palette.items()})
    return palette


# ------------------------------------------------------------------ render
# Progressions that make a clip's key the one a listener hears: each starts on the tonic (so does
# every 4-bar window from a downbeat that holds bar 1), and the bass plays each chord's root. A
# chord a bar: (semitones from the tonic, "m" minor or "M" major triad). Minor leads, as in the
# genres; major keys are there so that a model sees both modes.
PROGRESSIONS = {
    "minor": (((0, "m"), (8, "M"), (10, "M"), (0, "m")),  # i VI VII i
              ((0, "m"), (5, "m"), (7, "M"), (0, "m")),  # i iv V i
              ((0, "m"), (0, "m"), (5, "m"), (7, "m")),  # i i iv v
              ((0, "m"), (10, "M"), (8, "M"), (7, "M")),  # i VII VI V
              ((0, "m"), (3, "M"), (10, "M"), (0, "m"))),  # i III VII i
    "major": (((0, "M"), (5, "M"), (7, "M"), (0, "M")),  # I IV V I
              ((0, "M"), (7, "M"), (9, "m"), (5, "M")),  # I V vi IV
              ((0, "M"), (9, "m"), (5, "M"), (7, "M")),  # I vi IV V
              ((0, "M"), (0, "M"), (5, "M"), (7, "M")),  # I I IV V
              ((0, "M"), (2, "m"), (7, "M"), (0, "M"))),  # I ii V I
}
MINOR_SHARE = 0.6
CHORD_LOW = 55  # the lowest chord root (G3): every voicing stays inside the rendered palette
TRIADS = {"m": (0, 3, 7), "M": (0, 4, 7)}
SEVENTHS = {"m": 10, "M": 11}  # m7 and maj7, added to a chord now and then


def _place(mix: np.ndarray, sound: np.ndarray, at: float, gain: float, length: float | None = None) -> None:
    start = int(round(at * RATE))
    if start >= len(mix) or start < 0:
        return
    piece = sound[: len(mix) - start]
    if length is not None:  # note-off: a 60 ms release after the note's length
        end, release = int(length * RATE), int(0.06 * RATE)
        piece = piece[: end + release].copy()
        if len(piece) > end:
            piece[end:] *= np.linspace(1, 0, len(piece) - end, dtype=np.float32)
    mix[start:start + len(piece)] += gain * piece


def _hits(pattern: str) -> list[tuple[int, float]]:
    velocity = {"X": 1.0, "x": 0.8, "o": 0.4}
    return [(i, velocity[c]) for i, c in enumerate(pattern) if c in velocity]


def render_clip(genre: Genre, kits: dict[str, Kit], palette: dict[int, np.ndarray],
                rng: np.random.Generator, seconds: float = CLIP_SECONDS, tonal: bool = True) -> tuple[np.ndarray, dict]:
    """One clip of ``seconds``, bar 1 at t = 0: drums, bass and chords; returns audio and its description.

    ``tonal=False``: the drums alone, in no key (the key estimator learns what no key sounds like)."""
    bpm = float(rng.uniform(*genre.bpm))
    swing = float(rng.uniform(*genre.swing))
    usable = [k for k in genre.kits if k in kits] or sorted(kits)
    kit = kits[usable[rng.integers(len(usable))]]
    tonic = int(rng.integers(12))
    mode = "minor" if rng.random() < MINOR_SHARE else "major"
    root = 36 + (tonic - 36) % 12  # the tonic in the bass register, C2..B2
    sixteenth = 60.0 / bpm / 4
    bars = int(np.ceil(seconds / (16 * sixteenth)))
    mix = np.zeros(int(seconds * RATE) + RATE, np.float32)

    def when(bar, step):
        swung = step + ((swing - 0.5) * 2 if step % 2 else 0.0)
        return (bar * 16 + swung) * sixteenth + rng.normal(0, 0.004)  # humanised by a few ms

    voices = {}
    for voice, options in genre.drums.items():
        samples = kit.sounds.get(voice) or kit.sounds["hat"]
        voices[voice] = (options[rng.integers(len(options))], samples[rng.integers(len(samples))])
    bass_program = genre.bass_program[rng.integers(len(genre.bass_program))]
    chord_program = genre.chord_program[rng.integers(len(genre.chord_program))]
    bass_rhythm = genre.bass_rhythm[rng.integers(len(genre.bass_rhythm))]
    chord_rhythm = genre.chord_rhythm[rng.integers(len(genre.chord_rhythm))]
    progression = PROGRESSIONS[mode][rng.integers(len(PROGRESSIONS[mode]))]
    sevenths = rng.random() < 0.4

    for bar in range(bars):
        degree, quality = progression[bar % len(progression)]
        chord = TRIADS[quality] + ((SEVENTHS[quality],) if sevenths and quality == "m" else ())
        for voice, (pattern, sample) in voices.items():
            for step, velocity in _hits(pattern):
                if velocity < 0.5 and rng.random() < 0.3:  # ghost notes come and go
                    continue
                _place(mix, sample, when(bar, step), 0.6 * velocity * rng.uniform(0.85, 1.0))
        if not tonal:
            continue
        for step, velocity in _hits(bass_rhythm):
            note = root + degree + (12 if rng.random() < 0.15 else 0)
            _place(mix, palette[bass_program][note - PALETTE_LOW], when(bar, step),
                   genre.levels.get("bass", 0.5) * velocity * rng.uniform(0.85, 1.0), length=1.6 * sixteenth)
        for step, velocity in _hits(chord_rhythm):
            for interval in chord:
                note = CHORD_LOW + (root + degree - CHORD_LOW) % 12 + interval  # root position, G3 to F#4
                _place(mix, palette[chord_program][note - PALETTE_LOW], when(bar, step),
                       genre.levels.get("chord", 0.3) * velocity * rng.uniform(0.8, 1.0) / len(chord) * 2,
                       length=genre.chord_length * sixteenth)
    mix = mix[: int(seconds * RATE)]
    mix /= max(np.abs(mix).max(), 1e-6) / 0.89
    described = {"genre": genre.name, "bpm": round(bpm, 3), "swing": round(swing, 3), "kit": kit.name,
                 "bars": bars, "seconds": seconds}
    if not tonal:
        return mix, {**described, "key": None}
    return mix, {**described, "root": root, "key": Key(tonic, mode == "minor").name, "tonic": tonic, "mode": mode,
                 "progression": [f"{d}{q}" for d, q in progression],
                 "bass_program": int(bass_program), "chord_program": int(chord_program)}


def build_corpus(out: Path, *, clips_per_genre: int = 400, genres: list[str] | None = None, seed: int = 0,
                 on_clip=None, palette_cache: Path | None = None, seconds: float = CLIP_SECONDS) -> int:
    """Write the corpus to ``out``; clips already there are kept (resumable). Returns clips written.

    The rendered note palette is cached in ``palette_cache`` (default ``out/.palette.npz``).
    Clips are ``seconds`` long; a corpus started with another length is refused.
    """
    import soundfile

    names = genres or list(GENRES)
    unknown = [g for g in names if g not in GENRES]
    if unknown:
        raise CorpusError(f"unknown genre(s) {unknown}; choose from {list(GENRES)}")
    for sidecar in sorted(Path(out).glob("*/*.json"))[:1]:
        started = json.loads(sidecar.read_text()).get("seconds")
        if started != seconds:
            raise CorpusError(f"{out}: started with {started} s clips ({sidecar.name}), not {seconds}; use a new folder")
    kits = load_kits()
    programs = sorted({p for g in names for p in (*GENRES[g].bass_program, *GENRES[g].chord_program)})
    palette = render_palette(programs, palette_cache or out / ".palette.npz")
    written = 0
    for genre_index, name in enumerate(names):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for clip in range(clips_per_genre):
            path = folder / f"{name}_{clip:04d}.flac"
            if not path.exists():
                rng = np.random.default_rng([seed, list(GENRES).index(name), clip])
                audio, meta = render_clip(GENRES[name], kits, palette, rng, seconds)
                partial = path.with_suffix(".part.flac")
                soundfile.write(partial, audio, RATE, subtype="PCM_16")
                path.with_suffix(".json").write_text(json.dumps({**meta, "seed": seed, "clip": clip}) + "\n")
                partial.rename(path)  # whole files only: a killed run resumes cleanly
                written += 1
            if on_clip is not None:
                on_clip()
    return written
