"""The generator worker: the canvas its loops are drawn at; its prep processes end with it, and it ends
when one of them dies."""

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from livegen.engine.loopbank import LoopBank, slot_frames_for
from livegen.engine.worker import LoopReady, LoopRequest, WorkerConfig, WorkerReady, worker_main
from livegen.presets import load_genre
from tests.waiting import wait_for


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class RunningWorker:
    """The real worker in a spawned process, with its prep processes, as the engine starts it."""

    def __init__(self, prep_processes: int, genres: dict | None = None):
        self.bank = LoopBank(4, slot_frames_for(48000, 60.0))
        context = multiprocessing.get_context("spawn")
        down_recv, self.requests = context.Pipe(duplex=False)
        self.results, up_send = context.Pipe(duplex=False)
        config = WorkerConfig(genres=genres or {"techno": load_genre("techno-fast")}, bank_name=self.bank.name,
                              bank_slots=self.bank.slots, bank_frames=self.bank.slot_frames, sample_rate=48000,
                              prep_processes=prep_processes)
        self.process = context.Process(target=worker_main, args=(config, down_recv, up_send))
        self.process.start()

    def ready(self) -> WorkerReady:
        assert self.results.poll(240), "the worker did not get ready"
        while not isinstance(message := self.results.recv(), WorkerReady):
            pass
        return message

    def make(self, request: LoopRequest) -> LoopReady:
        self.requests.send(request)
        assert self.results.poll(120), f"no answer to {request}"
        answer = self.results.recv()
        assert isinstance(answer, LoopReady), answer
        return answer

    def pool(self) -> list[int]:
        return [pid for pid in children_of(self.process.pid)
                if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]

    def __enter__(self) -> "RunningWorker":
        return self

    def __exit__(self, *exc) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.bank.close()


@pytest.mark.slow
def test_prep_processes_end_when_the_worker_is_killed():
    with RunningWorker(prep_processes=2) as worker:
        assert worker.ready().prep_processes == 2
        pool = worker.pool()
        assert len(pool) >= 2
        os.kill(worker.process.pid, signal.SIGKILL)  # as the out-of-memory killer would
        worker.process.join(10)
        wait_for(lambda: not any(alive(pid) for pid in pool), 10, "the prep processes to end")


@pytest.mark.slow
def test_a_dead_prep_process_ends_the_worker_for_the_engine_to_restart():
    # A broken pool would fail every loop from then on; an ended worker is restarted by the engine.
    with RunningWorker(prep_processes=1) as worker:
        worker.ready()
        os.kill(worker.pool()[0], signal.SIGKILL)
        worker.requests.send(LoopRequest(1, 0, "techno", seed=1, steps=1, sampler="ddim", bpm=120.0))
        worker.process.join(60)
        assert worker.process.exitcode not in (None, 0), "the worker went on with a broken pool"


def test_loops_are_drawn_wide_enough_for_their_bars_and_what_works_from_one_keeps_its_width():
    # The shipped model's own slice (256 columns, 5.94 s) holds 2 bars at 128 BPM; 4 bars and a beat
    # of room take 352 (8.2 s). A loop made from another keeps its source's width, and the remake of a
    # loop the worker no longer holds is drawn at the width its request carries, not at its new length's.
    with RunningWorker(prep_processes=0) as worker:
        worker.ready()
        new = worker.make(LoopRequest(1, 0, "techno", seed=5, steps=1, sampler="ddim", bpm=128.0))
        assert new.width == 352
        assert new.frames == round(new.bars * 4 * 60 / 128.0 * 48000)
        for loop_id, mode in enumerate(("variation", "continuation", "morph"), start=2):
            made = worker.make(LoopRequest(loop_id, 1, "techno", seed=loop_id, steps=1, sampler="ddim", bpm=128.0,
                                           mode=mode, source_id=1, target_seed=9))
            assert made.width == 352, mode
        two_bars = worker.make(LoopRequest(5, 2, "techno", seed=6, steps=1, sampler="ddim", bpm=128.0, max_bars=2))
        assert two_bars.width == 256
        remade = worker.make(LoopRequest(6, 3, "techno", seed=5, steps=1, sampler="ddim", bpm=128.0, max_bars=2,
                                         mode="recut", source_id=999, source_mode="new", width=352))
        assert remade.width == 352 and remade.bars <= 2


