"""Writing the set to disk while it plays: crash-safe audio files and the recorder.

A WAV file's header is rewritten with each second's flush, so a crash or a
kill leaves a file any reader opens, short of at most the last second. (FLAC
keeps its frames; only its total length is unknown until it is closed.)
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np


_SFC_UPDATE_HEADER_NOW = 0x1060  # libsndfile: rewrite the header to match the data written so far


class AudioFileWriter:
    """A sound file written block by block and made readable on disk once a second."""

    FORMATS = {".wav": ("WAV", "PCM_24"), ".flac": ("FLAC", "PCM_24")}

    def __init__(self, path: str | Path, sample_rate: int, channels: int = 2, flush_seconds: float = 1.0):
        import soundfile

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self.FORMATS:
            raise ValueError(f"{self.path}: record to .wav or .flac, not {suffix or 'no extension'!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        audio_format, subtype = self.FORMATS[suffix]
        self._file = soundfile.SoundFile(self.path, "w", sample_rate, channels, format=audio_format, subtype=subtype)
        self._flush_frames = int(flush_seconds * sample_rate)
        self._since_flush = 0
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        self._file.write(block)
        self.frames += len(block)
        self._since_flush += len(block)
        if self._since_flush >= self._flush_frames:
            self.flush()

    def flush(self) -> None:
        import soundfile

        self._file.flush()
        if self._file.format == "WAV":
            soundfile._snd.sf_command(self._file._file, _SFC_UPDATE_HEADER_NOW, soundfile._ffi.NULL, 0)
        self._since_flush = 0

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class Recorder:
    """Records the master output: the callback feeds a ring (the mixer's tap), a thread writes it out."""

    def __init__(self, mixer, path: str | Path, poll_seconds: float = 0.1):
        self.mixer = mixer  # a RemoteMixer: open_tap / close_tap
        self.writer = AudioFileWriter(path, mixer.sample_rate, channels=min(mixer.channels, 2))
        self.ring = None
        self._first_sample = self._dropped = -1  # kept when the ring (shared memory) is let go
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livegen-recorder", daemon=True)

    @property
    def path(self) -> Path:
        return self.writer.path

    def start(self) -> "Recorder":
        self.ring = self.mixer.open_tap()  # from the callback's next block on
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        block = self.ring.read()
        if len(block):
            self.writer.write(block)

    def stop(self) -> Path:
        self.mixer.close_tap()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.writer.close()
        self._first_sample, self._dropped = self.start_sample, self.dropped
        self.ring = None  # the mixer's shared memory can be closed now
        return self.writer.path

    @property
    def start_sample(self) -> int:
        """Output sample of the recording's first frame (-1 until the callback wrote one)."""
        return self.ring.first_sample if self.ring is not None else self._first_sample

    @property
    def dropped(self) -> int:
        """Frames lost because the writer fell a whole ring behind."""
        return self.ring.dropped if self.ring is not None else self._dropped
