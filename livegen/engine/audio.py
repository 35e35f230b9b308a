"""The audio process: the mixer and the output, alone in a process of their own.

The audio callback runs Python, so every block needs the interpreter's lock
(the GIL). In the engine's process other threads (the control thread, MIDI,
the dashboard, the recorder, a caller's own) can hold it past a block's
deadline: a C call such as a numpy copy or a file write is not cut short by the
switch interval. So the mixer lives here, where the only other Python thread is
a command loop that sleeps on a pipe.

    engine --commands (pipe)--> command loop --schedule / cue / gain--> Mixer.render (callback)
    Mixer.render --MixerState (shared memory)--> engine (RemoteMixer)

Loops are not copied: both processes map the loop bank, and a launch names a slot.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .launches import OnStage
from .loopbank import LoopBank
from .mixer import Launch, Mixer, MixerState, Ring, Voice
from .processes import end_process


@dataclass
class AudioConfig:
    bank_name: str
    bank_slots: int
    bank_frames: int
    state_name: str
    sample_rate: int
    channels: int
    max_block: int
    gain: float
    output: object  # outputs.SoundCard or outputs.AudioFile: opened inside the audio process


def _raise_priority() -> None:
    """The command loop hands launches over with a few blocks to spare: let it run before batch work."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):  # not Linux, or no right to real-time scheduling
        try:
            os.nice(-5)
        except OSError:
            pass


# What the engine sends the audio process, each with its sequence number (the state says which
# was applied last). Loops are named by their slot in the shared loop bank, never copied.
class PlayLoop(NamedTuple):
    seq: int
    loop_id: int
    slot: int
    frames: int
    at: int | None  # output sample where it takes over (None: as soon as the callback takes it)
    fade: np.ndarray
    offset: int  # the loop's sample that plays at ``at``


class CueLoop(NamedTuple):
    seq: int
    loop_id: int | None  # None: the cue pair goes quiet
    slot: int = 0
    frames: int = 0
    start: int = 0  # output sample where its sample 0 plays


class SetGain(NamedTuple):
    seq: int
    gain: float


class SetFilter(NamedTuple):
    seq: int
    coefficients: object  # a ChunkedBiquad, or None for flat


class SetTap(NamedTuple):
    seq: int
    on: bool


class ReplaceMixer(NamedTuple):
    seq: int


