"""Waiting for a running engine to reach a state, with a message that says what it was doing."""

import time


def wait_for(condition, seconds, what, context=None):
    """Poll ``condition`` until it holds (returning its value) or ``seconds`` pass.

    ``context``: a callable whose result goes into the failure message (the engine's state, say).
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    detail = f"; state: {context()}" if context is not None else ""
    raise AssertionError(f"timed out after {seconds}s waiting for {what}{detail}")
