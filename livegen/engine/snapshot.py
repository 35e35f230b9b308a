"""The engine's state as one immutable value: what the dashboard, the LEDs, the status file, the CLI
and the tests read.

The control thread builds a new ``Snapshot`` at the end of every round and replaces the published
one whole, so a reader in any thread gets one consistent moment (the playing loop, the buffers and
the grid position agree) and cannot change what another reader sees. Its content is plain data
(the status file writes it as one JSON line): nested mappings are read-only views, lists tuples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType


def _frozen(value):
    if isinstance(value, dict):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


class Snapshot(Mapping):
    """Read like the dict it was built from: ``snapshot["playing"]["genre"]``."""

    __slots__ = ("_plain", "_view")

    def __init__(self, data: dict):
        self._plain = json.dumps(data)  # also a copy: later changes to ``data`` do not reach it
        self._view = _frozen(json.loads(self._plain))

    def __getitem__(self, key: str):
        return self._view[key]

    def __iter__(self):
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def to_json(self) -> str:
        return self._plain

    def plain(self) -> dict:
        """A copy as ordinary dicts and lists, to keep or change."""
        return json.loads(self._plain)

    def __repr__(self) -> str:
        return f"Snapshot({self._plain})"
