"""MIDI in and out (mido over python-rtmidi): the controller drives the actions, its LEDs show the set.

Incoming messages are only queued by rtmidi's callback; a thread of our own
drains the queue, keeps the last value of each knob (a flood of CC moves
becomes one action per knob per round) and follows a MIDI clock. So a
controller sending thousands of messages a second costs the audio callback
little. The port is watched: unplugged and plugged back, it reopens by itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path

from .actions import BUTTONS, KNOBS, Controls
from .clock import MidiClockFollower
from .mapping import Binding, Mapping, write_mapping

# --midi-api names -> rtmidi API names (mido: "mido.backends.rtmidi/<API>")
MIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
CLOCK_TYPES = {"clock", "start", "stop", "continue", "songpos"}


class MidiError(RuntimeError):
    pass


def midi_backend(api: str | None = None):
    """mido's rtmidi backend on the API asked for (or MIDO_BACKEND's, or rtmidi's default)."""
    import mido

    if api is None:
        return mido.Backend(os.environ.get("MIDO_BACKEND", "mido.backends.rtmidi"), load=True)
    if api.lower() not in MIDI_APIS:
        raise MidiError(f"unknown MIDI API {api!r} (choose {', '.join(MIDI_APIS)})")
    return mido.Backend(f"mido.backends.rtmidi/{MIDI_APIS[api.lower()]}", load=True)


class PortLister:
    """Lists input port names through one long-lived rtmidi client: asking mido each time would open
    and close a client per look (on JACK, a graph change every second while a port is watched)."""

    def __init__(self, api: str | None):
        import rtmidi

        name = MIDI_APIS.get((api or "").lower())
        if name is None and "/" in os.environ.get("MIDO_BACKEND", ""):
            name = os.environ["MIDO_BACKEND"].rsplit("/", 1)[1]
        self._client = rtmidi.MidiIn(getattr(rtmidi, f"API_{name}", rtmidi.API_UNSPECIFIED), "livegen-ports")

    def inputs(self) -> list[str]:
        return self._client.get_ports()

    def close(self) -> None:
        self._client.delete()


def find_port(names: list[str], wanted: str, what: str = "MIDI input") -> str:
    """The port named ``wanted`` exactly, else the one name containing it."""
    if wanted in names:
        return wanted
    matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    problem = "several" if matches else "no"
    raise MidiError(f"{problem} {what} ports match {wanted!r} (ports: {', '.join(names) or 'none'})")


