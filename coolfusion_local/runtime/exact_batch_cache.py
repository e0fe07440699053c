"""Each model's exact batch size on this machine, measured once and kept across processes.

`SourceModel.exact_batch_size()` decodes a few tokens one by one and then
in batches to find the largest batch whose logits equal one-token logits
bit for bit (about a second for a 0.5B model on a laptop CPU). The answer
depends on the llama.cpp build, the CPU, the model file and how it is loaded
(extra buffer types, threads, GPU layers, micro-batch), never on the
conversation; so it is measured the first time drafting needs it and read
from the cache folder after that, instead of costing every `generate` and
the first answer of every chat.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .. import locations
from .cpu import this_cpu
from .machine_key import build_and_cpu_key
from .records_file import read_records, write_records

_CACHE_FILE = "exact-batch.json"
PROBED_UP_TO = 8  # the largest batch the measurement tries (a model that passes it reports "8 or more")
KEPT_ENTRIES = 64  # oldest dropped past this: models come and go


def cache_file() -> Path:
    return locations.cache_dir() / "runtime" / _CACHE_FILE


def model_key(path: Path, **loaded_as: object) -> str | None:
    """What the probe's answer depends on; None where the model file cannot be read."""
    try:
        stat = Path(path).stat()
        where = str(Path(path).resolve())
    except OSError:
        return None
    identity = [build_and_cpu_key(this_cpu()), where, stat.st_size, stat.st_mtime_ns, sorted(loaded_as.items())]
    return hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:32]


def recall(key: str | None, *, largest: int) -> int | None:
    """The kept size, or None (measure it) where there is none or it is not one the probe can give:
    a whole number from 1 to `largest`, the probe's largest batch. A hand-edited or damaged 40
    would make drafting check 40 tokens in one decode, whose rows are not exact."""
    if key is None:
        return None
    size = read_records(cache_file()).get(key, {}).get("size")
    if isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= largest:
        return size
    return None


def remember(key: str | None, size: int, model: str) -> None:
    if key is None:
        return
    entries = read_records(cache_file())
    entries.pop(key, None)
    entries[key] = {"size": size, "model": model, "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_records(cache_file(), entries, keep=KEPT_ENTRIES)
