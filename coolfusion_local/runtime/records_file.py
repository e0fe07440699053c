"""A small JSON file of records by key, in the cache folder, that bad content can never break.

Both runtime caches (the extra-buffer verdicts, the exact batch sizes) are one
JSON object mapping a key to a record. Whatever is found in the file, a
damaged, truncated, hand-edited, deeply nested, binary or huge one, reads as
"no records": what was kept is measured again and the file rewritten. Writes go
through `files.replace_text` (a temporary file renamed over the old one), so a
reader never sees half a file; two processes writing at once lose one record,
never the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import replace_text

MAX_BYTES = 1 << 20  # far above what either cache holds; anything bigger is not ours


def read_records(path: Path) -> dict[str, dict]:
    """The file's records (only the entries whose value is a JSON object); {} where it cannot be read."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return {}
        stored = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError, TypeError, MemoryError):
        # ValueError covers bad JSON and UnicodeDecodeError; RecursionError a deeply nested file.
        return {}
    if not isinstance(stored, dict):
        return {}
    return {key: value for key, value in stored.items() if isinstance(value, dict)}


def write_records(path: Path, records: dict[str, dict], *, keep: int) -> None:
    """Replace the file with `records`, the `keep` most recently added ones; a read-only cache is left alone."""
    kept = dict(list(records.items())[-keep:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, json.dumps(kept, indent=1))
    except OSError:
        pass  # a read-only or full cache: it is measured again next time, nothing else is lost