def test_a_loop_drawn_with_step_noise_is_made_again_from_its_seed():
    """DDIM at eta 1 draws fresh noise each step, from the loop's seed: a remake (a recut of a loop the
    worker no longer holds) is the same loop, and a morph from it still works (by inverting it)."""
    import numpy as np

    with RunningWorker(prep_processes=0) as worker:
        worker.ready()
        noisy = worker.make(LoopRequest(1, 0, "techno", seed=5, steps=2, sampler="ddim", bpm=128.0, eta=1.0))
        plain = worker.make(LoopRequest(2, 1, "techno", seed=5, steps=2, sampler="ddim", bpm=128.0))
        remade = worker.make(LoopRequest(3, 2, "techno", seed=5, steps=2, sampler="ddim", bpm=128.0, eta=1.0,
                                         mode="recut", source_id=999, source_mode="new", width=noisy.width))
        audio = {ready.request.loop_id: np.array(worker.bank.view(ready.request.slot, ready.frames))
                 for ready in (noisy, plain, remade)}
        np.testing.assert_array_equal(audio[1], audio[3])
        assert audio[1].shape != audio[2].shape or not np.array_equal(audio[1], audio[2])
        morphed = worker.make(LoopRequest(4, 3, "techno", seed=6, steps=2, sampler="ddim", bpm=128.0, eta=1.0,
                                          mode="morph", source_id=1, target_seed=9))
        assert morphed.frames > 0


def test_a_recut_with_a_pitch_shift_is_the_same_loop_moved_and_every_loop_carries_its_key():
    """Key up / key down remake the playing loop moved by a semitone: the same length, another sound;
    each loop comes back with its estimated key and the confidence of it."""
    import numpy as np

    with RunningWorker(prep_processes=0) as worker:
        worker.ready()
        made = worker.make(LoopRequest(1, 0, "techno", seed=5, steps=1, sampler="ddim", bpm=128.0))
        moved = worker.make(LoopRequest(2, 1, "techno", seed=5, steps=1, sampler="ddim", bpm=128.0, mode="recut",
                                        source_id=1, width=made.width, pitch_shift=1))
        assert 0 < made.key_confidence <= 1 and 0 < moved.key_confidence <= 1
        assert made.pitch_shift == 0 and moved.pitch_shift == 1
        assert moved.frames == made.frames
        audio = [np.array(worker.bank.view(ready.request.slot, ready.frames)) for ready in (made, moved)]
        assert not np.allclose(audio[0], audio[1], atol=1e-3)


def test_a_key_conditioned_model_is_asked_for_the_requests_key(key_model_dir):
    """The set's key reaches the model: the same seed in another asked key is another loop, in the same
    key the same loop; a model without keys makes its loop whatever key is asked (test above)."""
    import numpy as np

    from livegen.presets import GenrePreset

    preset = GenrePreset("techno", key_model_dir, label="techno", steps=2)
    with RunningWorker(prep_processes=0, genres={"techno": preset}) as worker:
        worker.ready()
        asked = [worker.make(LoopRequest(n, n, "techno", seed=5, steps=2, sampler="ddim", bpm=128.0, mode="new",
                                         asked_key=key))
                 for n, key in enumerate(("8A", "8A", "3B", None))]
        audio = [np.array(worker.bank.view(ready.request.slot, ready.frames)) for ready in asked]
        assert np.array_equal(audio[0], audio[1])
        for other in (audio[2], audio[3]):
            assert other.shape != audio[0].shape or not np.allclose(other, audio[0], atol=1e-4)


def test_the_supervisor_restarts_a_dead_worker_ever_more_slowly_while_it_keeps_dying():
    import time

    from livegen.engine.supervisor import WorkerSupervisor

    bank = LoopBank(1, slot_frames_for(48000, 60.0))
    config = WorkerConfig(genres={}, bank_name=bank.name, bank_slots=1, bank_frames=bank.slot_frames,
                          sample_rate=48000)
    supervisor = WorkerSupervisor(lambda: config, threads=1, daemon=True)
    try:
        supervisor.spawn()
        delays = []
        for _ in range(2):
            os.kill(supervisor.pid, signal.SIGKILL)
            died = wait_for(lambda: supervisor.check(), 10, "the death to be seen")
            assert died == ("died", -signal.SIGKILL)
            seen = time.monotonic()
            assert wait_for(lambda: supervisor.check(), 10, "a new worker") == ("spawned", None)
            delays.append(time.monotonic() - seen)
        assert supervisor.restarts == 2
        assert 0.4 < delays[0] < delays[1] and delays[1] > 0.9  # 0.5 s, then 1 s: backing off
        assert alive(supervisor.pid)
    finally:
        supervisor.stop()
        bank.close()
    assert supervisor.pid is None
