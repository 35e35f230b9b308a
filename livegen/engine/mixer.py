"""The mixer: what runs inside the audio callback.

It loops the playing loop and, when the engine has scheduled a launch,
crossfades (equal power) into the next one so that the new loop's first sample
lands exactly on the launch sample, the fade running over the frames just
before it. Then master gain, a gain-riding limiter and a hard ceiling.

Rules of the callback, kept here: every buffer is allocated up front, nothing
waits on a lock, nothing logs, nothing touches torch. Work is handed over by
replacing one attribute (``pending``); the callback hands back through a
``MixerState``: counters, what is on stage and a launch log, in memory that the
engine's process can read (the mixer runs in a process of its own, see
``audio.py``).
"""

from __future__ import annotations

import math
from time import perf_counter, thread_time

import numpy as np


def equal_power_fade(frames: int) -> np.ndarray:
    """Fade-in gains over ``frames`` samples; reversed, the matching fade-out (sin^2 + cos^2 = 1)."""
    x = (np.arange(frames, dtype=np.float64) + 0.5) / max(frames, 1)
    return np.sin(0.5 * np.pi * x).astype(np.float32)


def equal_gain_fade(frames: int) -> np.ndarray:
    """Fade-in gains whose reverse sums with them to 1: for crossfading a loop into itself (a nudge),
    where the two sides are alike and an equal-power fade would swell by up to 3 dB."""
    return ((np.arange(frames, dtype=np.float64) + 0.5) / max(frames, 1)).astype(np.float32)


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


FILTER_CHUNK = 256  # samples per matrix product in the DJ filter; longer blocks take several


class ChunkedBiquad:
    """A biquad that filters a block in place without allocating, for the callback.

    scipy's ``lfilter`` returns a new array on every call. Here the filter's state-space
    form (that of the transposed direct form II, as ``lfilter`` runs it) is unrolled over
    ``chunk`` samples into matrices built once, outside the callback: a chunk's output is
    its impulse-response matrix times the input plus the state's free response, and the
    next state follows the same way. Same output as ``lfilter`` up to float32 rounding.
    """

    def __init__(self, b, a, chunk: int = FILTER_CHUNK):
        b0, b1, b2 = (float(v) / float(a[0]) for v in b)
        a1, a2 = float(a[1]) / float(a[0]), float(a[2]) / float(a[0])
        # s[k+1] = A s[k] + B x[k];  y[k] = s[k][0] + b0 x[k];  A = [[-a1, 1], [-a2, 0]]
        powers = [(1.0, 0.0, 0.0, 1.0)]  # A^r row by row, r = 0..chunk (plain floats: quick to build)
        for _ in range(chunk):
            p00, p01, p10, p11 = powers[-1]
            powers.append((-a1 * p00 + p10, -a1 * p01 + p11, -a2 * p00, -a2 * p01))
        table = np.array(powers).reshape(-1, 2, 2)
        drive = np.array([b1 - a1 * b0, b2 - a2 * b0])  # B
        impulse = np.empty(chunk)
        impulse[0] = b0
        impulse[1:] = table[:chunk - 1, 0, :] @ drive  # first row of A^(k-1) B
        self.chunk = chunk
        self.powers = powers
        # Lower-triangular Toeplitz, row k = impulse[k], ..., impulse[0], 0, ...: windows over
        # the reversed impulse response padded with zeros, read bottom up.
        padded = np.concatenate([impulse[::-1], np.zeros(chunk - 1)])
        self.response = np.lib.stride_tricks.sliding_window_view(padded, chunk)[::-1].astype(np.float32)
        # y[k] also carries the first row of A^k times the chunk's starting state
        self.free_response = [np.ascontiguousarray(table[:chunk, 0, i], np.float32) for i in range(2)]
        # column j: what input sample j adds to the state after the whole chunk, A^(chunk-1-j) B
        self.to_state = np.ascontiguousarray((table[chunk - 1::-1] @ drive).T, np.float32)

    @staticmethod
    def scratch(chunk: int) -> np.ndarray:
        """The float32 working memory ``process`` needs: allocated up front, outside the callback."""
        return np.zeros(2 * chunk + 2, np.float32)

    def process(self, x: np.ndarray, state: np.ndarray, scratch: np.ndarray) -> None:
        """Filter float32 ``x`` in place; ``state`` (float64, 2) carries over between calls."""
        chunk = self.chunk
        for i in range(0, len(x), chunk):
            piece = x[i:i + chunk]
            r = len(piece)
            out, term, carried = scratch[:r], scratch[chunk:chunk + r], scratch[2 * chunk:2 * chunk + 2]
            s0, s1 = float(state[0]), float(state[1])
            np.matmul(self.response[:r, :r], piece, out=out)
            for row, s in zip(self.free_response, (s0, s1)):
                np.multiply(row[:r], s, out=term)
                out += term
            np.matmul(self.to_state[:, chunk - r:], piece, out=carried)
            p00, p01, p10, p11 = self.powers[r]
            state[0] = p00 * s0 + p01 * s1 + float(carried[0])
            state[1] = p10 * s0 + p11 * s1 + float(carried[1])
            piece[:] = out


