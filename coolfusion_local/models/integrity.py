"""Is a model file the one we expect? sha256 once, then a stamp.

Hashing a 500 MB model takes seconds; doing it on every start would make the
chat slow to open. After a file has been hashed and found intact we write a
small stamp (its size and modification time); while both are unchanged the
file is taken as verified without reading it again.

A stamp is a shortcut, never a condition: when it cannot be written (a
read-only or full cache) the model is used all the same, hashed again next
time, and the user is told once per run (`take_warnings`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .. import locations

# progress(label, bytes_done, bytes_total or None): how long work on a file is going.
Progress = Callable[[str, int, int | None], None]

_BLOCK = 4 * 1024 * 1024
_warnings: list[str] = []
_warned: set[str] = set()


def take_warnings() -> list[str]:
    """One-line warnings not shown yet (stamps that could not be written), each given once per run."""
    taken = list(_warnings)
    _warnings.clear()
    return taken


def sha256_of(path: Path, progress: Progress | None = None, label: str = "") -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(label or f"verifying {path.name}", done, total)
    return digest.hexdigest()


def _stamp_file(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return locations.verification_dir() / f"{key}.json"


def _fingerprint(path: Path) -> dict:
    info = path.resolve().stat()
    return {"path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def is_verified(path: Path, sha256: str) -> bool:
    """True when `path` was hashed to `sha256` and has not changed since."""
    try:
        stamp = json.loads(_stamp_file(path).read_text())
        return stamp == {**_fingerprint(path), "sha256": sha256}
    except (OSError, ValueError):
        return False


def record_verified(path: Path, sha256: str) -> bool:
    """Stamp `path` as hashed to `sha256`; False (and a warning, once) if the stamp cannot be written."""
    stamp_file = _stamp_file(path)
    temp_name = None
    try:
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        # Written atomically: a half-written stamp must never vouch for a file.
        handle, temp_name = tempfile.mkstemp(dir=stamp_file.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            json.dump({**_fingerprint(path), "sha256": sha256}, stream)
        os.replace(temp_name, stamp_file)
        return True
    except OSError as error:
        if temp_name is not None:
            Path(temp_name).unlink(missing_ok=True)
        where = str(stamp_file.parent)
        if where not in _warned:
            _warned.add(where)
            _warnings.append(
                f"cannot record verified models in {where} ({error.strerror or error}): "
                "they are used, but hashed again on every start"
            )
        return False


def forget(path: Path) -> None:
    try:
        _stamp_file(path).unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass  # no stamp (or no stamps folder): nothing vouches for the file


def verify_file(path: Path, *, sha256: str, size: int | None, progress: Progress | None = None,
                label: str = "") -> str | None:
    """None when `path` has the expected size and sha256 (stamped for next time);
    otherwise a short description of the mismatch."""
    if is_verified(path, sha256):
        return None
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size:,} B instead of {size:,} B"
    actual = sha256_of(path, progress, label)
    if actual != sha256:
        return f"sha256 {actual[:12]}… instead of {sha256[:12]}…"
    record_verified(path, sha256)
    return None
