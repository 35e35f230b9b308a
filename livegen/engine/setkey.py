"""The set's key, and which loops keep to it (``--key``, ``--key-mode``).

``pick`` launches only loops whose estimated key mixes with the set's (the same key, a step round
the Camelot wheel, or the relative; a loop with no key mixes with any) and lets the rest go, so the
worker makes more; ``shift`` has the worker move each new loop that does not by up to
``MOST_SEMITONES`` to a key that does (loops it cannot move are let go as in ``pick``); ``off``
shows keys and keeps none. ``auto`` takes the key of the first loop with one that launches.
While a key is kept, a key-conditioned model is asked to make its loops in it (``asked_key``), so
pick and shift have less to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..loops.key import MOST_SEMITONES, Key, compatible, key_label, parse_key

KEY_MODES = ("pick", "shift", "off")
__all__ = ["KEY_MODES", "MOST_SEMITONES", "SetKey"]


@dataclass
class SetKey:
    key: Key | None = None  # in force; None: none yet (auto) or none asked for
    mode: str = "pick"
    auto: bool = False  # the first launched loop with a key sets it
    locked_mode: str = "pick"  # the mode key lock turns back on

    @classmethod
    def from_setting(cls, text: str | None, mode: str = "pick") -> "SetKey":
        """From ``--key`` (``auto``, ``off``/None, or a key as ``parse_key`` reads it) and ``--key-mode``."""
        if mode not in KEY_MODES:
            raise ValueError(f"key mode {mode!r}: choose {', '.join(KEY_MODES)}")
        locked = mode if mode != "off" else "pick"
        if text is None or text.strip().lower() == "off":
            return cls(None, "off", locked_mode=locked)
        if text.strip().lower() == "auto":
            return cls(None, mode, auto=True, locked_mode=locked)
        return cls(parse_key(text), mode, locked_mode=locked)

    def fits(self, code: str | None) -> bool:
        """Whether a loop whose estimated key is ``code`` (a Camelot code; None: no key) may launch."""
        if self.mode == "off" or self.key is None or code is None:
            return True
        return compatible(parse_key(code), self.key)

    def learn(self, code: str | None) -> bool:
        """``auto``: take ``code`` as the set's key if it has none yet; True when it did."""
        if not self.auto or self.key is not None or code is None:
            return False
        self.key = parse_key(code)
        return True

    def step(self, semitones: int) -> bool:
        """Key up / key down: the set's key moved by ``semitones``; False when it has none yet."""
        if self.key is None:
            return False
        self.key = self.key.shifted(semitones)
        return True

    def toggle_lock(self) -> None:
        """Key lock off: keys are shown and none is kept; on again: the mode it had (pick when it had
        none), and ``auto`` if the set has no key yet."""
        if self.mode != "off":
            self.locked_mode, self.mode = self.mode, "off"
            return
        self.mode = self.locked_mode
        self.auto = self.auto or self.key is None

    def next_mode(self, mode: str | None = None) -> None:
        """``mode``, or else the other of pick and shift; with the lock off, the mode it turns back on
        ("off" turns the lock off)."""
        if mode is not None and mode not in KEY_MODES:
            raise ValueError(f"key mode {mode!r}: choose {', '.join(KEY_MODES)}")
        if mode == "off":
            if self.mode != "off":
                self.toggle_lock()
            return
        current = self.locked_mode if self.mode == "off" else self.mode
        chosen = mode or ("shift" if current == "pick" else "pick")
        if self.mode == "off":
            self.locked_mode = chosen
        else:
            self.mode = chosen

    def choose(self, text: str) -> None:
        """A key named outright (``8A``, ``Am``), or ``auto``; the lock turns on if it was off."""
        if text.strip().lower() == "auto":
            self.key, self.auto = None, True
        else:
            self.key, self.auto = parse_key(text), False
        if self.mode == "off":
            self.mode = self.locked_mode

    def shift_target(self) -> str | None:
        """The key a new loop is to be shifted to fit (``shift`` mode, once the set has a key)."""
        return self.key.camelot if self.mode == "shift" and self.key is not None else None

    def asked_key(self) -> str | None:
        """The key a key-conditioned model is asked to make new loops in: the set's, while it is kept."""
        return self.key.camelot if self.mode != "off" and self.key is not None else None

    def describe(self) -> dict:
        return {"key": self.key.camelot if self.key else None, "label": key_label(self.key.camelot) if self.key
                else None, "mode": self.mode, "auto": self.auto}
