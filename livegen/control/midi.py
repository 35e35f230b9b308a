"""MIDI in and out (python-rtmidi; mido for port names and clock out): the controller drives the
actions, its LEDs show the set.

Incoming messages wait in rtmidi's own (C++) queue, with no Python callback per
message: a thread of ours drains it every few milliseconds, keeps the last
value of each knob (a flood of CC moves becomes one action per knob per round)
and follows a MIDI clock. So a controller sending thousands of messages a
second takes the interpreter, which the audio callback shares, some 250 times
a second and briefly. The port is watched: unplugged and plugged back, it
reopens by itself.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .actions import BUTTONS, KNOBS, Controls
from .clock import MidiClockFollower
from .mapping import Binding, Mapping, write_mapping

# --midi-api names -> rtmidi API names (mido: "mido.backends.rtmidi/<API>")
MIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
CLOCK_STATUS = {0xF8: "clock", 0xFA: "start", 0xFB: "continue", 0xFC: "stop", 0xF2: "songpos"}
POLL_SECONDS = 0.004


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


def rtmidi_api(api: str | None) -> int:
    """python-rtmidi's API constant for a --midi-api name (or MIDO_BACKEND's, or rtmidi's choice)."""
    import rtmidi

    name = MIDI_APIS.get((api or "").lower())
    if api is not None and name is None:
        raise MidiError(f"unknown MIDI API {api!r} (choose {', '.join(MIDI_APIS)})")
    if name is None and "/" in os.environ.get("MIDO_BACKEND", ""):
        name = os.environ["MIDO_BACKEND"].rsplit("/", 1)[1]
    return getattr(rtmidi, f"API_{name}", rtmidi.API_UNSPECIFIED)


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
        import rtmidi

        api_id = rtmidi_api(api)
        # One client each way for the whole set: listing ports through a fresh client every look
        # would, on JACK, change the graph each time.
        self._in = rtmidi.MidiIn(api_id, "livegen", queue_size_limit=8192)
        self._in.ignore_types(sysex=True, timing=False, active_sense=True)  # clock in: timing stays
        # An output client only where there are LEDs or a sysex to send: each client is one more
        # thread in the JACK graph to wake every cycle.
        self._out = rtmidi.MidiOut(api_id, "livegen") if (mapping.leds or mapping.init_sysex or led_port) else None
        self.wanted, self.virtual, self.led_port = port, virtual, led_port
        self.clock = MidiClockFollower(self.engine) if follow_clock else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-midi", daemon=True)
        self._in_open = self._out_open = False
        self.port_name: str | None = None
        self.connected = False
        self.reconnects = 0
        self.received = 0
        self._learning: tuple[str, object] | None = None
        self._learn_path: Path | None = None
        self._last_cc: dict[tuple[int, int], int] = {}
        self._leds: dict[tuple[str, int, int], int] = {}
        self._clock_base: float | None = None

    # ------------------------------------------------------------ ports
    def _open(self) -> bool:
        try:
            if self.virtual is not None:
                self._in.open_virtual_port(self.virtual)
                self.port_name = self.virtual
            else:
                names = self._in.get_ports()
                self.port_name = find_port(names, self.wanted)
                self._in.open_port(names.index(self.port_name))
        except Exception as err:  # MidiError, or rtmidi's own errors when the port vanished meanwhile
            self.connected = False
            self._note(f"MIDI: {err}")
            return False
        self._in_open = self.connected = True
        self._open_output()
        return True

    def _open_output(self) -> None:
        """LEDs (and the init sysex) go to the controller's output port, found by the same name."""
        wanted = self.led_port or (self.port_name if self.virtual is None else None)
        if wanted is None or self._out is None:
            return
        try:
            names = self._out.get_ports()
            name = find_port(names, wanted, "MIDI output") if self.led_port else next(
                (n for n in names if n.split(":")[0] == wanted.split(":")[0]), None)
            if name is None:
                return
            self._out.open_port(names.index(name))
            self._out_open = True
            self._leds.clear()
            if self.mapping.init_sysex:
                self._out.send_message([0xF0, *self.mapping.init_sysex, 0xF7])
        except Exception as err:
            self._note(f"MIDI out: {err}")

    def _close(self) -> None:
        for port, is_open in ((self._in, self._in_open), (self._out, self._out_open)):
            if is_open:
                try:
                    port.close_port()
                except Exception:  # a port whose device is gone may fail to close; it is dropped anyway
                    pass
        self._in_open = self._out_open = self.connected = False

    def _present(self) -> bool:
        try:
            return self.virtual is not None or self.port_name in self._in.get_ports()
        except Exception:
            return False

    # ------------------------------------------------------------ running
    def start(self) -> "MidiControl":
        if not self._open():
            raise MidiError(f"could not open MIDI input {self.wanted or self.virtual!r}: "
                            f"{self.controls.log[-1] if self.controls.log else ''}")
        self.engine.set_controller(self.mapping.name)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._close()
        self._in.delete()
        if self._out is not None:
            self._out.delete()

    def _run(self) -> None:
        last_check = last_leds = time.monotonic()
        while not self._stop.wait(POLL_SECONDS):
            self._drain()
            now = time.monotonic()
            if now - last_check > 1.0:
                last_check = now
                self._watch_port()
            if now - last_leds > 0.1 and self._out_open:
                last_leds = now
                self._update_leds()

    def _watch_port(self) -> None:
        if self.connected and not self._present():
            self._close()
            self._note(f"MIDI: {self.port_name} went away; waiting for it")
        elif not self.connected and self.virtual is None:
            try:
                find_port(self._in.get_ports(), self.wanted)
            except Exception:  # not there yet (or the MIDI system is busy): look again next second
                return
            if self._open():
                self.reconnects += 1
                self._note(f"MIDI: {self.port_name} is back")

    def _message_time(self, delta: float) -> float:
        """When a message arrived: rtmidi's gaps between messages, kept on our clock (not the poll's)."""
        now = time.perf_counter()
        if self._clock_base is None or abs(self._clock_base + delta - now) > 0.05:
            self._clock_base = now  # first message, or drifted: take the poll's time
        else:
            self._clock_base += delta
        return self._clock_base

    def _drain(self) -> None:
        knobs: dict[tuple[int, int], tuple[Binding, int]] = {}  # the last value of each knob this round
        while self._in_open:
            event = self._in.get_message()
            if event is None:
                break
            data, delta = event
            t = self._message_time(delta)
            self.received += 1
            status = data[0]
            if status in CLOCK_STATUS:
                if self.clock is not None:
                    position = data[1] | (data[2] << 7) if status == 0xF2 and len(data) == 3 else None
                    self.clock.receive(CLOCK_STATUS[status], t, position)
                continue
            kind, channel = status & 0xF0, (status & 0x0F) + 1
            if kind == 0x90 and len(data) == 3 and data[2] > 0:
                control = ("note", data[1])
            elif kind == 0xB0 and len(data) == 3:
                control = ("cc", data[1])
            else:
                continue
            if self._learning is not None:
                self._learn(control, channel)
                continue
            binding = self.mapping.find(control[0], control[1], channel)
            if binding is None:
                continue
            if control[0] == "note":
                self.controls.perform(binding.action, binding.value, source=f"note {data[1]}")
                continue
            value, previous = data[2], self._last_cc.get((channel, data[1]), 0)
            self._last_cc[(channel, data[1])] = value
            if binding.action in KNOBS and (binding.value is None or binding.action not in BUTTONS):
                knobs[(channel, data[1])] = (binding, value)
            elif value >= 64 > previous:  # a CC button: fire once as it goes down
                self.controls.perform(binding.action, binding.value, source=f"cc {data[1]}")
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
        on = {"record": state["recording"] is not None, "cue": state["cue"], "auto": bool(state["auto_bars"]),
              "key_lock": state["key"]["mode"] != "off"}
        return leds.get("on") if on.get(binding.led) else leds.get("off")

    def _update_leds(self) -> None:
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
            status = (0x90 if kind == "note" else 0xB0) | channel
            try:
                self._out.send_message([status, number, colour])
            except Exception as err:  # the device went away mid-send; the watcher reopens it
                self._note(f"MIDI out: {err}")
                return

    def _note(self, text: str) -> None:
        self.controls.log.append(text)
