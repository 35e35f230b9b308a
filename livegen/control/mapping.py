"""Controller mappings: ``presets/controllers/*.toml`` bind notes and CCs to actions.

    name = "Akai APC mini"
    ports = ["APC MINI"]          # substrings of the MIDI port names it fits
    source = "where the numbers come from"
    init_sysex = [0x00, 0x20]     # optional: sent (inside F0 ... F7) when the port opens
    [leds]                        # optional: colour per state (velocity / CC value)
    off = 0
    ready = 1
    selected = 5
    empty = 3
    on = 1
    [[control]]
    action = "trigger"            # livegen.control.actions
    note = 56                     # or cc = 48
    channel = 1                   # 1-16; left out: any
    value = 0                     # the action's parameter, where it takes one
    led = "genre"                 # genre | record | cue | auto

A file that breaks these rules gets an error naming the file, the line and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..presets import PRESETS_DIR
from .actions import ACTIONS, BUTTONS, KNOBS

LED_RULES = {"genre", "record", "cue", "auto", "key_lock"}
LED_STATES = ("off", "ready", "selected", "empty", "on")
_TOP_KEYS = {"name", "ports", "source", "init_sysex", "leds", "control"}
_CONTROL_KEYS = {"action", "note", "cc", "channel", "value", "led"}


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class Binding:
    action: str
    note: int | None = None
    cc: int | None = None
    channel: int | None = None  # 1-16, None: any
    value: object = None
    led: str | None = None

    @property
    def control(self) -> tuple[str, int]:
        return ("note", self.note) if self.note is not None else ("cc", self.cc)

    def matches(self, kind: str, number: int, channel: int) -> bool:
        return (kind, number) == self.control and (self.channel is None or self.channel == channel)


@dataclass
class Mapping:
    name: str
    ports: list[str]
    source: str = ""
    bindings: list[Binding] = field(default_factory=list)
    leds: dict[str, int] = field(default_factory=dict)
    init_sysex: list[int] = field(default_factory=list)
    path: Path | None = None

    def find(self, kind: str, number: int, channel: int) -> Binding | None:
        """The binding for a note or CC on a MIDI channel (1-16)."""
        for binding in self.bindings:
            if binding.matches(kind, number, channel):
                return binding
        return None

    def bind(self, binding: Binding) -> None:
        """Add ``binding``, replacing whatever the same control did before (MIDI learn)."""
        self.bindings = [b for b in self.bindings
                         if not (b.control == binding.control and b.channel in (None, binding.channel))]
        self.bindings.append(binding)

    def fits(self, port_name: str) -> int:
        """How well this mapping fits a port: the length of its longest matching name part, 0 if none."""
        return max((len(part) for part in self.ports if part.lower() in port_name.lower()), default=0)


def _line_of(text: str, table_index: int | None, key: str) -> int:
    """1-based line of ``key`` in the file (in the table_index-th [[control]] when given)."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    if table_index is not None:
        heads = [i for i, line in enumerate(lines) if line.strip() == "[[control]]"]
        if table_index < len(heads):
            start = heads[table_index]
            end = heads[table_index + 1] if table_index + 1 < len(heads) else len(lines)
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1


def _midi_number(value, what: str, low: int = 0, high: int = 127) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number {low}-{high}, got {value!r}")
    return value


