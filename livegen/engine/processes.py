"""Ending the engine's child processes (the worker, the audio process) the same way."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.process import BaseProcess

GRACE_SECONDS = 5.0  # to finish what it is doing (a batch, a block) after it is asked to stop


def end_process(process: BaseProcess, ask_to_stop: Callable[[], None]) -> None:
    """Ask ``process`` to stop, wait for it a while, then kill it: a stop must not hang on a stuck child."""
    ask_to_stop()
    process.join(GRACE_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()