class MixerState:
    """What the callback publishes: plain numbers in one block, shared with the engine's process.

    Each field has one writer (the callback, or the audio process's command loop), so no
    locks are needed; a reader may see a field one block old, never a torn launch log row
    it has not been told about (the count is written last).
    """

    # int64 fields
    (CLOCK, UNDERFLOWS, LATE_LAUNCHES, LAUNCH_COUNT, APPLIED, TAKEN, CURRENT_ID, CURRENT_START, CURRENT_FRAMES,
     OUTGOING_ID, OUTGOING_END, PENDING_ID, CUE_ID, BUMP_COUNT, FAULTS) = range(15)
    # How long the callback took per block, as a share of the block's own duration: counts of
    # blocks per bucket (below BLOCK_TIME_EDGES[0], between the edges, above the last), by the
    # clock on the wall and by the thread's own CPU time. Wall time far above CPU time means the
    # thread was kept waiting (by the machine, or by a lock); CPU time near 1 means the mixer's
    # own work no longer fits in a block.
    BLOCK_TIME_EDGES = (0.1, 0.25, 0.5, 1.0)
    BLOCK_WALL = FAULTS + 1  # first of len(BLOCK_TIME_EDGES) + 1 counters
    BLOCK_CPU = BLOCK_WALL + len(BLOCK_TIME_EDGES) + 1
    INTS = BLOCK_CPU + len(BLOCK_TIME_EDGES) + 1
    LEVEL, CLOCK_TIME, BUSY_SECONDS = range(3)  # float64 fields
    FLOATS = 3
    LAUNCH_LOG = 256  # (loop id, launch sample) rows, a ring
    BUMP_LOG = 64  # loop ids of launches replaced before they began, a ring
    TAP_SECONDS = 8.0  # recorder ring: how far the recorder's thread may fall behind

    def __init__(self, sample_rate: int, tap_channels: int = 2, name: str | None = None, shared: bool = True):
        from .loopbank import shared_block

        self.tap_frames = int(self.TAP_SECONDS * sample_rate)
        shapes = [("ints", np.int64, (self.INTS,)), ("floats", np.float64, (self.FLOATS,)),
                  ("launch_log", np.int64, (self.LAUNCH_LOG, 2)), ("bump_log", np.int64, (self.BUMP_LOG,)),
                  ("tap_counts", np.int64, (Ring.COUNTS,)), ("tap_data", np.float32, (self.tap_frames, tap_channels))]
        size = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, dtype, shape in shapes)
        self._shm = shared_block(size, name) if shared else None
        buffer = self._shm.buf if shared else bytearray(size)
        offset = 0
        for field, dtype, shape in shapes:
            array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
            setattr(self, field, array)
            offset += array.nbytes
        if name is None:
            self.ints[:] = 0
            self.ints[[self.CURRENT_ID, self.OUTGOING_ID, self.PENDING_ID, self.CUE_ID, self.TAKEN]] = -1
            self.floats[:] = 0.0
        self.name = self._shm.name if shared else None
        self.owner = name is None

    def launches(self, since: int) -> list[tuple[int, int]]:
        """(loop id, launch sample) of the launches numbered ``since`` onwards."""
        count = int(self.ints[self.LAUNCH_COUNT])
        log = self.launch_log
        return [(int(log[i % self.LAUNCH_LOG, 0]), int(log[i % self.LAUNCH_LOG, 1]))
                for i in range(max(since, count - self.LAUNCH_LOG), count)]

    def bumped(self, since: int) -> list[int]:
        """Loop ids of launches replaced before they began, numbered ``since`` onwards."""
        count = int(self.ints[self.BUMP_COUNT])
        return [int(self.bump_log[i % self.BUMP_LOG]) for i in range(max(since, count - self.BUMP_LOG), count)]

    def block_times(self) -> dict:
        """The callback's time per block so far: counts per bucket (``BLOCK_TIME_EDGES``), wall and CPU."""
        buckets = len(self.BLOCK_TIME_EDGES) + 1
        return {"edges": list(self.BLOCK_TIME_EDGES),
                "wall": [int(n) for n in self.ints[self.BLOCK_WALL:self.BLOCK_WALL + buckets]],
                "cpu": [int(n) for n in self.ints[self.BLOCK_CPU:self.BLOCK_CPU + buckets]],
                "busy_seconds": float(self.floats[self.BUSY_SECONDS])}

    @staticmethod
    def block_times_between(earlier: dict, later: dict) -> dict:
        """What the callback's time per block added between two ``block_times()`` readings."""
        return {"edges": later["edges"],
                "wall": [b - a for a, b in zip(earlier["wall"], later["wall"])],
                "cpu": [b - a for a, b in zip(earlier["cpu"], later["cpu"])],
                "busy_seconds": later["busy_seconds"] - earlier["busy_seconds"]}

    def tap(self) -> "Ring":
        """The recorder ring over this block's tap arrays."""
        return Ring(self.tap_frames, self.tap_data.shape[1], data=self.tap_data, counts=self.tap_counts)

    def close(self) -> None:
        if self._shm is None:
            return
        for field in ("ints", "floats", "launch_log", "bump_log", "tap_counts", "tap_data"):
            setattr(self, field, None)
        self._shm.close()
        if self.owner:
            self._shm.unlink()
        self._shm = None