def parse_mapping(text: str, path: Path) -> Mapping:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"{path}: {err}") from None

    def fail(message: str, key: str, index: int | None = None):
        where = f"[[control]] {index + 1}, " if index is not None else ""
        raise MappingError(f"{path}, line {_line_of(text, index, key)}: {where}key '{key}': {message}")

    for key in data:
        if key not in _TOP_KEYS:
            fail(f"unknown key (keys: {', '.join(sorted(_TOP_KEYS))})", key)
    for key in ("name", "ports"):
        if key not in data:
            raise MappingError(f"{path}: missing key '{key}'")
    if not isinstance(data["name"], str):
        fail("must be text", "name")
    ports = data["ports"]
    if not isinstance(ports, list) or not all(isinstance(p, str) for p in ports):
        fail("must be a list of port name parts", "ports")
    leds = data.get("leds", {})
    if not isinstance(leds, dict):
        fail("must be a table", "leds")
    for state, colour in leds.items():
        if state not in LED_STATES:
            fail(f"unknown LED state {state!r} (states: {', '.join(LED_STATES)})", state)
        try:
            _midi_number(colour, "an LED colour")
        except ValueError as err:
            fail(str(err), state)
    sysex = data.get("init_sysex", [])
    try:
        sysex = [_midi_number(b, "a sysex byte") for b in sysex]
    except (TypeError, ValueError) as err:
        fail(str(err), "init_sysex")

    bindings, seen = [], {}
    for index, entry in enumerate(data.get("control", [])):
        for key in entry:
            if key not in _CONTROL_KEYS:
                fail(f"unknown key (keys: {', '.join(sorted(_CONTROL_KEYS))})", key, index)
        action = entry.get("action")
        if action not in ACTIONS:
            fail(f"unknown action {action!r} (actions: {', '.join(sorted(ACTIONS))})", "action", index)
        if ("note" in entry) == ("cc" in entry):
            fail("give exactly one of 'note' or 'cc'", "note" if "note" in entry else "action", index)
        kind = "note" if "note" in entry else "cc"
        try:
            number = _midi_number(entry[kind], f"'{kind}'")
        except ValueError as err:
            fail(str(err), kind, index)
        channel = entry.get("channel")
        if channel is not None:
            try:
                _midi_number(channel, "'channel'", 1, 16)
            except ValueError as err:
                fail(str(err), "channel", index)
        value = entry.get("value")
        if kind == "note" and action not in BUTTONS:
            fail(f"action {action!r} needs a knob (cc), not a note", "action", index)
        if kind == "cc" and action not in KNOBS and action not in BUTTONS:
            fail(f"action {action!r} cannot take a cc", "action", index)
        led = entry.get("led")
        if led is not None and led not in LED_RULES:
            fail(f"unknown LED rule {led!r} (rules: {', '.join(sorted(LED_RULES))})", "led", index)
        if led == "genre" and value is None:
            fail("an LED showing a genre needs the genre as 'value'", "led", index)
        control = (kind, number, channel)
        if control in seen:
            fail(f"{kind} {number} on channel {channel or 'any'} is already bound by [[control]] {seen[control] + 1}",
                 kind, index)
        seen[control] = index
        bindings.append(Binding(action=action, note=number if kind == "note" else None,
                                cc=number if kind == "cc" else None, channel=channel, value=value, led=led))
    return Mapping(name=data["name"], ports=list(ports), source=str(data.get("source", "")), bindings=bindings,
                   leds=dict(leds), init_sysex=sysex, path=path)


def controllers_dir(presets_dir: Path = PRESETS_DIR) -> Path:
    return presets_dir / "controllers"


def load_mapping(name_or_path: str | Path, presets_dir: Path = PRESETS_DIR) -> Mapping:
    """A mapping by file path, or by name from presets/controllers/."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = controllers_dir(presets_dir) / f"{name_or_path}.toml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        known = sorted(p.stem for p in controllers_dir(presets_dir).glob("*.toml"))
        raise MappingError(f"no controller mapping {str(name_or_path)!r} (shipped: {', '.join(known)})") from None
    return parse_mapping(text, path)


def mapping_for_port(port_name: str, presets_dir: Path = PRESETS_DIR) -> Mapping:
    """The shipped mapping that fits a port name best; the generic one when none does."""
    best, best_fit = None, 0
    for path in sorted(controllers_dir(presets_dir).glob("*.toml")):
        mapping = load_mapping(path)
        fit = mapping.fits(port_name)
        if fit > best_fit and path.stem != "generic":
            best, best_fit = mapping, fit
    return best or load_mapping("generic", presets_dir)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_mapping(mapping: Mapping, path: Path) -> Path:
    """Write ``mapping`` as a controller file (MIDI learn's output); it loads back the same."""
    lines = ["# Written by livegen's MIDI learn.", f"name = {_toml_value(mapping.name)}",
             f"ports = {_toml_value(mapping.ports)}", f"source = {_toml_value(mapping.source or 'MIDI learn')}"]
    if mapping.init_sysex:
        lines.append(f"init_sysex = {_toml_value(mapping.init_sysex)}")
    if mapping.leds:
        lines += ["", "[leds]"] + [f"{state} = {colour}" for state, colour in mapping.leds.items()]
    for binding in mapping.bindings:
        lines += ["", "[[control]]", f"action = {_toml_value(binding.action)}"]
        kind, number = binding.control
        lines.append(f"{kind} = {number}")
        for key in ("channel", "value", "led"):
            if getattr(binding, key) is not None:
                lines.append(f"{key} = {_toml_value(getattr(binding, key))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    parse_mapping(path.read_text(), path)  # what learn writes must load
    return path
