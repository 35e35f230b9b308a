"""The keyboard: the key map as data, and keys read from a real pseudo-terminal."""

import os
import termios

import pytest

from livegen.control.keyboard import KEY_HELP, KEYMAP
from livegen.ui.keys import KeyReader, NotATerminalError


@pytest.fixture()
def pty():
    """(master, slave): what is written to master reaches a reader of slave as typed keys."""
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def test_keymap_mirrors_the_controller_actions():
    assert KEYMAP["space"] == KEYMAP["enter"] == ("trigger", None)
    assert [KEYMAP[str(n)] for n in range(1, 10)] == [("trigger", index) for index in range(9)]
    assert KEYMAP["["] == ("filter_step", -0.1) and KEYMAP["]"] == ("filter_step", 0.1)
    assert KEYMAP[","] == ("volume_step", -0.05) and KEYMAP["."] == ("volume_step", 0.05)
    assert KEYMAP["up"] == ("bpm_up", None) and KEYMAP["down"] == ("bpm_down", None)
    assert KEYMAP["left"] == ("nudge", -10.0) and KEYMAP["right"] == ("nudge", 10.0)
    assert KEYMAP["Q"] == ("quit", None) and KEYMAP["q"] == ("quantise", None)
    assert KEYMAP["l"] == ("learn", None) and KEYMAP["b"] == ("bars", None)
    for key, (action, _value) in KEYMAP.items():
        assert isinstance(action, str) and (len(key) == 1 or key in {"space", "enter", "up", "down", "left", "right"})


def test_every_key_goes_through_the_action_table():
    from livegen.control import ACTIONS

    own = {"learn", "quit"}  # the keyboard's own: learning a MIDI binding, ending the set
    assert {action for action, _value in KEYMAP.values()} - own <= ACTIONS


def test_help_names_every_action_on_one_line():
    assert "\n" not in KEY_HELP
    assert "1-9 genre" in KEY_HELP and "+/- steps" in KEY_HELP and "↑/↓ bpm" in KEY_HELP and "Q quit" in KEY_HELP
    assert "j/k key" in KEY_HELP and "K key lock" in KEY_HELP and "J key mode" in KEY_HELP
    for action in {"quantise", "bars", "sampler", "variation", "continuation", "morph", "tap", "record", "save", "cue",
                   "auto", "learn", "filter", "volume", "trigger", "nudge"}:
        assert action in KEY_HELP


def test_reads_single_keys_and_arrows(pty):
    master, slave = pty
    with KeyReader(slave) as keys:
        assert keys.read(0.0) is None  # nothing typed: no wait, no key
        os.write(master, b"a1 \x1b[A\x1b[Bq\r\x1b[D\x1b[CQ")
        typed = [keys.read(1.0) for _ in range(10)]
        assert typed == ["a", "1", "space", "up", "down", "q", "enter", "left", "right", "Q"]
        assert keys.read(0.05) is None


def test_escape_sequences_split_or_unknown(pty):
    master, slave = pty
    with KeyReader(slave) as keys:
        os.write(master, b"\x1b")  # an arrow whose bytes arrive apart
        os.write(master, b"[A")
        assert keys.read(1.0) == "up"
        os.write(master, b"\x1b[1;5Ax")  # Ctrl+Up: not ours, skipped whole, not read as ";", "5"
        assert keys.read(1.0) is None and keys.read(1.0) == "x"
        os.write(master, b"\x1b")  # the Escape key itself
        assert keys.read(1.0) == "escape"


def test_terminal_is_restored(pty):
    master, slave = pty
    before = termios.tcgetattr(slave)
    with KeyReader(slave):
        during = termios.tcgetattr(slave)
        assert not during[3] & (termios.ICANON | termios.ECHO)  # keys come one by one, not echoed
    assert termios.tcgetattr(slave) == before

    with pytest.raises(RuntimeError, match="boom"), KeyReader(slave):
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before


def test_refuses_what_is_not_a_terminal(tmp_path):
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(NotATerminalError, match="not a TTY"):
            KeyReader(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    with open(tmp_path / "keys.txt", "w") as file, pytest.raises(NotATerminalError):
        KeyReader(file)