def audio_main(config: AudioConfig, commands, replies) -> None:
    """Entry point of the audio process: open the output, then apply commands until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle: it stops us in order
    bank = LoopBank(config.bank_slots, config.bank_frames, name=config.bank_name)
    state = MixerState(config.sample_rate, min(config.channels, 2), name=config.state_name)
    mixer = Mixer(config.sample_rate, config.channels, max_block=config.max_block, gain=config.gain, state=state)
    tap = state.tap()
    try:
        output = config.output.open(mixer)
        output.start()
    except Exception as err:  # no device, a bad name, an unwritable file: the engine reports it
        replies.send(("error", str(err) or type(err).__name__))
        return
    replies.send(("ready", output.name, float(output.latency)))
    _raise_priority()
    gc.collect()
    gc.freeze()  # nothing made so far needs scanning again: collections stay short
    while True:
        try:
            command = commands.recv()
        except (EOFError, OSError):
            break
        if command is None:
            break
        match command:
            case PlayLoop():
                voice = Voice(bank.view(command.slot, command.frames), command.loop_id)
                mixer.schedule(Launch(voice, command.at, command.fade, command.offset, seq=command.seq))
            case CueLoop(loop_id=None):
                mixer.set_cue(None)
            case CueLoop():
                voice = Voice(bank.view(command.slot, command.frames), command.loop_id)
                voice.start = command.start
                mixer.set_cue(voice)
            case SetGain():
                mixer.gain = command.gain
            case SetFilter():
                mixer.set_filter(command.coefficients)
            case SetTap():
                mixer.tap = tap if command.on else None
            case ReplaceMixer():
                mixer = _replace_faulted(mixer, output, state, replies)
        state.ints[MixerState.APPLIED] = command.seq
    output.stop()
    mixer.current = mixer.outgoing = mixer.cue = mixer.pending = mixer.taken = None
    mixer.tap = None
    tap = None
    state.close()
    bank.close()


def _replace_faulted(mixer: Mixer, output, state: MixerState, replies) -> Mixer:
    """A fresh mixer in the faulted one's place, on the same output, state, gain, filter and tap.

    The output stream and its file stay open, so a headless set's file and a recording go on. What
    the old mixer held (the loop on stage, a launch on its way) is cleared from the state: the
    engine launches the playing loop again, on the grid."""
    fault = mixer.fault
    fresh = Mixer(mixer.sample_rate, mixer.channels, max_block=mixer.max_block, gain=mixer.gain, state=state)
    fresh.filter, fresh.tap = mixer.filter, mixer.tap
    ints = state.ints
    ints[[MixerState.CURRENT_ID, MixerState.OUTGOING_ID, MixerState.PENDING_ID, MixerState.CUE_ID]] = -1
    ints[MixerState.TAKEN] = ints[MixerState.APPLIED]  # nothing sent so far is waiting any more
    output.mixer = fresh  # one attribute: the callback renders with the old mixer or the new, whole
    report = "".join(traceback.format_exception(fault)) if fault is not None else "no fault (reset asked)"
    try:
        replies.send(("fault", report))
    except (OSError, ValueError):
        pass
    return fresh


class RemoteMixer:
    """The mixer as the engine sees it: commands down a pipe, its state read from shared memory.

    Commands may come from any thread of the engine's process (a lock keeps the pipe whole);
    each has a sequence number, and the state says which was applied last.
    """

    def __init__(self, bank: LoopBank, sample_rate: int, channels: int, max_block: int, gain: float):
        self.sample_rate, self.channels, self.max_block = sample_rate, channels, max_block
        self.bank = bank
        self.state = MixerState(sample_rate, min(channels, 2))
        self._gain = gain
        self._lock = threading.Lock()
        self._seq = 0
        self._unapplied: list[tuple[int, int]] = []  # (seq, loop id) of launches and cues in transit
        self.launches_sent = 0
        self._last_launch_seq = -1
        self._cue_id: int | None = None  # the last cue sent
        self._process = None
        self._commands = None
        self._replies = None
        self.output_name = "?"
        self.output_latency = 0.0

    # ------------------------------------------------------------ life cycle
    def start(self, output, timeout: float = 60.0) -> None:
        """Spawn the audio process with ``output`` (a SoundCard or AudioFile); raise its error if it fails."""
        from .outputs import OutputError

        context = multiprocessing.get_context("spawn")
        commands_recv, commands_send = context.Pipe(duplex=False)
        replies_recv, replies_send = context.Pipe(duplex=False)
        config = AudioConfig(bank_name=self.bank.name, bank_slots=self.bank.slots, bank_frames=self.bank.slot_frames,
                             state_name=self.state.name, sample_rate=self.sample_rate, channels=self.channels,
                             max_block=self.max_block, gain=self._gain, output=output)
        self._process = context.Process(target=audio_main, args=(config, commands_recv, replies_send),
                                        name="livegen-audio", daemon=True)
        self._process.start()
        commands_recv.close()
        replies_send.close()
        self._commands = commands_send
        if not replies_recv.poll(timeout):
            self.stop()
            raise OutputError(f"the audio process did not open the output within {timeout:.0f}s")
        try:
            reply = replies_recv.recv()
        except EOFError:
            reply = ("error", f"the audio process stopped (exit code {self._process.exitcode})")
        self._replies = replies_recv  # from now on: reports of faults in the callback
        if reply[0] == "error":
            self.stop()
            raise OutputError(reply[1])
        _, self.output_name, self.output_latency = reply

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.exitcode is None

    def stop(self) -> None:
        if self._process is None:
            return
        end_process(self._process, lambda: self._send_raw(None))
        self._commands.close()
        if self._replies is not None:
            self._replies.close()
            self._replies = None
        self._process = None

    def close(self) -> None:
        self.state.close()

    # ------------------------------------------------------------ commands
    def _send_raw(self, message) -> None:
        try:
            self._commands.send(message)
        except (OSError, ValueError, AttributeError):
            pass  # the audio process is gone; the engine notices and says so

    def _send(self, kind, *fields, loop_id: int | None = None) -> int:
        """Send ``kind(seq, *fields)``; a command that names a loop holds its slot until applied."""
        with self._lock:
            self._seq += 1
            if loop_id is not None:
                self._unapplied.append((self._seq, loop_id))
            self._send_raw(kind(self._seq, *fields))
            return self._seq

    def launch(self, loop_id: int, slot: int, frames: int, at: int | None, fade: np.ndarray, offset: int = 0) -> None:
        """Launch the loop in ``slot`` at output sample ``at`` (None: at once), replacing a waiting launch."""
        self._last_launch_seq = self._send(PlayLoop, loop_id, slot, frames, at, fade, offset, loop_id=loop_id)
        self.launches_sent += 1

    def set_cue(self, loop_id: int | None, slot: int = 0, frames: int = 0, start: int = 0) -> None:
        self._cue_id = loop_id
        if loop_id is None:
            self._send(CueLoop, None)
        else:
            self._send(CueLoop, loop_id, slot, frames, start, loop_id=loop_id)

    @property
    def gain(self) -> float:
        return self._gain

    @gain.setter
    def gain(self, gain: float) -> None:
        self._gain = gain
        self._send(SetGain, gain)

    def set_filter(self, coefficients) -> None:
        self._send(SetFilter, coefficients)

    def reset(self) -> None:
        """Put a fresh mixer in place of one whose callback faulted (``faults``); its report follows."""
        self._send(ReplaceMixer)

    def fault_reports(self) -> list[str]:
        """Tracebacks of callback faults that the audio process has reported since the last call."""
        reports = []
        try:
            while self._replies is not None and self._replies.poll():
                kind, text = self._replies.recv()
                if kind == "fault":
                    reports.append(text)
        except (EOFError, OSError):
            pass
        return reports

    def open_tap(self) -> Ring:
        """The ring the callback copies the master pair into; returns once the audio process has set the
        tap, so the callback's next block is the first one recorded (a busy machine can delay the command
        by tens of milliseconds, and what the caller starts next must not begin before the recording)."""
        ring = self.state.tap()
        ring.reset()
        self._wait_applied(self._send(SetTap, True))
        return ring

    def close_tap(self) -> None:
        """Stop the tap; returns once the callback has written its last block into it."""
        self._wait_applied(self._send(SetTap, False))
        time.sleep(0.02)  # a block the callback is in the middle of lands first

    def _wait_applied(self, seq: int, timeout: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while self.applied < seq and self.alive and time.monotonic() < deadline:
            time.sleep(0.002)

    # ------------------------------------------------------------ state
    def _int(self, index: int) -> int:
        return int(self.state.ints[index])

    clock = property(lambda self: self._int(MixerState.CLOCK))
    underflows = property(lambda self: self._int(MixerState.UNDERFLOWS))
    late_launches = property(lambda self: self._int(MixerState.LATE_LAUNCHES))
    launch_count = property(lambda self: self._int(MixerState.LAUNCH_COUNT))
    faults = property(lambda self: self._int(MixerState.FAULTS))  # exceptions caught in the callback
    applied = property(lambda self: self._int(MixerState.APPLIED))
    level = property(lambda self: float(self.state.floats[MixerState.LEVEL]))
    clock_time = property(lambda self: float(self.state.floats[MixerState.CLOCK_TIME]))

    def launches(self, since: int) -> list[tuple[int, int]]:
        return self.state.launches(since)

    def bumped(self, since: int) -> list[int]:
        return self.state.bumped(since)

    @property
    def waiting(self) -> bool:
        """A launch was sent that the callback has not begun."""
        return self._last_launch_seq > self._int(MixerState.TAKEN)

    @property
    def current(self) -> OnStage | None:
        ints = self.state.ints
        loop_id = int(ints[MixerState.CURRENT_ID])
        if loop_id < 0:
            return None
        return OnStage(loop_id, int(ints[MixerState.CURRENT_START]), int(ints[MixerState.CURRENT_FRAMES]))

    @property
    def outgoing_end(self) -> int | None:
        """Output sample where the fading-out loop's fade ends, while one is fading."""
        ints = self.state.ints
        return int(ints[MixerState.OUTGOING_END]) if ints[MixerState.OUTGOING_ID] >= 0 else None

    @property
    def cue_id(self) -> int | None:
        """The loop last sent to the cue pair (the audio process may take a moment to apply it)."""
        return self._cue_id

    def held(self) -> set[int]:
        """Loop ids whose slots the audio process may read: on stage, scheduled, cued or in transit."""
        applied = self.applied
        with self._lock:
            self._unapplied = [(seq, loop_id) for seq, loop_id in self._unapplied if seq > applied]
            held = {loop_id for _, loop_id in self._unapplied}
        ints = self.state.ints
        for index in (MixerState.CURRENT_ID, MixerState.OUTGOING_ID, MixerState.PENDING_ID, MixerState.CUE_ID):
            if ints[index] >= 0:
                held.add(int(ints[index]))
        return held