class MidiControl:
    """One controller: its input drives ``controls`` through ``mapping``; its output gets LED states."""

    def __init__(self, controls: Controls, mapping: Mapping, port: str | None = None, virtual: str | None = None,
                 api: str | None = None, follow_clock: bool = False, led_port: str | None = None):
        if port is None and virtual is None:
            raise MidiError("name a MIDI input port (--midi) or a virtual one to create (--midi-virtual)")
        self.controls, self.mapping = controls, mapping
        self.engine = controls.engine
        self.backend = midi_backend(api)
        self._ports = PortLister(api)
        self.wanted, self.virtual, self.led_port = port, virtual, led_port
        self.clock = MidiClockFollower(self.engine) if follow_clock else None
        self._inbox: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-midi", daemon=True)
        self._input = self._output = None
        self.port_name: str | None = None
        self.connected = False
        self.reconnects = 0
        self.received = 0
        self._learning: tuple[str, object] | None = None
        self._learn_path: Path | None = None
        self._last_cc: dict[tuple[int, int], int] = {}
        self._leds: dict[tuple[str, int, int], int] = {}

    # ------------------------------------------------------------ ports
    def _open(self) -> bool:
        try:
            if self.virtual is not None:
                self._input = self.backend.open_input(self.virtual, virtual=True, callback=self._receive)
                self.port_name = self.virtual
            else:
                self.port_name = find_port(self._ports.inputs(), self.wanted)
                self._input = self.backend.open_input(self.port_name, callback=self._receive)
        except (MidiError, OSError, IOError) as err:
            self.connected = False
            self._note(f"MIDI: {err}")
            return False
        self.connected = True
        self._open_output()
        return True

    def _open_output(self) -> None:
        """LEDs (and the init sysex) go to the controller's output port, found by the same name."""
        wanted = self.led_port or (self.port_name if self.virtual is None else None)
        if wanted is None or not (self.mapping.leds or self.mapping.init_sysex):
            return
        try:
            names = self.backend.get_output_names()
            name = find_port(names, wanted, "MIDI output") if self.led_port else next(
                (n for n in names if n.split(":")[0] == wanted.split(":")[0]), None)
            if name is None:
                return
            self._output = self.backend.open_output(name)
            self._leds.clear()
            if self.mapping.init_sysex:
                import mido

                self._output.send(mido.Message("sysex", data=self.mapping.init_sysex))
        except (MidiError, OSError, IOError) as err:
            self._note(f"MIDI out: {err}")

    def _close(self) -> None:
        for port in (self._input, self._output):
            if port is not None:
                try:
                    port.close()
                except Exception:  # a port whose device is gone may fail to close; it is dropped anyway
                    pass
        self._input = self._output = None
        self.connected = False

    def _present(self) -> bool:
        try:
            return self.virtual is not None or self.port_name in self._ports.inputs()
        except Exception:
            return False

    # ------------------------------------------------------------ running
    def start(self) -> "MidiControl":
        if not self._open():
            raise MidiError(f"could not open MIDI input {self.wanted or self.virtual!r}: "
                            f"{self.controls.log[-1] if self.controls.log else ''}")
        self.engine.controller = self.mapping.name
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._close()
        self._ports.close()

    def _receive(self, message) -> None:
        """rtmidi's thread: queue and go (appending to a deque needs no lock)."""
        self._inbox.append((time.perf_counter(), message))
        self._wake.set()

    def _run(self) -> None:
        last_check = last_leds = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            self._drain()
            now = time.monotonic()
            if now - last_check > 1.0:
                last_check = now
                self._watch_port()
            if now - last_leds > 0.1 and self._output is not None:
                last_leds = now
                self._update_leds()

    def _watch_port(self) -> None:
        if self.connected and not self._present():
            self._close()
            self._note(f"MIDI: {self.port_name} went away; waiting for it")
        elif not self.connected and self.virtual is None:
            try:
                find_port(self._ports.inputs(), self.wanted)
            except Exception:  # not there yet (or the MIDI system is busy): look again next second
                return
            if self._open():
                self.reconnects += 1
                self._note(f"MIDI: {self.port_name} is back")

    def _drain(self) -> None:
        knobs: dict[tuple[int, int], tuple[Binding, int]] = {}  # the last value of each knob this round
        while self._inbox:
            t, message = self._inbox.popleft()
            self.received += 1
            kind = message.type
            if kind in CLOCK_TYPES:
                if self.clock is not None:
                    self.clock.receive(kind, t, getattr(message, "pos", None))
                continue
            if kind == "note_on" and message.velocity > 0:
                control = ("note", message.note)
            elif kind == "control_change":
                control = ("cc", message.control)
            else:
                continue
            channel = message.channel + 1
            if self._learning is not None:
                self._learn(control, channel)
                continue
            binding = self.mapping.find(control[0], control[1], channel)
            if binding is None:
                continue
            if control[0] == "note":
                self.controls.perform(binding.action, binding.value, source=f"note {message.note}")
                continue
            value, previous = message.value, self._last_cc.get((channel, message.control), 0)
            self._last_cc[(channel, message.control)] = value
            if binding.action in KNOBS and (binding.value is None or binding.action not in BUTTONS):
                knobs[(channel, message.control)] = (binding, value)
            elif value >= 64 > previous:  # a CC button: fire once as it goes down
                self.controls.perform(binding.action, binding.value, source=f"cc {message.control}")
        for (channel, number), (binding, value) in knobs.items():
            self.controls.perform(binding.action, binding.value, amount=value / 127, source=f"cc {number}")

    # ------------------------------------------------------------ learn
    def learn(self, action: str, value=None, save_to: Path | None = None) -> None:
        """Bind the next note or CC that arrives to ``action`` (and write the mapping to ``save_to``)."""
        if action not in BUTTONS | KNOBS:
            raise MidiError(f"cannot learn unknown action {action!r}")
        self._learning, self._learn_path = (action, value), save_to
        self._note(f"learn: move a control for {action}")

    def _learn(self, control: tuple[str, int], channel: int) -> None:
        action, value = self._learning
        kind, number = control
        if kind == "note" and action not in BUTTONS:
            self._note(f"learn: {action} needs a knob or fader, not a pad")
            return
        self._learning = None
        binding = Binding(action=action, note=number if kind == "note" else None,
                          cc=number if kind == "cc" else None, channel=channel, value=value)
        self.mapping.bind(binding)
        self._note(f"learn: {kind} {number} (channel {channel}) -> {action}")
        if self._learn_path is not None:
            write_mapping(self.mapping, self._learn_path)
            self._note(f"learn: saved {self._learn_path}")

    # ------------------------------------------------------------ LEDs
    def _led_colour(self, binding: Binding, state: dict) -> int | None:
        leds = self.mapping.leds
        if binding.led == "genre":
            try:
                genre = self.controls._genre(binding.value)
            except ValueError:
                return leds.get("off")
            if genre == state["genre"]:
                return leds.get("selected")
            return leds.get("ready") if state["buffer"].get(genre) else leds.get("empty")
        on = {"record": state["recording"] is not None, "cue": state["cue"], "auto": bool(state["auto_bars"])}
        return leds.get("on") if on.get(binding.led) else leds.get("off")

    def _update_leds(self) -> None:
        import mido

        state = self.engine.snapshot()
        for binding in self.mapping.bindings:
            if binding.led is None:
                continue
            colour = self._led_colour(binding, state)
            kind, number = binding.control
            channel = (binding.channel or 1) - 1
            key = (kind, number, channel)
            if colour is None or self._leds.get(key) == colour:
                continue  # send changes only
            self._leds[key] = colour
            message = (mido.Message("note_on", note=number, velocity=colour, channel=channel) if kind == "note"
                       else mido.Message("control_change", control=number, value=colour, channel=channel))
            try:
                self._output.send(message)
            except Exception as err:  # the device went away mid-send; the watcher reopens it
                self._note(f"MIDI out: {err}")
                return

    def _note(self, text: str) -> None:
        self.controls.log.append(text)
