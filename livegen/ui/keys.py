"""Single keys from a terminal: KeyReader puts it into cbreak mode (keys arrive as
they are typed, no echo, Ctrl-C still interrupts) and always puts it back. What
the keys do is ``livegen.control.keyboard``'s.
"""

from __future__ import annotations

import codecs
import io
import os
import select
import sys
import termios
import tty
from typing import TextIO

ESC = "\x1b"
# Cursor keys: "ESC [ A" normally, "ESC O A" when the terminal is in application mode.
_ARROWS = {f"{ESC}{intro}{final}": name
           for intro in "[O" for final, name in zip("ABCD", ("up", "down", "right", "left"))}
_NAMED = {" ": "space", "\n": "enter", "\r": "enter", ESC: "escape"}
# A lone ESC may be the start of a sequence whose rest is still in flight; wait this long for it.
_ESCAPE_WAIT = 0.05


class NotATerminalError(RuntimeError):
    """Keys were asked of something that is not a terminal (stdin redirected, a pipe, a file)."""


class KeyReader:
    """Read single keys from a terminal without waiting for Enter.

    ``with KeyReader() as keys: key = keys.read(0.1)`` -> "a", "Q", "space",
    "enter", "up", ... or None when no key came within the timeout.
    """

    def __init__(self, fd: int | TextIO | None = None):
        self.fd = _fileno(sys.stdin if fd is None else fd)
        if not os.isatty(self.fd):
            raise NotATerminalError(f"keyboard control needs a terminal, but fd {self.fd} is not a TTY "
                                    "(is stdin redirected?)")
        self._saved: list | None = None  # the terminal's attributes before cbreak mode
        self._pending = ""  # decoded input not yet handed out as keys
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __enter__(self) -> KeyReader:
        self._saved = termios.tcgetattr(self.fd)
        try:
            tty.setcbreak(self.fd, termios.TCSANOW)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            # TCSAFLUSH drops keys typed but never read, so they don't spill into the shell afterwards.
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, self._saved)
            self._saved = None

    def read(self, timeout: float | None = 0.0) -> str | None:
        """The next key, waiting at most ``timeout`` seconds (None: until one comes).

        None when no key came in time, and for a key sent as a sequence this
        does not name (F5, Ctrl+Up, ...), which is skipped whole.
        """
        if not self._pending and not self._fill(timeout):
            return None
        if self._pending.startswith(ESC):
            # The bytes of an arrow key normally arrive together; give a split one a moment.
            while not _escape_complete(self._pending) and self._fill(_ESCAPE_WAIT):
                pass
            return self._take_escape()
        key, self._pending = self._pending[0], self._pending[1:]
        return _NAMED.get(key, key)

    def _fill(self, timeout: float | None) -> bool:
        """Add what the terminal has to the pending input; False if nothing came in time."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        data = os.read(self.fd, 1024)
        if not data:  # end of input (the terminal went away)
            return False
        self._pending += self._decoder.decode(data)
        return True

    def _take_escape(self) -> str | None:
        """Consume an escape sequence from the pending input: an arrow's name, "escape", or None."""
        arrow = _ARROWS.get(self._pending[:3])
        if arrow is not None:
            self._pending = self._pending[3:]
            return arrow
        kind = self._pending[1:2]
        if kind == "O":  # F1-F4 and the like: ESC O and one more character
            self._pending = self._pending[3:]
            return None
        if kind == "[":  # any other key sent as a control sequence (F5, Home, Ctrl+arrow): skip it
            end = _csi_end(self._pending)
            self._pending = self._pending[end + 1:] if end is not None else ""
            return None
        self._pending = self._pending[1:]
        return "escape"


def _csi_end(text: str) -> int | None:
    """Index of the final byte (@ to ~) of the control sequence "ESC [ ..." at the start of text."""
    return next((i for i in range(2, len(text)) if "@" <= text[i] <= "~"), None)


def _escape_complete(text: str) -> bool:
    """Whether the escape sequence at the start of text has all its characters yet."""
    if len(text) < 2:
        return False  # a lone ESC: the Escape key, or a sequence still in flight
    if text[1] == "O":
        return len(text) >= 3
    if text[1] == "[":
        return _csi_end(text) is not None
    return True


def _fileno(fd: int | TextIO) -> int:
    if isinstance(fd, int):
        return fd
    try:
        return fd.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation) as error:
        # pytest's captured stdin, a StringIO, a closed file: none of them is a terminal.
        raise NotATerminalError(f"keyboard control needs a terminal, but stdin is {fd!r}") from error
