"""The engine's published state: one immutable value that any thread may read and none may change."""

import json

import pytest

from livegen.engine.snapshot import Snapshot

STATE = {"bar": 3, "playing": {"id": 7, "genre": "techno", "loudness": -18.0}, "errors": ["late"],
         "buffer": {"techno": 2}}


def test_reads_like_the_dict_it_was_built_from():
    snapshot = Snapshot(STATE)
    assert snapshot["playing"]["genre"] == "techno" and snapshot.get("nothing") is None
    assert dict(snapshot["buffer"]) == {"techno": 2} and list(snapshot["errors"]) == ["late"]
    assert set(snapshot) == set(STATE) and len(snapshot) == len(STATE)
    assert json.loads(snapshot.to_json()) == STATE


def test_no_reader_can_change_it_and_later_changes_to_its_source_do_not_reach_it():
    source = json.loads(json.dumps(STATE))
    snapshot = Snapshot(source)
    with pytest.raises(TypeError):
        snapshot["bar"] = 4
    with pytest.raises(TypeError):
        snapshot["playing"]["genre"] = "house"
    with pytest.raises(AttributeError):
        snapshot["errors"].append("another")
    source["playing"]["genre"] = "house"
    assert snapshot["playing"]["genre"] == "techno"
    kept = snapshot.plain()  # a copy of its own, to keep or change
    kept["playing"]["genre"] = "breaks"
    assert snapshot["playing"]["genre"] == "techno"
