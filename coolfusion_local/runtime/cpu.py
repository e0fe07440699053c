"""What this CPU is, as far as llama.cpp's kernel choices care."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# Tests and support staff can make any machine look like a CPU with AMX:
# "crash" (the probe child dies by SIGSEGV with the extra buffer types, as on the
# affected Xeons), "crash-always" (it dies without them too: llama.cpp itself is
# broken here) or "works" (the kernels are fine: the probe runs for real).
SIMULATE_AMX_VARIABLE = "COOLFUSION_SIMULATE_AMX"
SIMULATED_AMX = ("crash", "crash-always", "works")


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset[str]
    flags_known: bool  # False where the OS does not list them (macOS, Windows)

    @property
    def has_amx(self) -> bool:
        """Intel AMX (Sapphire Rapids and later Xeons): llama.cpp's AMX buffer type is used."""
        return any(flag.startswith("amx") for flag in self.flags)


def simulated_amx() -> str | None:
    value = os.environ.get(SIMULATE_AMX_VARIABLE, "").strip().lower()
    return value if value in SIMULATED_AMX else None


@functools.cache
def _read_cpuinfo(path: str) -> tuple[str, frozenset[str]] | None:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def this_cpu() -> Cpu:
    read = _read_cpuinfo("/proc/cpuinfo")
    if read is None:
        cpu = Cpu(platform.processor() or platform.machine(), frozenset(), flags_known=False)
    else:
        model, flags = read
        cpu = Cpu(model or platform.machine(), flags, flags_known=True)
    if simulated_amx():
        cpu = Cpu(f"{cpu.model} (simulated AMX: {simulated_amx()})", cpu.flags | {"amx_int8", "amx_tile"}, True)
    return cpu
