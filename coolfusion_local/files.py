"""Writing files so that a crash, a kill or another user never sees half of one.

- `replace_file`: the new content goes to a temporary file beside the target,
  is flushed to disk, then renamed over it: a reader (or the next start after a
  power cut) finds the old file or the new one, never a mix.
- `private=True`: the file is created readable by its owner only (0600), for
  what holds a person's conversations (history, exports). Otherwise the usual
  0666 less the umask, as any program's files.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def replace_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Make `path` hold exactly `data`, atomically (see the module docstring)."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with a mode applies the umask like any open(); O_EXCL: never follow a planted link.
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE if private else 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def replace_text(path: Path, text: str, *, private: bool = False) -> None:
    replace_file(path, text.encode("utf-8"), private=private)


def make_private_folder(folder: Path) -> None:
    """Create `folder` (and its parents) with the folder itself 0700; an existing one is left as it is."""
    folder = Path(folder)
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=PRIVATE_FOLDER)
    except FileExistsError:
        return  # made meanwhile by another process
    os.chmod(folder, PRIVATE_FOLDER)  # mkdir's mode passes through the umask; say it exactly
