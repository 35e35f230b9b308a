"""The mixer: what runs inside the audio callback.

It loops the playing loop and, when the engine has scheduled a launch,
crossfades (equal power) into the next one so that the new loop's first sample
lands exactly on the launch sample, the fade running over the frames just
before it. Then master gain, a gain-riding limiter and a hard ceiling.

Rules of the callback, kept here: every buffer is allocated up front, nothing
waits on a lock, nothing logs, nothing touches torch. The engine's control
thread hands over work by replacing one attribute (``pending``); the callback
hands back by counters and a small launch log.
"""

from __future__ import annotations

from time import perf_counter

import numpy as np
from scipy.signal import lfilter


def equal_power_fade(frames: int) -> np.ndarray:
    """Fade-in gains over ``frames`` samples; reversed, the matching fade-out (sin^2 + cos^2 = 1)."""
    x = (np.arange(frames, dtype=np.float64) + 0.5) / max(frames, 1)
    return np.sin(0.5 * np.pi * x).astype(np.float32)


def dj_filter(position: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One knob: below 0 a low-pass closing toward 150 Hz, above 0 a high-pass opening up to 6 kHz.

    Returns biquad (b, a) (RBJ cookbook, Q 0.707), or None near the centre (flat).
    """
    position = float(np.clip(position, -1.0, 1.0))
    if abs(position) < 0.02:
        return None
    if position < 0:
        cutoff, high = 20000.0 * (150.0 / 20000.0) ** (-position), False
    else:
        cutoff, high = 20.0 * (6000.0 / 20.0) ** position, True
    w = 2 * np.pi * min(cutoff, 0.45 * sample_rate) / sample_rate
    alpha = np.sin(w) / (2 * 0.7071)
    cos = np.cos(w)
    if high:
        b = np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2])
    else:
        b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return b / a[0], a / a[0]


class Voice:
    """One loop on stage: its audio (a view into the loop bank) and when its first sample plays."""

    __slots__ = ("audio", "frames", "start", "fade_start", "fade", "loop_id")

    def __init__(self, audio: np.ndarray, loop_id: int):
        self.audio = audio
        self.frames = len(audio)
        self.loop_id = loop_id
        self.start = 0  # output sample where the loop's sample 0 plays
        self.fade_start = 0  # output sample where its fade (in or out) begins
        self.fade = np.zeros(0, np.float32)  # fade-in gains; empty: a cut


class Launch:
    """A scheduled launch: ``voice`` starts at output sample ``at``, faded in over ``fade``.

    ``at`` None: as soon as possible, the fade beginning with the callback's next block.
    ``offset``: the loop's frame that plays at ``at`` (0: its top; a re-stretched loop
    taking over mid-loop continues from the bar it had reached).
    """

    __slots__ = ("voice", "at", "fade", "offset")

    def __init__(self, voice: Voice, at: int | None, fade: np.ndarray, offset: int = 0):
        self.voice, self.at, self.fade, self.offset = voice, None if at is None else int(at), fade, int(offset)


class Ring:
    """Single-producer, single-consumer ring of audio frames (callback -> writer thread)."""

    def __init__(self, frames: int, channels: int):
        self.data = np.zeros((frames, channels), np.float32)
        self.written = 0  # frames ever written (producer owns)
        self.consumed = 0  # frames ever read (consumer owns)
        self.dropped = 0  # frames lost because the consumer fell a whole ring behind
        self.first_sample = -1  # output sample of the first frame written (set by the mixer)

    def write(self, block: np.ndarray) -> None:
        n, capacity = len(block), len(self.data)
        if self.written + n - self.consumed > capacity:
            self.dropped += n
            return
        i = self.written % capacity
        k = min(n, capacity - i)
        self.data[i:i + k] = block[:k]
        if k < n:
            self.data[:n - k] = block[k:]
        self.written += n

    def read(self) -> np.ndarray:
        """Everything written since the last read, as a new array (consumer side)."""
        end, start = self.written, self.consumed
        capacity = len(self.data)
        idx = np.arange(start, end) % capacity
        out = self.data[idx]
        self.consumed = end
        return out


class Mixer:
    LAUNCH_LOG = 256

    def __init__(self, sample_rate: int, channels: int = 2, max_block: int = 8192, gain: float = 0.8,
                 ceiling: float = 0.95, release_seconds: float = 0.5):
        if channels < 1:
            raise ValueError("the mixer needs at least one output channel")
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_block = max_block
        self.gain = gain  # master gain, set by the engine
        self.ceiling = ceiling
        self._release = 1.0 - np.exp(-1.0 / max(release_seconds * sample_rate / 256.0, 1.0))
        self.current: Voice | None = None
        self.outgoing: Voice | None = None
        # Hand-over with one writer per attribute: the engine writes ``pending``, the callback
        # writes ``taken`` when it begins a launch. A launch is waiting while pending is not taken.
        self.pending: Launch | None = None
        self.taken: Launch | None = None
        self.cue: Voice | None = None  # headphone preview on channels 3-4, when there are four
        self.cue_gain = 0.8
        self.tap: Ring | None = None  # recorder input: the master pair
        self.clock = 0  # output frames rendered so far
        self.underflows = 0
        self.late_launches = 0  # launches the callback saw after their fade should have begun
        self.launch_log = np.zeros((self.LAUNCH_LOG, 2), np.int64)  # (loop id, launch sample)
        self.launch_count = 0
        self.level = 0.0  # peak of the last block, after gain
        self._limit = 1.0
        self._applied = gain
        self._mix = np.zeros(max_block, np.float32)
        self._src = np.zeros(max_block, np.float32)
        self._gain = np.zeros(max_block, np.float32)
        self._ramp = np.zeros(max_block, np.float32)  # 1/n .. 1 over the block: filled for its size
        self._ramp_block = 0
        # DJ filter: (b, a) of a biquad set by the engine, None when flat; its state lives here.
        self.filter_coefficients: tuple[np.ndarray, np.ndarray] | None = None
        self._filter_state = np.zeros(2, np.float64)
        self.clock_time = 0.0  # time.perf_counter() when the last block began: maps samples to time

    # ------------------------------------------------------------ the callback
    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` (frames x channels, float32) with the next block of the set."""
        self.clock_time = perf_counter()
        n = out.shape[0]
        t0 = self.clock
        mix = self._mix[:n]
        mix.fill(0.0)

        launch = self.pending
        if launch is not None and launch is not self.taken and (launch.at is None
                                                               or launch.at - len(launch.fade) < t0 + n):
            self._begin(launch, t0)
        if self.current is not None:
            self._add(self.current, t0, n, fading_in=True)
        outgoing = self.outgoing
        if outgoing is not None:
            self._add(outgoing, t0, n, fading_in=False)
            if t0 + n >= outgoing.fade_start + len(outgoing.fade):
                self.outgoing = None

        coefficients = self.filter_coefficients
        if coefficients is not None:
            # lfilter hands back a fresh block-sized array: the one allocation the callback
            # makes, and only while the filter knob is off centre.
            filtered, self._filter_state[:] = lfilter(coefficients[0], coefficients[1], mix, zi=self._filter_state)
            mix[:] = filtered
        else:
            self._filter_state[:] = 0.0
        self._master(n)
        out[:, 0] = mix
        if self.channels > 1:
            out[:, 1] = mix
        for channel in range(2, self.channels):
            out[:, channel] = 0.0
        if self.channels >= 4 and self.cue is not None:
            self._fill(self.cue, t0, n)
            src = self._src[:n]
            src *= self.cue_gain
            out[:, 2] = src
            out[:, 3] = src
        tap = self.tap
        if tap is not None:
            if tap.written == 0:
                tap.first_sample = t0
            tap.write(out[:, :2] if self.channels > 1 else out)
        self.clock = t0 + n

    def _begin(self, launch: Launch, t0: int) -> None:
        voice, fade = launch.voice, launch.fade
        at = launch.at
        if at is None:
            at = t0 + len(fade)
        elif at - len(fade) < t0:  # handed over too late for its grid line: launch as soon as possible
            at = t0 + len(fade)
            self.late_launches += 1
        voice.start = at - launch.offset
        voice.fade_start = at - len(fade)
        voice.fade = fade
        old = self.current
        if old is not None:
            old.fade_start = at - len(fade)
            old.fade = fade
            self.outgoing = old
        self.current = voice
        self.taken = launch
        row = self.launch_count % self.LAUNCH_LOG
        self.launch_log[row, 0] = voice.loop_id
        self.launch_log[row, 1] = at
        self.launch_count += 1

    def _fill(self, voice: Voice, t0: int, n: int) -> None:
        """The voice's audio for output samples t0..t0+n into the source scratch, looping round."""
        src, audio, frames = self._src, voice.audio, voice.frames
        position = (t0 - voice.start) % frames
        i = 0
        while i < n:
            k = min(n - i, frames - position)
            src[i:i + k] = audio[position:position + k]
            i += k
            position = 0

    def _add(self, voice: Voice, t0: int, n: int, fading_in: bool) -> None:
        fade, fade_start = voice.fade, voice.fade_start
        a = min(max(fade_start - t0, 0), n)  # block index where the fade begins
        b = min(max(fade_start + len(fade) - t0, 0), n)  # and where it ends
        before, after = (0.0, 1.0) if fading_in else (1.0, 0.0)
        if (a == n and before == 0.0) or (b == 0 and after == 0.0):
            return  # silent for this whole block
        gain = self._gain[:n]
        gain[:a] = before
        if b > a:
            lo, hi = t0 + a - fade_start, t0 + b - fade_start
            if fading_in:
                gain[a:b] = fade[lo:hi]
            else:  # the fade-out is the fade-in read backwards
                m = len(fade)
                gain[a:b] = fade[m - hi:m - lo][::-1]
        gain[b:] = after
        self._fill(voice, t0, n)
        src = self._src[:n]
        np.multiply(src, gain, out=src)
        np.add(self._mix[:n], src, out=self._mix[:n])

    def _master(self, n: int) -> None:
        mix = self._mix[:n]
        gain = self._gain[:n]
        np.abs(mix, out=gain)
        peak = float(gain.max()) if n else 0.0
        if not np.isfinite(peak):  # never pass NaN or inf to the sound card
            np.nan_to_num(mix, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            np.abs(mix, out=gain)
            peak = float(gain.max())
        target = self.gain
        wanted = 1.0 if peak * target <= self.ceiling else self.ceiling / (peak * target)
        if wanted < self._limit:
            self._limit = wanted  # attack within the block
        else:
            self._limit += (wanted - self._limit) * self._release
        new = target * self._limit
        # Ramp from the last block's gain to this one's: no zipper noise when gain moves.
        ramp = self._ramp[:n]
        if self._ramp_block != n:
            self._ramp[:n] = (np.arange(1, n + 1, dtype=np.float32) / n)
            self._ramp_block = n
        np.multiply(ramp, new - self._applied, out=gain)
        gain += self._applied
        mix *= gain
        self._applied = new
        np.clip(mix, -1.0, 1.0, out=mix)
        self.level = peak * new

    # ------------------------------------------------------------ engine side
    @property
    def waiting(self) -> Launch | None:
        """The scheduled launch the callback has not begun, if any."""
        launch = self.pending
        return launch if launch is not None and launch is not self.taken else None

    def launches(self, since: int) -> list[tuple[int, int]]:
        """(loop id, launch sample) of launches numbered ``since`` onwards (engine thread)."""
        count = self.launch_count
        since = max(since, count - self.LAUNCH_LOG)
        return [(int(self.launch_log[i % self.LAUNCH_LOG, 0]), int(self.launch_log[i % self.LAUNCH_LOG, 1]))
                for i in range(since, count)]
