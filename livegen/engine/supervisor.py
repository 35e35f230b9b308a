"""The generator worker's process, kept alive: spawned, watched, restarted with back-off.

The engine's control thread owns it and asks it, once a round, what happened (``check``); it says
when a worker has died (the engine notes it) and when a new one has been spawned (the engine sends
it again what the last one had in hand). The worker itself is ``worker.worker_main``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Callable, Iterator

from .processes import end_process
from .worker import WorkerConfig, worker_main

# A worker that dies within this long of its start died of something that will not go away by
# itself (a broken install, too little memory): it is retried ever more slowly, up to MAX_DELAY.
QUICK_DEATH = 30.0
MAX_DELAY = 30.0


class WorkerSupervisor:
    def __init__(self, make_config: Callable[[], WorkerConfig], threads: int, daemon: bool):
        self.make_config = make_config  # called at each spawn: the set's tempo and length may have moved
        self.threads = threads
        # A daemon cannot start the prep processes; without them it is one, so it ends with the
        # engine even if the engine fails to stop it.
        self.daemon = daemon
        self.restarts = 0
        self._process = None
        self._requests = self._results = None
        self._spawned_at = self._restart_at = 0.0
        self._delay = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def results(self):
        """The connection the worker's messages arrive on (None while there is no worker), to wait on."""
        return self._results if self._process is not None else None

    def spawn(self) -> None:
        # The worker gets its thread count before its numpy, numba or Rubber Band start any threads:
        # one core belongs to the audio.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[name] = str(self.threads)
        context = multiprocessing.get_context("spawn")
        down_recv, down_send = context.Pipe(duplex=False)
        up_recv, up_send = context.Pipe(duplex=False)
        self._process = context.Process(target=worker_main, args=(self.make_config(), down_recv, up_send),
                                        name="livegen-worker", daemon=self.daemon)
        self._process.start()
        self._spawned_at = time.monotonic()
        down_recv.close()
        up_send.close()
        self._requests, self._results = down_send, up_recv

    def send(self, request) -> None:
        try:
            self._requests.send(request)
        except (OSError, ValueError, AttributeError):
            pass  # the worker is gone: ``check`` restarts it, and the engine sends this again

    def messages(self) -> Iterator[object]:
        """What the worker has sent since the last call, without waiting."""
        while self._process is not None:
            try:
                if not self._results.poll():
                    return
                yield self._results.recv()
            except (EOFError, OSError):
                return  # the worker died mid-message: ``check`` takes it from here

    def check(self) -> tuple[str, int | None] | None:
        """("died", exit code) when the worker was found dead (a restart is scheduled), ("spawned",
        None) when a new one was started, else None."""
        if self._process is None:
            if time.monotonic() >= self._restart_at:
                self.spawn()
                return "spawned", None
            return None
        code = self._process.exitcode
        if code is None:
            return None
        self._close()
        quick = time.monotonic() - self._spawned_at < QUICK_DEATH
        self._delay = min(max(2 * self._delay, 0.5), MAX_DELAY) if quick else 0.0
        self._restart_at = time.monotonic() + self._delay
        self.restarts += 1
        return "died", code

    def stop(self) -> None:
        if self._process is None:
            return
        end_process(self._process, lambda: self.send(None))
        self._close()

    def _close(self) -> None:
        for conn in (self._requests, self._results):
            conn.close()
        self._process = None
