"""The set's key rule (--key, --key-mode): which loops may launch, and what auto learns."""

import pytest

from livegen.engine.setkey import SetKey
from livegen.loops.key import parse_key


def test_pick_lets_only_keys_that_mix_launch():
    rule = SetKey.from_setting("Am", "pick")
    assert rule.key == parse_key("8A")
    assert [rule.fits(code) for code in ("8A", "7A", "9A", "8B", None)] == [True] * 5  # no key mixes with all
    assert [rule.fits(code) for code in ("10A", "9B", "3A", "1B")] == [False] * 4
    assert rule.shift_target() is None  # pick moves nothing


def test_shift_asks_the_worker_for_the_set_key_and_off_keeps_none():
    assert SetKey.from_setting("8A", "shift").shift_target() == "8A"
    off = SetKey.from_setting("8A", "off")
    assert off.fits("3A") and off.shift_target() is None
    assert SetKey.from_setting(None, "shift").fits("3A")  # --key off
    assert SetKey.from_setting("off", "pick").describe()["mode"] == "off"


def test_a_key_conditioned_model_is_asked_for_the_set_key_while_it_is_kept():
    kept = SetKey.from_setting("Am", "pick")
    assert kept.asked_key() == "8A"
    assert SetKey.from_setting("Am", "shift").asked_key() == "8A"
    assert SetKey.from_setting("auto", "pick").asked_key() is None  # no key yet: any key
    kept.toggle_lock()
    assert kept.asked_key() is None  # lock off: keys shown, none asked for
    kept.toggle_lock()
    kept.step(2)
    assert kept.asked_key() == "10A"  # B minor, after key up twice


def test_auto_takes_the_first_key_it_hears_and_keeps_it():
    rule = SetKey.from_setting("auto", "shift")
    assert rule.fits("3A") and rule.shift_target() is None  # nothing to keep to yet
    assert not rule.learn(None)  # a loop with no key sets nothing
    assert rule.learn("3A") and rule.key == parse_key("3A")
    assert not rule.learn("8A") and rule.key == parse_key("3A")
    assert not rule.fits("8A") and rule.shift_target() == "3A"
    assert rule.describe() == {"key": "3A", "label": "3A Bbm", "mode": "shift", "auto": True}


def test_a_bad_key_or_mode_is_named():
    with pytest.raises(ValueError, match="H minor"):
        SetKey.from_setting("H minor")
    with pytest.raises(ValueError, match="lock"):
        SetKey.from_setting("8A", "lock")


def test_key_steps_lock_and_mode_as_the_actions_ask():
    rule = SetKey.from_setting("8A", "pick")
    assert rule.step(1) and rule.key == parse_key("3A")  # A minor -> Bb minor
    assert rule.step(-2) and rule.key == parse_key("1A")  # -> G# minor
    rule.toggle_lock()
    assert rule.mode == "off" and rule.fits("10A")
    rule.next_mode()  # while unlocked: chooses what the lock turns back on
    assert rule.mode == "off" and rule.locked_mode == "shift"
    rule.toggle_lock()
    assert rule.mode == "shift" and rule.key == parse_key("1A")
    rule.next_mode("off")
    assert rule.mode == "off"
    rule.choose("Em")
    assert rule.mode == "shift" and rule.key == parse_key("9A") and not rule.auto
    none_yet = SetKey.from_setting(None)
    assert not none_yet.step(1)  # no key to move
    none_yet.toggle_lock()
    assert none_yet.mode == "pick" and none_yet.auto  # on, listening for the first key
