"""Reading the small JSON files of model dirs and configs, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_object(path: Path, error: type[Exception] = ValueError, missing: str = "missing") -> dict:
    """The JSON object in ``path``; any problem raises ``error`` starting with the path."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object")
    return data
