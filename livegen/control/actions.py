"""What a performer can do, by name: the one table MIDI mappings, OSC, keys and learn all use.

    buttons  fire once per press (note-on with velocity, or a CC reaching 64)
    knobs    take a CC's position, 0..1 (``amount``)

``select_genre``, ``quantise`` and ``bars`` are all three: a button with a value
(or, with none, the next choice), or a knob spread across the choices.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from pathlib import Path

from ..engine.transport import QUANTISE_BARS
from ..limits import STEPS_KNOB, TEMPO_KNOB
from ..loops.prep import BAR_LENGTHS
from ..presets import SAMPLERS

BUTTONS = {"trigger", "select_genre", "quantise", "bars", "nudge", "steps_up", "steps_down", "sampler", "variation",
           "continuation", "morph", "tap", "bpm_up", "bpm_down", "volume_step", "filter_step", "record", "save", "cue",
           "auto", "key", "key_up", "key_down", "key_lock", "key_mode"}
KNOBS = {"select_genre", "quantise", "bars", "steps", "variation_strength", "bpm", "volume", "filter"}
ACTIONS = BUTTONS | KNOBS

NUDGE_MS = 10.0  # a nudge with no value of its own


class ActionError(ValueError):
    pass


class Controls:
    """Turns named actions into engine calls; keeps what the actions themselves remember."""

    def __init__(self, engine, crate: Path = Path("crate"), log_size: int = 50):
        self.engine = engine
        self.crate = crate
        self.strength = 0.5  # variation strength, set by its knob
        self._taps: deque[float] = deque(maxlen=8)
        self.log: deque[str] = deque(maxlen=log_size)  # recent actions and errors, newest last
        self.performed: Counter[str] = Counter()  # actions done since start, by name

    def perform(self, action: str, value=None, amount: float | None = None, source: str = "") -> None:
        """Do ``action``: ``value`` is a mapping's parameter, ``amount`` a knob position 0..1."""
        handler = getattr(self, f"_do_{action}", None)
        if action not in ACTIONS or handler is None:
            raise ActionError(f"unknown action {action!r} (actions: {', '.join(sorted(ACTIONS))})")
        try:
            handler(value, amount)
        except (ActionError, ValueError, RuntimeError) as err:  # RuntimeError: EngineError (nothing playing)
            self.log.append(f"{source} {action}: {err}".strip())
            return
        self.performed[action] += 1
        shown = f" {value}" if value is not None else (f" {amount:.2f}" if amount is not None else "")
        self.log.append(f"{source} {action}{shown}".strip())

    # -- helpers
    def _state(self):
        """The engine's last snapshot: what a relative or toggling action starts from."""
        return self.engine.snapshot()

    def _genre(self, value) -> str:
        names = list(self.engine.settings.genres)
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            index = int(value)
            if not 0 <= index < len(names):
                raise ActionError(f"genre {index} is not in this set ({len(names)} genres)")
            return names[index]
        if value not in names:
            raise ActionError(f"genre {value!r} is not in this set ({', '.join(names)})")
        return value

    @staticmethod
    def _spread(choices: list, amount: float):
        return choices[min(int(amount * len(choices)), len(choices) - 1)]

    # -- launching
    def _do_trigger(self, value, amount):
        if value is None:
            self.engine.trigger()
            return
        genre = self._genre(value)
        self.engine.select_genre(genre)
        self.engine.trigger(genre)

    def _do_select_genre(self, value, amount):
        genre = self._genre(value) if value is not None else self._spread(list(self.engine.settings.genres), amount or 0.0)
        self.engine.select_genre(genre)

    def _choose(self, choices: list, current, value, amount, parse=str):
        """A button's own value, a knob spread across ``choices``, or (a button with none) the choice
        after ``current``, round."""
        if value is not None:
            return parse(value)
        if amount is not None:
            return self._spread(choices, amount)
        return choices[(choices.index(current) + 1) % len(choices)]

    def _do_quantise(self, value, amount):
        self.engine.set_quantise(self._choose(list(QUANTISE_BARS), self._state()["quantise"], value, amount))

    def _do_bars(self, value, amount):
        self.engine.set_bars(self._choose(sorted(BAR_LENGTHS), self._state()["bars"], value, amount, parse=int))

    def _do_nudge(self, value, amount):
        """Push the set ahead (value in ms, default 10) or, negative, hold it back."""
        self.engine.nudge(float(value) if value is not None else NUDGE_MS)

    def _do_variation(self, value, amount):
        self.engine.trigger_mode("variation", strength=float(value) if value is not None else self.strength)

    def _do_variation_strength(self, value, amount):
        self.strength = float(amount if amount is not None else value)

    def _do_continuation(self, value, amount):
        self.engine.trigger_mode("continuation")

    def _do_morph(self, value, amount):
        self.engine.trigger_mode("morph", strength=float(value) if value is not None else 0.5)

    # -- sampling
    def _do_steps_up(self, value, amount):
        self.engine.set_steps(int(STEPS_KNOB.clamp(int(self._state()["in_force"]["steps"]) + 1)))

    def _do_steps_down(self, value, amount):
        self.engine.set_steps(max(int(self._state()["in_force"]["steps"]) - 1, 1))

    def _do_steps(self, value, amount):
        self.engine.set_steps(int(value) if value is not None else round(STEPS_KNOB.sweep(amount or 0.0)))

    def _do_sampler(self, value, amount):
        names = list(SAMPLERS)
        if value is None:
            value = names[(names.index(self._state()["in_force"]["sampler"]) + 1) % len(names)]
        if value not in SAMPLERS:
            raise ActionError(f"unknown sampler {value!r} (samplers: {', '.join(names)})")
        self.engine.set_sampler(value)

    # -- tempo
    def _do_tap(self, value, amount):
        now = time.monotonic()
        if self._taps and now - self._taps[-1] > 2.0:
            self._taps.clear()  # a pause starts a new count
        self._taps.append(now)
        if len(self._taps) >= 3:
            gaps = [b - a for a, b in zip(self._taps, list(self._taps)[1:])]
            self.engine.set_bpm(round(60.0 / statistics.median(gaps), 1))

    def _do_bpm(self, value, amount):
        self.engine.set_bpm(float(value) if value is not None else round(TEMPO_KNOB.sweep(amount or 0.0), 1))

    def _do_bpm_up(self, value, amount):
        self.engine.set_bpm(round(self._state()["target_bpm"]) + 1.0)

    def _do_bpm_down(self, value, amount):
        self.engine.set_bpm(round(self._state()["target_bpm"]) - 1.0)

    # -- sound
    def _do_volume(self, value, amount):
        self.engine.set_gain(float(value) if value is not None else (amount or 0.0))

    def _do_volume_step(self, value, amount):
        self.engine.step_gain(float(value if value is not None else 0.05))

    def _do_filter_step(self, value, amount):
        self.engine.step_filter(float(value if value is not None else 0.1))

    def _do_filter(self, value, amount):
        # 64 of 127 is the centre detent: flat.
        self.engine.set_filter(float(value) if value is not None else ((amount or 0.0) * 127 - 64) / 63)

    # -- key
    def _do_key(self, value, amount):
        """The set's key, named by the mapping's value (8A, Am, auto)."""
        if value is None:
            raise ActionError("key: name the key in the mapping's value (8A, Am, auto)")
        self.engine.choose_key(str(value))

    def _do_key_up(self, value, amount):
        self.engine.step_key(int(value) if value is not None else 1)

    def _do_key_down(self, value, amount):
        self.engine.step_key(-int(value) if value is not None else -1)

    def _do_key_lock(self, value, amount):
        self.engine.toggle_key_lock()

    def _do_key_mode(self, value, amount):
        self.engine.set_key_mode(value)

    # -- toggles and keeping
    def _do_record(self, value, amount):
        if self._state()["recording"] is None:
            self.engine.start_recording(value)
        else:
            self.engine.stop_recording()

    def _do_save(self, value, amount):
        self.log.append(f"saved {self.engine.save_playing(self.crate).name}")

    def _do_cue(self, value, amount):
        self.engine.toggle_cue()

    def _do_auto(self, value, amount):
        self.engine.set_auto_bars(None if self._state()["auto_bars"] else int(value or 8))
