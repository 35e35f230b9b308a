"""The generator worker's prep processes end with it, however it ends."""

import multiprocessing
import os
import signal
from pathlib import Path

from livegen.engine.loopbank import LoopBank
from livegen.engine.worker import WorkerConfig, WorkerReady, worker_main
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


def test_prep_processes_end_when_the_worker_is_killed():
    bank = LoopBank(2, 48000)
    context = multiprocessing.get_context("spawn")
    down_recv, down_send = context.Pipe(duplex=False)
    up_recv, up_send = context.Pipe(duplex=False)
    config = WorkerConfig(genres={"techno": load_genre("techno")}, bank_name=bank.name, bank_slots=2,
                          bank_frames=48000, sample_rate=48000, prep_processes=2)
    worker = context.Process(target=worker_main, args=(config, down_recv, up_send))
    worker.start()
    try:
        assert up_recv.poll(240), "the worker did not get ready"
        while not isinstance(ready := up_recv.recv(), WorkerReady):
            pass
        assert ready.prep_processes == 2
        pool = [pid for pid in children_of(worker.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(pool) >= 2
        os.kill(worker.pid, signal.SIGKILL)  # as the out-of-memory killer would
        worker.join(10)
        wait_for(lambda: not any(alive(pid) for pid in pool), 10, "the prep processes to end")
    finally:
        if worker.is_alive():
            worker.kill()
        bank.close()
