"""Where the mixer's blocks go: a sound card (sounddevice) or a file clocked in real time.

The engine is given a description (``SoundCard`` or ``AudioFile``); the audio
process opens it (``open``) beside its mixer, so the callback runs there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mixer import Mixer
from .recorder import AudioFileWriter


class OutputError(RuntimeError):
    pass


def _find(items: list[dict], wanted: str | int | None, what: str, accept) -> int | None:
    """Index of the item named ``wanted`` (index, exact name or unique substring) that ``accept`` allows."""
    if wanted is None:
        return None
    if isinstance(wanted, int) or str(wanted).isdigit():
        index = int(wanted)
        if not 0 <= index < len(items) or not accept(items[index]):
            raise OutputError(f"no {what} with index {index}")
        return index
    names = [(i, item["name"]) for i, item in enumerate(items) if accept(item)]
    exact = [i for i, name in names if name == wanted]
    if exact:
        return exact[0]
    partial = [i for i, name in names if str(wanted).lower() in name.lower()]
    if len(partial) == 1:
        return partial[0]
    known = "; ".join(f"{i}: {name}" for i, name in names) or "none"
    problem = "several" if partial else "no"
    raise OutputError(f"{problem} {what}s match {wanted!r} (available: {known})")


def output_devices() -> list[tuple[int, str, str, int]]:
    """(index, name, host API, output channels) for each device that can play."""
    import sounddevice

    apis = sounddevice.query_hostapis()
    return [(i, d["name"], apis[d["hostapi"]]["name"], d["max_output_channels"])
            for i, d in enumerate(sounddevice.query_devices()) if d["max_output_channels"] > 0]


def resolve_output(device: str | int | None, host_api: str | int | None) -> int:
    """The sounddevice index to open, or a plain error when there is nothing to play through."""
    import sounddevice

    devices = list(sounddevice.query_devices())
    apis = list(sounddevice.query_hostapis())
    api = _find(apis, host_api, "host API", lambda a: True)
    playable = [d for d in devices if d["max_output_channels"] > 0 and (api is None or d["hostapi"] == api)]
    if not playable:
        where = f" on host API {apis[api]['name']!r}" if api is not None else ""
        raise OutputError(f"no sound output device found{where} (PortAudio lists none); "
                          "run headless with a file sink: livegen play --headless --output set.wav")
    accept = (lambda d: d["max_output_channels"] > 0 and (api is None or d["hostapi"] == api))
    index = _find(devices, device, "output device", accept)
    if index is None:
        default = sounddevice.default.device[1]
        if default is not None and default >= 0 and accept(devices[default]):
            return default
        return devices.index(playable[0])
    return index


@dataclass(frozen=True)
class SoundCard:
    """Play through a sounddevice output: device and host API by index, name or part of a name."""

    device: str | int | None = None
    host_api: str | int | None = None
    blocksize: int = 256
    latency: str | float = "low"

    def open(self, mixer: Mixer) -> "SoundCardOutput":
        return SoundCardOutput(mixer, self.device, self.host_api, self.blocksize, self.latency)


@dataclass(frozen=True)
class AudioFile:
    """Play into a WAV/FLAC file, block by block at the pace of a sound card (headless)."""

    path: Path
    blocksize: int = 1024
    realtime: bool = True

    def open(self, mixer: Mixer) -> "FileSink":
        return FileSink(mixer, self.path, self.blocksize, self.realtime)


class SoundCardOutput:
    """The mixer as a sounddevice callback: the block size and latency the card is asked for."""

    def __init__(self, mixer: Mixer, device: str | int | None = None, host_api: str | int | None = None,
                 blocksize: int = 256, latency: str | float = "low"):
        import sounddevice

        self.mixer = mixer
        index = resolve_output(device, host_api)
        info = sounddevice.query_devices(index)
        if info["max_output_channels"] < mixer.channels:
            raise OutputError(f"output device {info['name']!r} has {info['max_output_channels']} channel(s), "
                              f"the set needs {mixer.channels}")
        if blocksize > mixer.max_block:
            raise OutputError(f"block size {blocksize} is above the mixer's {mixer.max_block}")
        self.name = info["name"]
        self.stream = sounddevice.OutputStream(
            samplerate=mixer.sample_rate, blocksize=blocksize, device=index, channels=mixer.channels,
            dtype="float32", latency=latency, callback=self._callback)

    def _callback(self, outdata, frames, time_info, status) -> None:
        mixer = self.mixer  # the audio process may put a fresh one in place between blocks
        if status.output_underflow:
            mixer.underflows += 1
        mixer.render(outdata)

    @property
    def latency(self) -> float:
        return float(self.stream.latency)

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()
        self.stream.close()


class FileSink:
    """Headless output: blocks rendered at the pace of a real sound card and written to a file."""

    name = "file"

    def __init__(self, mixer: Mixer, path: str | Path, blocksize: int = 1024, realtime: bool = True):
        self.mixer = mixer
        self.blocksize = min(blocksize, mixer.max_block)
        self.realtime = realtime
        self.writer = AudioFileWriter(path, mixer.sample_rate, channels=mixer.channels)
        self.latency = self.blocksize / mixer.sample_rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-file-sink", daemon=True)

    def _run(self) -> None:
        block = np.zeros((self.blocksize, self.mixer.channels), np.float32)
        period = self.blocksize / self.mixer.sample_rate
        deadline = time.monotonic()
        begun = False  # the file begins with the set, not the loading silence; then every block is in it
        while not self._stop.is_set():
            mixer = self.mixer  # the audio process may put a fresh one in place between blocks
            mixer.render(block)
            begun = begun or mixer.current is not None
            if begun:
                self.writer.write(block)
            deadline += period
            if self.realtime:
                wait = deadline - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -period:  # a sound card would have run dry here
                    mixer.underflows += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.writer.close()