def _published(index: int, floats: bool = False):
    """A Mixer attribute kept in its ``MixerState`` (readable from the engine's process)."""
    if floats:
        return property(lambda self: float(self.state.floats[index]),
                        lambda self, value: self.state.floats.__setitem__(index, value))
    return property(lambda self: int(self.state.ints[index]),
                    lambda self, value: self.state.ints.__setitem__(index, value))


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

    __slots__ = ("voice", "at", "fade", "offset", "seq")

    def __init__(self, voice: Voice, at: int | None, fade: np.ndarray, offset: int = 0, seq: int = 0):
        self.voice, self.at, self.fade, self.offset = voice, None if at is None else int(at), fade, int(offset)
        self.seq = seq  # the command that scheduled it: published as TAKEN when the callback begins it


class Ring:
    """Single-producer, single-consumer ring of audio frames (callback -> writer thread).

    Its counters live in a small int64 array so that ring and counters can sit in shared
    memory, the producer in one process and the consumer in another.
    """

    COUNTS = 4
    WRITTEN, CONSUMED, DROPPED, FIRST_SAMPLE = range(COUNTS)

    def __init__(self, frames: int, channels: int, data: np.ndarray | None = None, counts: np.ndarray | None = None):
        self.data = np.zeros((frames, channels), np.float32) if data is None else data
        self.counts = np.zeros(self.COUNTS, np.int64) if counts is None else counts
        self.reset()

    def reset(self) -> None:
        """Empty, before the producer starts (not while it writes)."""
        self.counts[:] = 0
        self.counts[self.FIRST_SAMPLE] = -1

    # frames ever written (producer owns), ever read (consumer owns), lost because the consumer
    # fell a whole ring behind; output sample of the first frame written (set by the mixer)
    written = property(lambda self: int(self.counts[Ring.WRITTEN]))
    consumed = property(lambda self: int(self.counts[Ring.CONSUMED]))
    dropped = property(lambda self: int(self.counts[Ring.DROPPED]))
    first_sample = property(lambda self: int(self.counts[Ring.FIRST_SAMPLE]))

    def write(self, block: np.ndarray) -> None:
        counts = self.counts
        n, capacity, written = len(block), len(self.data), int(counts[Ring.WRITTEN])
        if written + n - int(counts[Ring.CONSUMED]) > capacity:
            counts[Ring.DROPPED] += n
            return
        i = written % capacity
        k = min(n, capacity - i)
        self.data[i:i + k] = block[:k]
        if k < n:
            self.data[:n - k] = block[k:]
        counts[Ring.WRITTEN] = written + n  # last: the consumer reads only what is complete

    def read(self) -> np.ndarray:
        """Everything written since the last read, as a new array (consumer side)."""
        end, start = self.written, self.consumed
        capacity = len(self.data)
        idx = np.arange(start, end) % capacity
        out = self.data[idx]
        self.counts[Ring.CONSUMED] = end
        return out


