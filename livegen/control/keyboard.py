"""The computer keyboard as a controller: a key map, and what a key press does.

KEYMAP is data, like a MIDI mapping: each key names the same ``(action,
value)`` a pad or knob would send, so the keyboard and the controller drive
the engine through one path (``Controls.perform``). Two keys are the
keyboard's own: "l" learns a MIDI binding for the next key's action, "Q" ends
the set. Reading keys from the terminal is ``livegen.ui.keys.KeyReader``'s job.
"""

from __future__ import annotations

from pathlib import Path

# key -> (action, value). Names for keys that are not one printable character:
# "space", "enter", "escape", "up", "down", "left", "right".
KEYMAP: dict[str, tuple[str, object]] = {
    "space": ("trigger", None),
    "enter": ("trigger", None),
    **{str(number): ("trigger", number - 1) for number in range(1, 10)},  # launch genre 1-9
    "q": ("quantise", None),
    "b": ("bars", None),
    "+": ("steps_up", None),
    "-": ("steps_down", None),
    "s": ("sampler", None),
    "v": ("variation", None),
    "c": ("continuation", None),
    "m": ("morph", None),
    "t": ("tap", None),
    "up": ("bpm_up", None),
    "down": ("bpm_down", None),
    "left": ("nudge", -10.0),  # hold the set back 10 ms
    "right": ("nudge", 10.0),  # push it ahead
    "[": ("filter_step", -0.1),
    "]": ("filter_step", 0.1),
    ",": ("volume_step", -0.05),
    ".": ("volume_step", 0.05),
    "r": ("record", None),
    "w": ("save", None),
    "x": ("cue", None),
    "a": ("auto", None),
    "j": ("key_down", None),  # the set's key a semitone down, the playing loop with it
    "k": ("key_up", None),
    "K": ("key_lock", None),  # keep the set in key, or not
    "J": ("key_mode", None),  # pick <-> shift
    "l": ("learn", None),
    "Q": ("quit", None),  # capital, so a stray q (quantise) cannot end the set
}

# What the help line calls each action; a shared label puts both keys of a pair together.
_LABELS = {"steps_up": "steps", "steps_down": "steps", "bpm_up": "bpm", "bpm_down": "bpm",
           "filter_step": "filter", "volume_step": "volume", "key_down": "key", "key_up": "key",
           "key_lock": "key lock", "key_mode": "key mode"}
_KEY_NAMES = {"up": "↑", "down": "↓", "left": "←", "right": "→"}


def _help_line(keymap: dict[str, tuple[str, object]]) -> str:
    """One line such as "space/enter trigger · 1-9 genre · +/- steps", in the map's order."""
    groups: dict[str, list[str]] = {}
    for key, (action, value) in keymap.items():
        label = "genre" if action == "trigger" and value is not None else _LABELS.get(action, action)
        groups.setdefault(label, []).append(_KEY_NAMES.get(key, key))
    parts = []
    for label, keys in groups.items():
        if len(keys) > 2 and all(key.isdigit() for key in keys):
            keys = [f"{keys[0]}-{keys[-1]}"]  # 1/2/3/.../9 reads better as 1-9
        parts.append(f"{'/'.join(keys)} {label}")
    return " · ".join(parts)


KEY_HELP = _help_line(KEYMAP)


class KeyboardControl:
    """Key presses to actions; the MIDI-learn state machine ("l", then the key of an action, then a
    control moved on the MIDI controller binds it)."""

    def __init__(self, controls, midi=None, learn_to: Path | None = None,
                 keymap: dict[str, tuple[str, object]] = KEYMAP):
        self.controls, self.midi, self.learn_to, self.keymap = controls, midi, learn_to, keymap
        self.learning = False  # "l" was pressed: the next key names the action to learn

    def press(self, key: str) -> bool:
        """Do what ``key`` says; False when it ends the set."""
        if key not in self.keymap:
            return True
        action, value = self.keymap[key]
        if self.learning and action not in ("learn", "quit"):
            self.learning = False
            if self.midi is None:
                self.controls.log.append("learn: no MIDI input open (--midi)")
            else:
                self.midi.learn(action, value, save_to=self.learn_to)
            return True
        if action == "quit":
            return False
        if action == "learn":
            self.learning = self.learn_to is not None
            self.controls.log.append("learn: press the key of an action" if self.learning
                                     else "learn: start with --learn FILE to keep what you learn")
            return True
        self.controls.perform(action, value, source="key")
        return True
