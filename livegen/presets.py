"""Genre presets: ``presets/genres/NAME.toml`` names a model dir and its defaults.

Wherever a genre is named, a model dir or a published model's Hub id may stand
instead: it plays as a genre of its own, with the default steps and sampler its
``livegen.json`` gives (else 50 DDIM steps).

    model = "../models/techno"     # relative to the preset file, or a published model's
                                   # Hugging Face Hub id ("teticio/audio-diffusion-breaks-256")
    label = "techno"               # class label, where one model holds several genres
    steps = 50
    sampler = "ddim"
    bpm_range = [125, 135]
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .jsonfile import read_json_object

# The samplers a preset, the command line or a controller may name, and their diffusers schedulers.
# Kept here, free of torch, so the engine's main process can check names without importing it.
SAMPLERS = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
}

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # owner/name, as the Hub spells them


def _presets_dir() -> Path:
    """$LIVEGEN_PRESETS, else the checkout's presets/ (run from source, or installed editable), else the
    copy an installed wheel carries (the package ``livegen_presets``)."""
    if os.environ.get("LIVEGEN_PRESETS"):
        return Path(os.environ["LIVEGEN_PRESETS"])
    checkout = Path(__file__).resolve().parent.parent / "presets"
    if checkout.is_dir():
        return checkout
    import importlib.util

    spec = importlib.util.find_spec("livegen_presets")
    if spec is None or not spec.submodule_search_locations:
        return checkout  # nowhere: loading a genre then says which presets exist (none)
    return Path(next(iter(spec.submodule_search_locations)))


PRESETS_DIR = _presets_dir()


class PresetError(ValueError):
    pass


@dataclass(frozen=True)
class GenrePreset:
    name: str
    model: Path | str  # a model dir, or a Hub id (str) where no dir of that name is beside the preset
    label: str | None = None
    steps: int = 50
    sampler: str = "ddim"
    # DDIM's eta: 0 draws the loop from its starting noise alone; 1 adds fresh noise each step, as DDPM
    # does, which the shipped models need for crisp hits at few steps (docs/models.md)
    eta: float = 0.0
    bpm_range: tuple[float, float] | None = None  # the genre's tempi; None: any

    @property
    def tempo_hint(self) -> float | None:
        """The tempo a loop of this genre most likely has (the middle of its range): where beat finding
        looks first, and which way an octave-off reading is folded, when no target tempo is given."""
        return None if self.bpm_range is None else sum(self.bpm_range) / 2


def is_hub_id(name) -> bool:
    """Could ``name`` be a Hugging Face Hub id? (A local directory of that name comes first.)"""
    return isinstance(name, str) and HUB_ID.fullmatch(name) is not None


def _model_location(preset_dir: Path, model: str) -> Path | str:
    local = preset_dir / model
    return model if is_hub_id(model) and not local.is_dir() else local.resolve()


def model_preset(location: str | Path) -> GenrePreset:
    """The preset of a model named directly (a dir, or a Hub id not downloaded yet): its livegen.json's
    default steps, sampler and eta where it has them, else 50 DDIM steps at eta 0."""
    local = Path(location).expanduser()
    if not local.is_dir():  # a Hub id: nothing to read until the worker fetches it
        return GenrePreset(name=str(location).split("/")[-1], model=str(location))
    extra_path = local / "livegen.json"
    extra = read_json_object(extra_path, PresetError) if extra_path.is_file() else {}
    try:
        steps, sampler = int(extra.get("default_steps", 50)), str(extra.get("default_sampler", "ddim"))
        eta = _eta(extra.get("default_eta", 0.0))
    except (TypeError, ValueError) as err:
        raise PresetError(f"{extra_path}: bad value ({err})") from None
    if sampler not in SAMPLERS:
        raise PresetError(f"{extra_path}: unknown default_sampler {sampler!r} (samplers: {', '.join(SAMPLERS)})")
    return GenrePreset(name=local.resolve().name, model=local.resolve(), steps=steps, sampler=sampler, eta=eta)


def _eta(value) -> float:
    eta = float(value)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta {eta:g} is outside 0-1")
    return eta


def load_genre(name_or_path: str | Path, presets_dir: Path = PRESETS_DIR) -> GenrePreset:
    """A genre preset by name (``presets_dir/genres/NAME.toml``) or .toml path; a model dir or Hub id
    gets its own (``model_preset``)."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        if path.expanduser().is_dir() or is_hub_id(name_or_path):
            return model_preset(name_or_path)
        path = presets_dir / "genres" / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        known = sorted(p.stem for p in (presets_dir / "genres").glob("*.toml"))
        raise PresetError(f"no model dir or genre preset {str(name_or_path)!r} (genres: {', '.join(known) or 'none'})") from None
    except tomllib.TOMLDecodeError as err:
        raise PresetError(f"{path}: {err}") from None
    if "model" not in data:
        raise PresetError(f"{path}: missing key 'model'")
    allowed = {"model", "label", "steps", "sampler", "eta", "bpm_range"}
    unknown = set(data) - allowed
    if unknown:
        raise PresetError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    if str(data.get("sampler", "ddim")) not in SAMPLERS:
        raise PresetError(f"{path}: unknown sampler {data['sampler']!r} (samplers: {', '.join(SAMPLERS)})")
    try:
        bpm_range = None
        if "bpm_range" in data:
            low, high = data["bpm_range"]
            bpm_range = (float(low), float(high))
            if not 0 < bpm_range[0] <= bpm_range[1]:
                raise ValueError(f"bpm_range {list(data['bpm_range'])} is not low <= high above 0")
        return GenrePreset(name=path.stem, model=_model_location(path.parent, str(data["model"])),
                           label=data.get("label"), steps=int(data.get("steps", 50)),
                           sampler=str(data.get("sampler", "ddim")), eta=_eta(data.get("eta", 0.0)),
                           bpm_range=bpm_range)
    except (TypeError, ValueError) as err:
        raise PresetError(f"{path}: bad value ({err})") from None