class Mixer:
    LAUNCH_LOG = MixerState.LAUNCH_LOG

    # What the engine reads, kept in the state block.
    clock = _published(MixerState.CLOCK)  # output frames rendered so far
    underflows = _published(MixerState.UNDERFLOWS)
    late_launches = _published(MixerState.LATE_LAUNCHES)  # launches seen after their fade should have begun
    launch_count = _published(MixerState.LAUNCH_COUNT)
    level = _published(MixerState.LEVEL, floats=True)  # peak of the last block, after gain
    clock_time = _published(MixerState.CLOCK_TIME, floats=True)  # perf_counter() as the last block began

    def __init__(self, sample_rate: int, channels: int = 2, max_block: int = 8192, gain: float = 0.8,
                 ceiling: float = 0.95, release_seconds: float = 0.5, state: MixerState | None = None):
        if channels < 1:
            raise ValueError("the mixer needs at least one output channel")
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_block = max_block
        self.state = state if state is not None else MixerState(sample_rate, min(channels, 2), shared=False)
        self.gain = gain  # master gain, set by the engine
        self.ceiling = ceiling
        # A Python float, not numpy's float64: a float64 scalar would make every gain ufunc below
        # compute in float64 and cast through a freshly allocated buffer.
        self._release = 1.0 - math.exp(-1.0 / max(release_seconds * sample_rate / 256.0, 1.0))
        self.current: Voice | None = None
        self.outgoing: Voice | None = None
        # Hand-over with one writer per attribute: the command side writes ``pending``, the callback
        # writes ``taken`` when it begins a launch. A launch is waiting while pending is not taken.
        self.pending: Launch | None = None
        self.taken: Launch | None = None
        self.cue: Voice | None = None  # headphone preview on channels 3-4, when there are four
        self.cue_gain = 0.8
        self.tap: Ring | None = None  # recorder input: the master pair
        self.fault: Exception | None = None  # what the callback raised, once; silence from then on
        self._limit = 1.0
        self._applied = gain
        self._mix = np.zeros(max_block, np.float32)
        self._src = np.zeros(max_block, np.float32)
        self._gain = np.zeros(max_block, np.float32)
        self._ramp = np.zeros(max_block, np.float32)  # 1/n .. 1 over the block: filled for its size
        self._ramp_block = 0
        # DJ filter: a biquad set by the command side, None when flat; its state lives here, so a
        # new setting of the knob carries on from the old one's state.
        self.filter: ChunkedBiquad | None = None
        self._filter_state = np.zeros(2, np.float64)
        self._filter_scratch = ChunkedBiquad.scratch(FILTER_CHUNK)

    # ------------------------------------------------------------ the callback
    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` (frames x channels, float32) with the next block of the set. Never raises.

        An exception would stop PortAudio calling back (the set silent, the process alive). Instead the
        block and every later one is silence, the clock runs on, the fault is counted in the state and
        kept in ``fault``: the audio process reports it and puts a fresh mixer in this one's place."""
        if self.fault is None:
            try:
                self._render(out)
                return
            except Exception as error:  # noqa: BLE001 -- whatever it is, the callback must return
                self.fault = error
                self.state.ints[MixerState.FAULTS] += 1
        out.fill(0.0)
        self.clock = self.clock + out.shape[0]

    def _render(self, out: np.ndarray) -> None:
        started, cpu_started = perf_counter(), thread_time()
        self.clock_time = started
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
                self.state.ints[MixerState.OUTGOING_ID] = -1

        biquad = self.filter
        if biquad is not None:
            biquad.process(mix, self._filter_state, self._filter_scratch)
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
                tap.counts[Ring.FIRST_SAMPLE] = t0
            tap.write(out[:, :2] if self.channels > 1 else out)
        self.clock = t0 + n
        self._count_block_time(n, perf_counter() - started, thread_time() - cpu_started)

    def _count_block_time(self, n: int, wall: float, cpu: float) -> None:
        state, block = self.state, n / self.sample_rate
        state.floats[MixerState.BUSY_SECONDS] += wall
        for first, seconds in ((MixerState.BLOCK_WALL, wall), (MixerState.BLOCK_CPU, cpu)):
            bucket = 0
            for edge in MixerState.BLOCK_TIME_EDGES:
                if seconds > edge * block:
                    bucket += 1
            state.ints[first + bucket] += 1

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
        ints = self.state.ints
        old = self.current
        if old is not None:
            old.fade_start = at - len(fade)
            old.fade = fade
            self.outgoing = old
            ints[MixerState.OUTGOING_ID] = old.loop_id
            ints[MixerState.OUTGOING_END] = at
        self.current = voice
        self.taken = launch
        ints[MixerState.CURRENT_ID] = voice.loop_id
        ints[MixerState.CURRENT_START] = voice.start
        ints[MixerState.CURRENT_FRAMES] = voice.frames
        ints[MixerState.TAKEN] = launch.seq
        count = int(ints[MixerState.LAUNCH_COUNT])
        row = count % self.LAUNCH_LOG
        self.state.launch_log[row, 0] = voice.loop_id
        self.state.launch_log[row, 1] = at
        ints[MixerState.LAUNCH_COUNT] = count + 1  # last: the row is complete when it is counted

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

    # ------------------------------------------------------------ command side (outside the callback)
    @property
    def waiting(self) -> Launch | None:
        """The scheduled launch the callback has not begun, if any."""
        launch = self.pending
        return launch if launch is not None and launch is not self.taken else None

    def schedule(self, launch: Launch) -> None:
        """Hand a launch to the callback; one it has not begun yet gives way (and is logged as bumped)."""
        replaced = self.waiting
        self.pending = launch
        ints = self.state.ints
        ints[MixerState.PENDING_ID] = launch.voice.loop_id
        if replaced is not None and self.taken is not replaced:
            count = int(ints[MixerState.BUMP_COUNT])
            self.state.bump_log[count % MixerState.BUMP_LOG] = replaced.voice.loop_id
            ints[MixerState.BUMP_COUNT] = count + 1

    def set_filter(self, coefficients: tuple[np.ndarray, np.ndarray] | None) -> None:
        """The DJ filter's biquad (b, a), from ``dj_filter``; None: flat."""
        self.filter = None if coefficients is None else ChunkedBiquad(*coefficients)

    def set_cue(self, voice: Voice | None) -> None:
        self.cue = voice
        self.state.ints[MixerState.CUE_ID] = -1 if voice is None else voice.loop_id

    def launches(self, since: int) -> list[tuple[int, int]]:
        return self.state.launches(since)
