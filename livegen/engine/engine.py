"""The engine: keeps the worker busy, the buffers full and the mixer fed, on the beat.

    actions (CLI, keys, MIDI, tests) --command queue--> control thread
    control thread --LoopRequest--> worker process --LoopReady--> buffers (per genre)
    control thread --launch at a grid sample--> audio process (mixer in the audio callback)

Everything that decides happens in one control thread, so the engine's state
needs no locks; other threads talk to it through ``_commands``. The mixer runs
in a process of its own (``audio.py``) so that nothing here can delay a block;
the engine sees it through ``RemoteMixer``.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import wait as connection_wait
from pathlib import Path

import numpy as np

from ..limits import FILTER, GAIN, STEPS, TEMPO
from ..loops.key import key_label, parse_key
from ..loops.prep import CANVASES, bar_choices
from ..presets import SAMPLERS, PresetError, load_genre
from .audio import RemoteMixer
from .buffers import GenreState, LoopInfo
from .commands import (AlignGrid, ChangeAutoBars, ChangeBars, ChangeFilter, ChangeGain, ChangeKeyMode, ChangeQuantise,
                       ChangeSampling, ChangeTempo, ChooseKey, MakeFromPlaying, Nudge, ReportController, ReportSync,
                       SavePlaying, SelectGenre, StartRecording, StepKey, StopRecording, ToggleCue, ToggleKeyLock,
                       Trigger)
from .launches import LaunchTiming
from .loopbank import LoopBank, slot_frames_for
from .mixer import equal_gain_fade, equal_power_fade
from .snapshot import Snapshot
from .settings import EngineSettings, default_worker_threads
from .setkey import SetKey
from .supervisor import WorkerSupervisor
from .transport import QUANTISE_BARS, Transport
from .worker import GenreError, LoopFailed, LoopReady, LoopRequest, WorkerConfig, WorkerReady

NUDGE_FADE_SECONDS = 0.005  # a nudge crossfades the loop into itself shifted: short, so no audible echo


class EngineError(RuntimeError):
    pass


def _checked_bars(bars: int) -> int:
    try:
        bar_choices(bars)
    except ValueError as err:
        raise EngineError(str(err)) from None
    return bars


class Engine:
    # The control thread sleeps until a command or a worker message arrives, or this many seconds
    # pass (launch lookahead is 100 ms).
    CONTROL_TICK = 0.02

    def __init__(self, settings: EngineSettings, output=None):
        """``output``: where the set plays, an ``outputs.SoundCard`` or ``outputs.AudioFile``."""
        if not settings.genres:
            raise EngineError("no genre to play: name at least one")
        if settings.quantise not in QUANTISE_BARS:
            raise EngineError(f"quantise must be one of {', '.join(QUANTISE_BARS)}, got {settings.quantise!r}")
        if settings.canvas not in CANVASES:
            raise EngineError(f"canvas must be one of {', '.join(CANVASES)}, got {settings.canvas!r}")
        self.settings = settings
        self.genres: dict[str, GenreState] = {}
        for name in settings.genres:
            try:
                preset = load_genre(name, settings.presets_dir)
            except PresetError as err:
                preset = err
            self.genres[name] = GenreState(preset)
        self.selected = settings.genres[0]
        self.steps, self.sampler = settings.steps, settings.sampler
        self.quantise = settings.quantise
        self.auto_bars = settings.auto_bars
        self.max_bars = _checked_bars(settings.bars)
        self.transport = Transport(settings.sample_rate, settings.bpm)
        self.grid = self.transport.copy()  # what other threads read: republished by the control thread
        self.timing = LaunchTiming(settings.blocksize, settings.sample_rate)
        self.target_bpm = settings.bpm  # the tempo loops are made for; the grid follows at a bar line
        self.set_key = SetKey.from_setting(settings.key, settings.key_mode)
        self._fade = equal_power_fade(int(settings.crossfade_ms * settings.sample_rate / 1000))
        self._nudge_fade = equal_gain_fade(int(NUDGE_FADE_SECONDS * settings.sample_rate))
        slots = len(self.genres) * settings.depth + 8  # + playing, outgoing, pending, cue, recuts, modes
        self.bank = LoopBank(slots, slot_frames_for(settings.sample_rate, TEMPO.low))
        self.output = output
        self.mixer = RemoteMixer(self.bank, settings.sample_rate, settings.channels, settings.max_block, settings.gain)
        self._seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        self._next_id = 1
        self.loops: dict[int, LoopInfo] = {}  # every loop that holds a slot, ready or on stage
        self._in_flight: dict[int, LoopRequest] = {}
        self._restretched: dict[int, LoopInfo] = {}  # recut request id -> the loop it cuts again
        self._on_stage: dict[int, LoopInfo] = {}  # launched or about to be
        self._stage_misses: dict[int, int] = {}
        self._waiting: LoopRequest | None = None  # a mode request to launch as soon as it is ready
        self._want_launch = False  # a trigger found no loop ready: launch the next one that arrives
        self._retempo_pending = False
        self._next_auto_beat: float | None = None
        self._launches_seen = 0
        self._bumps_seen = 0
        self._last_launch_sample = 0
        self.playing: LoopInfo | None = None
        self.next_up: LoopInfo | None = None
        self._audio_lost = False
        self._audio_faults = 0  # callback faults recovered from
        self._preroll_underflows: int | None = None  # the output's underflows before the first loop, once it plays
        self._playing_stage = None  # the mixer's OnStage of the playing loop, last seen sound
        self.worker_state = "starting"
        self.worker_report = WorkerReady("?", threads=0)  # what the worker says of itself once ready
        self.errors: deque[str] = deque(maxlen=20)
        self.events: deque[dict] = deque(maxlen=200)  # launches and other notable moments, newest last
        self._work_seconds = 0.0
        self._audio_seconds = 0.0
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._control, name="livegen-control", daemon=True)
        self.worker = WorkerSupervisor(self._worker_config, settings.worker_threads or default_worker_threads(),
                                       daemon=not settings.prep_processes)
        self._status_file = None
        self._last_written = 0.0
        self._published: Snapshot | None = None  # replaced whole by the control thread each round
        self._busy_mark = (time.monotonic(), 0.0)  # (when, the callback's busy seconds then): for dsp_load
        self.dsp_load = 0.0  # share of the last second the audio callback was busy
        self.started = threading.Event()  # the first loop is on stage
        self.cue_enabled = settings.channels >= 4
        self.filter = 0.0
        self.recorder = None  # a Recorder while recording
        self.sync_source, self.sync_detail = "internal", ""  # a clock follower's (MIDI, Link), set_sync
        self.sync_delay = settings.sync_delay_ms / 1000.0
        self.controller = None  # name of the MIDI mapping in use, for the dashboard (set_controller)

    # ------------------------------------------------------------ life cycle
    def start(self) -> "Engine":
        """Open the output (raises ``OutputError`` if it cannot), start the worker and the control thread."""
        if self.output is None:
            raise EngineError("the engine has no output to play into (outputs.SoundCard or outputs.AudioFile)")
        self.mixer.start(self.output)
        if self.settings.status_path is not None:
            self.settings.status_path.parent.mkdir(parents=True, exist_ok=True)
            self._status_file = open(self.settings.status_path, "a", buffering=1)
        self.worker.spawn()
        self.worker_state = "loading"
        self._publish()
        self._thread.start()
        return self

    def wait_until_playing(self, timeout: float = 300.0) -> None:
        """Block until the first loop is on stage (the worker has loaded and made one)."""
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.1):
            if time.monotonic() > deadline:
                raise EngineError(f"no loop ready after {timeout:.0f}s (worker: {self.worker_state}; "
                                  f"errors: {'; '.join(self.errors) or 'none'})")
            if self.genres and all(g.error for g in self.genres.values()):
                raise EngineError("no genre could be loaded: " +
                                  "; ".join(f"{n}: {g.error}" for n, g in self.genres.items()))
            if not self._thread.is_alive():
                raise EngineError("the engine's control thread stopped")

    def stop(self) -> None:
        self.stop_recording()
        self._stop.set()
        os.write(self._wake_write, b"!")
        if self._thread.is_alive():
            self._thread.join()
        self.mixer.stop()  # the music stops now, not after the worker has wound down
        self.worker.stop()
        self._publish()  # the control thread has ended: this thread is the only writer now
        if self._status_file is not None:
            self._write_status()
            self._status_file.close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)

    def close(self) -> None:
        """Release the shared memory (after ``stop``)."""
        self.mixer.close()
        self.bank.close()

    # ------------------------------------------------------------ worker
    def _worker_config(self) -> WorkerConfig:
        presets = {name: state.preset for name, state in self.genres.items()}
        return WorkerConfig(genres=presets, bank_name=self.bank.name, bank_slots=self.bank.slots,
                            bank_frames=self.bank.slot_frames, sample_rate=self.settings.sample_rate,
                            device=self.settings.device, precision=self.settings.precision,
                            threads=self.worker.threads, batch_size=self.settings.batch_size,
                            compile=self.settings.compile, prep_processes=self.settings.prep_processes,
                            canvas=self.settings.canvas, bpm=self.target_bpm, max_bars=self.max_bars,
                            loudness=self.settings.loudness)

    @property
    def worker_pid(self) -> int | None:
        return self.worker.pid

    def _check_worker(self) -> None:
        event = self.worker.check()
        if event is None:
            return
        what, code = event
        if what == "spawned":
            self.worker_state = "loading"
            for request in self._in_flight.values():  # what the last worker did not finish
                self.worker.send(request)
        else:
            self.worker_state = "restarting"
            self._note(f"worker stopped (exit code {code}); restarting", kind="worker_restart")

    def _check_audio(self) -> None:
        if not self.mixer.alive and not self._audio_lost:
            self._audio_lost = True
            self._note("the audio process stopped: nothing is playing", kind="error")
        faults = self.mixer.faults
        if faults > self._audio_faults:
            self._audio_faults = faults
            self._recover_from_audio_fault()
        for report in self.mixer.fault_reports():
            last = report.strip().splitlines()[-1] if report.strip() else "?"
            self._note(f"the audio callback failed ({last}); its mixer was replaced and the set goes on",
                       kind="audio_fault")
            self.events[-1]["traceback"] = report

    def _recover_from_audio_fault(self) -> None:
        """The callback is silent since its fault: a fresh mixer, and the playing loop again from where
        the grid has got to, faded in."""
        current = self._playing_stage  # as last seen before the fault (the fault may have garbled the state)
        self.mixer.reset()
        if self.playing is not None and current is not None and current.loop_id == self.playing.loop_id:
            fade = self._nudge_fade
            at, offset = self.timing.resume(self.mixer.clock, current, len(fade))
            self._launch(self.playing, at=at, fade=fade, offset=offset)


    # ------------------------------------------------------------ actions (any thread)
    def _do(self, command) -> None:
        self._commands.put(command)
        try:
            os.write(self._wake_write, b"!")  # wake the control thread now, not at its next tick
        except OSError:
            pass

    def trigger(self, genre: str | None = None) -> None:
        """Launch the next ready loop of ``genre`` (default: the selected one), quantised."""
        self._do(Trigger(genre))

    def trigger_mode(self, mode: str, strength: float = 0.5, target_seed: int | None = None) -> None:
        """Make a loop from the playing one (variation, continuation, morph) and launch it when ready."""
        self._do(MakeFromPlaying(mode, strength, target_seed))

    def select_genre(self, genre: str) -> None:
        self._do(SelectGenre(genre))

    def set_steps(self, steps: int) -> None:
        self._do(ChangeSampling(steps=steps))

    def set_sampler(self, sampler: str) -> None:
        self._do(ChangeSampling(sampler=sampler))

    def set_bpm(self, bpm: float, follow: bool = False) -> None:
        """Change the master tempo. ``follow`` (an outside clock leads): the grid turns at the next bar
        line at once; otherwise it turns when the playing loop's re-stretched copy takes over."""
        self._do(ChangeTempo(bpm, follow))

    def set_bars(self, bars: int) -> None:
        """The longest loop to cut (1, 2 or 4 bars): the ready loops are cut again to it from their
        spectrograms (no new sampling); the playing loop plays on."""
        self._do(ChangeBars(_checked_bars(int(bars))))

    def set_quantise(self, quantise: str) -> None:
        if quantise not in QUANTISE_BARS:
            raise EngineError(f"quantise must be one of {', '.join(QUANTISE_BARS)}, got {quantise!r}")
        self._do(ChangeQuantise(quantise))

    def set_auto_bars(self, bars: int | None) -> None:
        self._do(ChangeAutoBars(bars))

    def set_sync(self, source: str, detail: str = "") -> None:
        """What the set follows (internal, midi, link) and how it goes, for the dashboard."""
        self._do(ReportSync(source, detail))

    def set_controller(self, name: str | None) -> None:
        self._do(ReportController(name))

    def set_gain(self, gain: float) -> None:
        self._do(ChangeGain(gain))

    def step_gain(self, change: float) -> None:
        """The master gain up or down by ``change`` from wherever it is when the command runs."""
        self._do(ChangeGain(change, relative=True))

    def set_filter(self, position: float) -> None:
        """The DJ filter knob, -1..1: low-pass left of centre, high-pass right, flat in the middle."""
        self._do(ChangeFilter(position))

    def step_filter(self, change: float) -> None:
        self._do(ChangeFilter(change, relative=True))

    def toggle_cue(self) -> None:
        self._do(ToggleCue())

    def step_key(self, semitones: int) -> None:
        """Key up (+1) or down (-1): the set's key moves, and the playing loop with it at the next bar."""
        self._do(StepKey(int(semitones)))

    def toggle_key_lock(self) -> None:
        """Keep the set in key, or stop keeping it (keys still shown)."""
        self._do(ToggleKeyLock())

    def choose_key(self, key: str) -> None:
        """The set's key, named (8A, Am, A minor ...) or "auto"; keeping to it turns on."""
        if key.strip().lower() != "auto":
            parse_key(key)  # a bad name fails here, in the caller
        self._do(ChooseKey(key))

    def set_key_mode(self, mode: str | None = None) -> None:
        """pick, shift or off; None: the other of pick and shift."""
        self._do(ChangeKeyMode(mode))

    def align(self, sample: int, beat: float) -> None:
        """An outside clock says ``sample`` is at ``beat``: move the grid there, and start the playing
        loop again from its top at the next bar line so it sits on the new grid."""
        self._do(AlignGrid(sample, beat))

    def nudge(self, milliseconds: float) -> None:
        """Beat-match by hand: the playing loop and the grid jump ``milliseconds`` ahead (negative:
        back), through a short crossfade, as a DJ pushes or holds a platter."""
        self._do(Nudge(float(milliseconds)))

    def save_playing(self, crate: str | Path) -> Path:
        """Write the playing loop to ``crate`` with its tempo, bars, genre and seed; returns its path."""
        return self._ask(SavePlaying(Path(crate), queue.SimpleQueue()))

    def start_recording(self, path: str | Path | None = None) -> Path:
        """Record the master output to ``path`` (default: recordings/set-DATE-TIME.wav); returns the
        path being recorded to (the running recording's, if one is)."""
        if path is None:
            path = Path("recordings") / time.strftime("set-%Y%m%d-%H%M%S.wav")
        return self._ask(StartRecording(Path(path), queue.SimpleQueue()))

    def stop_recording(self) -> Path | None:
        """End the recording; returns its path (None if nothing was recording)."""
        return self._ask(StopRecording(queue.SimpleQueue()))

    def _ask(self, command):
        if self._thread.is_alive():
            self._do(command)
        else:  # before start or after stop, the caller is the engine's only thread
            self._perform(command)
        result = command.reply.get(timeout=10)
        if isinstance(result, Exception):
            raise result
        return result

    # ------------------------------------------------------------ control thread
    def _perform(self, command) -> None:
        match command:
            case Trigger(genre):
                self._trigger(genre or self.selected)
            case MakeFromPlaying(mode, strength, target_seed):
                self._request_mode(mode, strength, target_seed)
            case SelectGenre(genre):
                self._select(genre)
            case ChangeSampling(steps, sampler):
                self._set_sampling(steps, sampler)
            case ChangeTempo(bpm, follow):
                self._set_bpm(bpm, follow)
            case ChangeBars(bars):
                self._set_bars(bars)
            case ChangeQuantise(quantise):
                self.quantise = quantise
            case ChangeAutoBars(bars):
                self.auto_bars, self._next_auto_beat = bars, None
            case ChangeGain(value, relative):
                self.mixer.gain = float(GAIN.clamp(self.mixer.gain + value if relative else value))
            case ChangeFilter(value, relative):
                self._set_filter(self.filter + value if relative else value)
            case ToggleCue():
                self.cue_enabled = not self.cue_enabled
            case StepKey(semitones):
                self._step_key(semitones)
            case ToggleKeyLock():
                self.set_key.toggle_lock()
                self._keep_to_key()
            case ChangeKeyMode(mode):
                self.set_key.next_mode(mode)
                self._keep_to_key()
            case ChooseKey(key):
                self.set_key.choose(key)
                self._keep_to_key()
            case AlignGrid(sample, beat):
                self._align(sample, beat)
            case Nudge(milliseconds):
                self._nudge(milliseconds)
            case ReportSync(source, detail):
                self.sync_source, self.sync_detail = source, detail
            case ReportController(name):
                self.controller = name
            case SavePlaying(crate, reply):
                reply.put(self._save_playing(crate))
            case StartRecording(path, reply):
                reply.put(self._start_recording(path))
            case StopRecording(reply):
                reply.put(self._stop_recording())
            case _:
                raise TypeError(f"not an engine command: {command!r}")

    def _preset_eta(self, genre: str) -> float:
        preset = self.genres[genre].preset
        return 0.0 if isinstance(preset, Exception) else preset.eta

    def effective(self, name: str, genre: str | None = None):
        """Steps or sampler in force for ``genre`` (default: the playing, else the selected one):
        the set's own, else that genre preset's."""
        genre = genre or (self.playing.genre if self.playing else self.selected)
        preset = self.genres[genre].preset
        own = self.steps if name == "steps" else self.sampler
        return own if own is not None or isinstance(preset, Exception) else getattr(preset, name)

    def _control(self) -> None:
        while not self._stop.is_set():
            waiting_on = [self._wake_read] + ([self.worker.results] if self.worker.results is not None else [])
            if self._wake_read in connection_wait(waiting_on, timeout=self.CONTROL_TICK):
                os.read(self._wake_read, 4096)
            try:
                while True:
                    try:
                        command = self._commands.get_nowait()
                    except queue.Empty:
                        break
                    self._perform(command)
                self._read_results()
                self._check_worker()
                self._check_audio()
                self._follow_mixer()
                self._refill()
                self._first_launch()
                self._auto_launch()
                self._update_cue()
                if time.monotonic() - self._busy_mark[0] >= 1.0:
                    self._measure_dsp_load()
                self._publish()
                if self.playing is not None and not self.started.is_set():
                    self.started.set()  # after the publish: a waiter then reads a snapshot with the loop in it
                if self._status_file is not None and time.monotonic() - self._last_written >= 1.0:
                    self._write_status()
            except Exception as err:  # a bug in one round must not stop the set
                self._note(f"engine: {type(err).__name__}: {err}", kind="error")

    def _read_results(self) -> None:
        for message in self.worker.messages():
            if isinstance(message, LoopReady):
                self._arrived(message)
            elif isinstance(message, LoopFailed):
                self._failed(message)
            elif isinstance(message, GenreError):
                self.genres[message.genre].error = message.message
                self._note(f"genre {message.genre}: {message.message}", kind="genre_error")
            elif isinstance(message, WorkerReady):
                self.worker_state = "ready"
                self.worker_report = message

    def _arrived(self, ready: LoopReady) -> None:
        request = ready.request
        self._in_flight.pop(request.loop_id, None)
        origin = self._restretched.pop(request.loop_id, None)  # a re-stretch stays what it was
        info = LoopInfo(request, ready.bpm, ready.bars, ready.frames, mode=origin.mode if origin else request.mode,
                        source_id=origin.source_id if origin else request.source_id, width=ready.width,
                        loudness=ready.loudness, gain_db=ready.gain_db, key=ready.key,
                        key_confidence=ready.key_confidence, pitch_shift=ready.pitch_shift)
        self.loops[info.loop_id] = info
        state = self.genres[request.genre]
        if request.mode != "recut":
            state.generated += 1
        self._work_seconds += ready.work_seconds
        self._audio_seconds += ready.frames / self.settings.sample_rate
        if abs(info.bpm - self.target_bpm) > 1e-6:  # made for a tempo the set has left
            self._recut(info)
            return
        if request.mode == "recut" and self.playing is not None and request.source_id == self.playing.loop_id:
            self._swap_restretched(info, request.source_id)
            return
        if request.max_bars != self.max_bars:  # cut for a loop length the set has left
            self._recut(info)
            return
        if self._waiting is not None and self._waiting.loop_id == info.loop_id:
            self._waiting = None
            self._launch(info)  # asked for by name (a variation of the playing loop...): no key rule
            return
        if not self.set_key.fits(info.key):
            self._let_go(info)
            return
        state.ready.append(info)
        if self._want_launch and request.genre == self.selected:
            self._want_launch = False
            self._trigger(self.selected)

    def _failed(self, failed: LoopFailed) -> None:
        request = failed.request
        self._in_flight.pop(request.loop_id, None)
        self._restretched.pop(request.loop_id, None)
        self.bank.give_back(request.slot)
        state = self.genres[request.genre]
        if failed.dropped:
            state.dropped += 1
        else:
            self._note(f"{request.genre} loop {request.loop_id} ({request.mode}): {failed.reason}", kind="error")
        if self._waiting is not None and self._waiting.loop_id == request.loop_id:
            self._waiting = None
            if failed.dropped and request.mode != "recut":  # try the same idea with the next seed
                self._request_mode(request.mode, request.strength, request.target_seed)
        if request.mode == "recut" and self.playing is not None and request.source_id == self.playing.loop_id:
            # The playing loop cannot follow the new tempo: change at the next bar with a fresh loop.
            self._retempo_pending = False
            self.transport.set_bpm(self.target_bpm, self._next_line("1"))
            self._want_launch = True

    def _let_go(self, info: LoopInfo) -> None:
        """A loop out of the set's key: its slot is freed, and the buffer refills with new loops."""
        if self.mixer.cue_id == info.loop_id:
            self.mixer.set_cue(None)
        self.loops.pop(info.loop_id, None)
        self.bank.give_back(info.slot)
        self.genres[info.genre].off_key += 1

    def _step_key(self, semitones: int) -> None:
        if not self.set_key.step(semitones):
            self._note("key up/down: the set has no key yet (--key, or key lock on auto)", kind="error")
            return
        self._note(f"set key {key_label(self.set_key.key.camelot)}", kind="set_key")
        self._keep_to_key()
        playing = self.playing
        if playing is not None and playing.key is not None:  # a loop with no key fits any: it stays
            self._request(playing.genre, mode="recut", source=playing, max_bars=playing.bars,
                          pitch_shift=playing.pitch_shift + semitones)

    def _keep_to_key(self) -> None:
        """The set's key came or changed: buffered loops out of it go."""
        for state in self.genres.values():
            for info in [i for i in state.ready if not self.set_key.fits(i.key)]:
                state.ready.remove(info)
                self._let_go(info)

    # -- requests
    def _new_id(self) -> int:
        loop_id = self._next_id
        self._next_id += 1
        return loop_id

    def _request(self, genre: str, mode: str = "new", source: LoopInfo | None = None, strength: float = 0.5,
                 target_seed: int | None = None, max_bars: int | None = None,
                 pitch_shift: int | None = None) -> LoopRequest | None:
        slot = self.bank.take()
        if slot is None:
            return None
        seed = self._seed
        self._seed += 1
        request = LoopRequest(loop_id=self._new_id(), slot=slot, genre=genre, seed=seed,
                              steps=int(self.effective("steps", genre)),
                              sampler=str(self.effective("sampler", genre)), eta=self._preset_eta(genre),
                              bpm=self.target_bpm,
                              mode=mode, source_id=source.loop_id if source else None, strength=strength,
                              target_seed=target_seed, max_bars=max_bars or self.max_bars,
                              key=self.set_key.shift_target(), asked_key=self.set_key.asked_key())
        if source is not None and mode == "recut":  # same loop, same recipe: only tempo, length or pitch moves
            request = replace(request, seed=source.seed, steps=source.steps, sampler=source.sampler, eta=source.eta,
                              source_mode=source.mode, width=source.width, asked_key=source.asked_key,
                              pitch_shift=source.pitch_shift if pitch_shift is None else pitch_shift)
            self._restretched[request.loop_id] = source
        self._in_flight[request.loop_id] = request
        self.worker.send(request)
        return request

    def _refill(self) -> None:
        for name, state in self.genres.items():
            if state.error or isinstance(state.preset, Exception):
                if state.error is None:
                    state.error = str(state.preset)
                continue
            queued = sum(1 for r in self._in_flight.values() if r.genre == name and r.mode == "new")
            while len(state.ready) + queued < self.settings.depth:
                if self._request(name) is None:
                    return  # no free slot until something leaves the stage
                queued += 1

    def _request_mode(self, mode: str, strength: float, target_seed: int | None) -> None:
        if self.playing is None:
            self._note(f"{mode}: nothing is playing yet", kind="error")
            return
        if mode == "morph" and target_seed is None:
            target_seed = self._seed
            self._seed += 1
        source = self.playing
        self._waiting = self._request(source.genre, mode=mode, source=source, strength=strength,
                                      target_seed=target_seed)

    def _recut(self, info: LoopInfo) -> None:
        """A buffered loop at an old tempo or length: let the worker cut it again into a fresh slot."""
        if self.mixer.cue_id == info.loop_id:
            self.mixer.set_cue(None)  # its slot is about to be rewritten
        self.loops.pop(info.loop_id, None)
        self.bank.give_back(info.slot)
        request = self._request(info.genre, mode="recut", source=info)
        if self._waiting is not None and self._waiting.loop_id == info.loop_id:
            self._waiting = request  # the loop to launch is now its re-stretched copy

    # -- launching
    def _next_line(self, quantise: str) -> int:
        """The earliest grid sample a launch handed over now can still make, fade included."""
        return self.timing.next_line(self.mixer.clock, self.transport, quantise, len(self._fade))

    def _trigger(self, genre: str) -> None:
        state = self.genres.get(genre)
        if state is None:
            self._note(f"no genre {genre!r} in this set (genres: {', '.join(self.genres)})", kind="error")
            return
        if not state.ready:
            self._want_launch = True  # launch the next one as soon as it is ready
            return
        self._launch(state.ready.popleft())

    def _launch(self, info: LoopInfo, at: int | None = None, fade: np.ndarray | None = None, offset: int = 0) -> None:
        # A launch not yet begun gives way to this one: the audio process reports it as bumped.
        fade = self._fade if fade is None else fade
        if self.playing is None:
            fade = fade[:0]  # the very first loop starts cleanly, no fade from silence
            at = self.timing.earliest(self.mixer.clock)
            self.transport.start_at(at)  # and its first sample is the set's first downbeat
        else:
            at = self.timing.launch_at(self.mixer.clock, self.transport, self.quantise, len(fade), at,
                                       self.mixer.outgoing_end)
        fade = fade[:max(0, min(len(fade), info.frames // 2))]
        self._on_stage[info.loop_id] = info
        self.next_up = info
        self.mixer.launch(info.loop_id, info.slot, info.frames, at, fade, offset)

    def _swap_restretched(self, info: LoopInfo, playing_id: int) -> None:
        """The playing loop re-stretched: it takes over at the next bar line, from the bar the old copy
        had reached, and the tempo turns there."""
        current = self.mixer.current
        if current is None or current.loop_id != playing_id:
            self._retempo_pending = False
            self.genres[info.genre].ready.appendleft(info)
            return
        at = self._next_line("1")
        self.transport.set_bpm(info.bpm, at)
        self._retempo_pending = False
        self._launch(info, at=at, offset=self.timing.bar_reached(at, current, info.bars, info.frames))

    def _follow_mixer(self) -> None:
        """Learn from the callback what has launched, and free the slots of loops that left the stage."""
        mixer = self.mixer
        held = mixer.held()
        for loop_id in mixer.bumped(self._bumps_seen):
            self._bumps_seen += 1
            # A launch replaced before it began: its loop goes back to the front of its buffer,
            # unless it is sounding or scheduled again (a relaunch of the playing loop).
            bumped = self._on_stage.pop(loop_id, None) if loop_id not in held else None
            if bumped is not None:
                self._stage_misses.pop(loop_id, None)
                self.genres[bumped.genre].ready.appendleft(bumped)
        for loop_id, at in mixer.launches(self._launches_seen):
            self._launches_seen += 1
            info = self._on_stage.get(loop_id)
            if info is None:
                continue
            previous = self.playing
            self.playing = info
            self._last_launch_sample = at
            if self.next_up is info:
                self.next_up = None
            position = self.transport.position(at)
            self.events.append({"event": "launch", "loop": loop_id, "sample": at, "bar": position.bar,
                                "beat": position.beat, "grid_sample": round(self.transport.sample_of_beat(
                                    self.transport.beat_at(at))), "genre": info.genre, "seed": info.seed,
                                "mode": info.mode, "key": info.key, "pitch_shift": info.pitch_shift,
                                "asked_key": info.asked_key, "from": previous.loop_id if previous else None})
            if self.set_key.learn(info.key):
                self._note(f"set key {key_label(info.key)}, from loop {loop_id}", kind="set_key")
                self._keep_to_key()
            if self._preroll_underflows is None:
                self._preroll_underflows = mixer.underflows  # while the worker loaded: not the set's
        self.transport.advance(mixer.clock)
        current = mixer.current
        if current is not None and self.playing is not None and current.loop_id == self.playing.loop_id \
                and not mixer.faults > self._audio_faults:
            self._playing_stage = current  # where the playing loop began: a resume after a fault follows it
        for loop_id in list(self._on_stage):
            if loop_id in held:
                self._stage_misses.pop(loop_id, None)
                continue
            # Seen off stage twice in a row: the callback cannot be holding it between our reads.
            self._stage_misses[loop_id] = self._stage_misses.get(loop_id, 0) + 1
            if self._stage_misses[loop_id] >= 2:
                self._unstage(loop_id)

    def _unstage(self, loop_id: int) -> None:
        info = self._on_stage.pop(loop_id, None)
        self._stage_misses.pop(loop_id, None)
        if info is not None and self.loops.pop(loop_id, None) is not None:
            self.bank.give_back(info.slot)

    def _coming_next(self) -> LoopInfo | None:
        """The scheduled launch, or else the loop a trigger would launch."""
        try:
            return self.next_up or self.genres[self.selected].ready[0]
        except IndexError:  # nothing ready (or emptied while another thread looked)
            return None

    def _update_cue(self) -> None:
        """With a cue pair (four channels), the headphones preview what comes next."""
        if self.settings.channels < 4:
            return
        coming = self._coming_next() if self.cue_enabled else None
        cue_id = self.mixer.cue_id
        if coming is None:
            if cue_id is not None:
                self.mixer.set_cue(None)
        elif cue_id != coming.loop_id:
            # the preview starts from the loop's top
            self.mixer.set_cue(coming.loop_id, coming.slot, coming.frames, start=self.mixer.clock)

    def _first_launch(self) -> None:
        """The set begins with the first ready loop of the selected genre."""
        if self.playing is None and not self.mixer.launches_sent and self.genres[self.selected].ready:
            self._launch(self.genres[self.selected].ready.popleft())

    def _auto_launch(self) -> None:
        if not self.auto_bars or self.playing is None or self._retempo_pending:
            return
        per_bar = self.transport.beats_per_bar
        if self._next_auto_beat is None:
            start = self._last_launch_sample
            self._next_auto_beat = round(self.transport.beat_at(start) / per_bar) * per_bar + self.auto_bars * per_bar
        if self.mixer.waiting or self._waiting is not None:
            return
        line = self.timing.auto_line(self.mixer.clock, self.transport, self._next_auto_beat, len(self._fade))
        if line == "wait":
            return
        state = self.genres[self.selected]
        if line == "launch" and state.ready:
            self._launch(state.ready.popleft(), at=round(self.transport.sample_of_beat(self._next_auto_beat)))
            self._next_auto_beat += self.auto_bars * per_bar
        else:  # nothing ready, or too late for this line: try the next bar
            self._next_auto_beat += per_bar

    # -- settings
    def _select(self, genre: str) -> None:
        if genre not in self.genres:
            self._note(f"no genre {genre!r} in this set (genres: {', '.join(self.genres)})", kind="error")
            return
        self.selected = genre

    def _set_sampling(self, steps: int | None = None, sampler: str | None = None) -> None:
        if steps is not None:
            self.steps = int(STEPS.clamp(int(steps)))
        if sampler is not None:
            if sampler not in SAMPLERS:
                self._note(f"unknown sampler {sampler!r} (samplers: {', '.join(SAMPLERS)})", kind="error")
                return
            self.sampler = sampler

    def _set_bpm(self, bpm: float, follow: bool = False) -> None:
        if bpm not in TEMPO:
            self._note(TEMPO.outside("tempo", bpm), kind="error")
            return
        self.target_bpm = bpm
        if self.playing is None:
            self.transport = Transport(self.settings.sample_rate, bpm)
        else:
            # The grid turns at a bar line once the playing loop's re-stretched copy is ready.
            self._retempo_pending = True
            if follow:
                self.transport.set_bpm(bpm, self._next_line("1"))
            # Its length stays: the re-stretched copy takes over from the bar the old one reached.
            self._request(self.playing.genre, mode="recut", source=self.playing, max_bars=self.playing.bars)
        for state in self.genres.values():
            while state.ready:
                self._recut(state.ready.popleft())

    def _nudge(self, milliseconds: float) -> None:
        current = self.mixer.current
        if self.playing is None or current is None or current.loop_id != self.playing.loop_id:
            self._note("nudge: nothing is playing yet", kind="error")
            return
        if self.mixer.waiting:  # the relaunch below would bump it
            self._note("nudge: a launch is about to begin; nudge again after it", kind="error")
            return
        rate = self.settings.sample_rate
        shift = int(round(milliseconds * rate / 1000))
        fade = self._nudge_fade
        at, offset = self.timing.nudge(self.mixer.clock, current, shift, len(fade), self.mixer.outgoing_end)
        # From ``at`` the loop plays ``shift`` samples further on, and the grid moves with it.
        self.transport.realign(at, self.transport.beat_at(at) + shift * self.transport.bpm_at(at) / (60.0 * rate))
        self._launch(self.playing, at=at, fade=fade, offset=offset)
        self._next_auto_beat = None

    def _set_filter(self, position: float) -> None:
        from .mixer import dj_filter

        self.filter = float(FILTER.clamp(position))
        self.mixer.set_filter(dj_filter(self.filter, self.settings.sample_rate))

    def _align(self, sample: int, beat: float) -> None:
        self._note(f"grid moved to the clock: beat {beat:.2f} at sample {sample}", kind="sync")
        self.transport.realign(sample, beat)
        if self.playing is not None:
            self._launch(self.playing, at=self._next_line("1"))
        self._next_auto_beat = None

    def _set_bars(self, bars: int) -> None:
        self.max_bars = bars
        for state in self.genres.values():
            for info in [i for i in state.ready if i.request.max_bars != bars]:
                state.ready.remove(info)
                self._recut(info)

    def _start_recording(self, path: Path):
        from .recorder import Recorder

        if self.recorder is None:
            try:
                self.recorder = Recorder(self.mixer, path).start()
            except Exception as err:  # the caller gets it; the set goes on
                return err
            self._note(f"recording to {path}", kind="recording")
        return self.recorder.path

    def _stop_recording(self):
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        path = recorder.stop()
        self._note(f"recorded {path}", kind="recording")
        return path

    def _save_playing(self, crate: Path):
        from ..loops import Loop, write_loop

        info = self.playing
        if info is None:
            return EngineError("nothing is playing yet")
        audio = np.array(self.bank.view(info.slot, info.frames))
        loop = Loop(audio=audio, sample_rate=self.settings.sample_rate, bpm=info.bpm, bars=info.bars,
                    loudness=info.loudness, gain_db=info.gain_db, key=info.key, key_confidence=info.key_confidence,
                    pitch_shift=info.pitch_shift)
        stem = (f"{info.genre}_seed{info.seed}_{info.mode}_{info.bpm:.1f}bpm-{info.bars}bars_{info.key or 'nokey'}"
                f"_{info.loop_id}")
        metadata = {"genre": info.genre, "seed": info.seed, "steps": info.steps, "sampler": info.sampler, "eta": info.eta,
                    "mode": info.mode, "source_id": info.source_id, "loop_id": info.loop_id}
        try:
            path = write_loop(crate, stem, loop, metadata)
        except OSError as err:
            return EngineError(f"could not save to {crate}: {err}")
        self._note(f"saved {path.name}", kind="saved")
        return path

    # ------------------------------------------------------------ reporting
    def _note(self, message: str, kind: str) -> None:
        if kind in ("error", "genre_error"):
            self.errors.append(message)
        self.events.append({"event": kind, "message": message, "sample": self.mixer.clock})

    def _underflows_in_play(self) -> int:
        # Before the first loop the output plays silence while the worker loads (the CPU at its busiest):
        # those underflows are pre-roll, reported apart.
        return 0 if self._preroll_underflows is None else self.mixer.underflows - self._preroll_underflows

    def snapshot(self) -> Snapshot | None:
        """The engine's state as the control thread last published it (None before ``start``)."""
        return self._published

    def loop_audio(self, loop: Mapping) -> np.ndarray:
        """The audio in the loop bank of a loop as a snapshot describes it (its "slot" and "frames")."""
        return self.bank.view(loop["slot"], loop["frames"])

    def _publish(self) -> None:
        self._published = Snapshot(self._describe())
        self.grid = self.transport.copy()

    def _describe(self) -> dict:
        clock, grid = self.mixer.clock, self.transport
        position = grid.position(clock)
        return {
            "time": round(time.time(), 3),
            "sample": clock,
            "seconds": round(clock / self.settings.sample_rate, 3),
            "bpm": round(grid.bpm_at(clock), 3),
            "bar": position.bar, "beat": position.beat,
            "playing": self.playing.describe() if self.playing else None,
            "next": coming.describe() if (coming := self._coming_next()) else None,
            "target_bpm": self.target_bpm,
            "genre": self.selected, "steps": self.steps, "sampler": self.sampler, "quantise": self.quantise,
            "in_force": {"steps": self.effective("steps"), "sampler": self.effective("sampler")},
            "auto_bars": self.auto_bars, "bars": self.max_bars,
            "buffer": {name: len(state.ready) for name, state in self.genres.items()},
            "generated": {name: state.generated for name, state in self.genres.items()},
            "dropped": {name: state.dropped for name, state in self.genres.items()},
            "off_key": {name: state.off_key for name, state in self.genres.items()},  # let go, out of the set's key
            "key": self.set_key.describe(),
            "genre_errors": {name: state.error for name, state in self.genres.items() if state.error},
            "launches": self.mixer.launch_count, "late_launches": self.mixer.late_launches,
            "underflows": self._underflows_in_play(),  # while playing: what a listener could have heard
            "preroll_underflows": self._preroll_underflows,
            "audio_faults": self.mixer.faults,
            "dsp_load": round(self.dsp_load, 4), "block_time": self.mixer.state.block_times(),
            "worker": {"state": self.worker_state, "device": self.worker_report.device,
                       "threads": self.worker_report.threads, "compiled": self.worker_report.compiled,
                       "prep_processes": self.worker_report.prep_processes, "restarts": self.worker.restarts,
                       "pid": self.worker_pid, "in_flight": len(self._in_flight)},
            "output": {"name": self.mixer.output_name, "latency_ms": round(self.mixer.output_latency * 1000, 2),
                       "running": not self._audio_lost},
            "realtime_factor": round(self._audio_seconds / self._work_seconds, 3) if self._work_seconds else None,
            "level": round(float(self.mixer.level), 4),
            "depth": self.settings.depth, "gain": round(self.mixer.gain, 3), "filter": round(self.filter, 3),
            "loudness": self.settings.loudness,  # the level every loop is brought to (LUFS); None: peak only
            "cue": self.cue_enabled and self.settings.channels >= 4,
            "recording": str(self.recorder.path) if self.recorder is not None else None,
            "sync": {"source": self.sync_source, "detail": self.sync_detail},
            "controller": self.controller,
            "errors": list(self.errors)[-5:],
        }

    def _measure_dsp_load(self) -> None:
        now = time.monotonic()
        busy = self.mixer.state.block_times()["busy_seconds"]
        then, busy_then = self._busy_mark
        self.dsp_load = (busy - busy_then) / (now - then) if now > then else 0.0
        self._busy_mark = (now, busy)

    def _write_status(self) -> None:
        self._last_written = time.monotonic()
        self._status_file.write(self._published.to_json() + "\n")
