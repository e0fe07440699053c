"""A key for "this llama.cpp build on this CPU": verdicts measured here hold until either changes."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from .cpu import Cpu


def build_and_cpu_key(cpu: Cpu) -> str:
    """Changes when llama.cpp is rebuilt or upgraded, or the CPU is another."""
    return _key(cpu.model, tuple(sorted(cpu.flags)))


@lru_cache(maxsize=4)
def _key(cpu_model: str, flags: tuple[str, ...]) -> str:
    import llama_cpp  # deliberately lazy: reading models.toml's [runtime] must not load llama.cpp

    library = Path(llama_cpp.__file__).parent / "lib"
    files = []
    if library.is_dir():
        for path in sorted(library.glob("*ggml*")):
            stat = path.stat()
            files.append([path.name, stat.st_size, stat.st_mtime_ns])
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    identity = [llama_cpp.__version__, system_info, files, cpu_model, list(flags)]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
