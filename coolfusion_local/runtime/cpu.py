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
# broken here), "killed" (the child is killed by SIGKILL with them, as the kernel's
# OOM killer does: not the AMX kernels' fault) or "works" (the kernels are fine:
# the probe runs for real).
SIMULATE_AMX_VARIABLE = "COOLFUSION_SIMULATE_AMX"
SIMULATED_AMX = ("crash", "crash-always", "killed", "works")

# Intel AMX exists only on x86-64 (Sapphire Rapids and later Xeons); these are the
# names platform.machine() gives that architecture on Linux, Windows and the BSDs.
_X86_64 = {"x86_64", "amd64", "x64", "em64t"}


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset[str]
    flags_known: bool  # False where the OS does not list them (Windows, the BSDs)
    system: str = ""  # platform.system(): "Linux", "Darwin", "Windows", ...
    machine: str = ""  # platform.machine(): "x86_64", "AMD64", "arm64", "aarch64", ...

    @property
    def has_amx(self) -> bool:
        """Intel AMX (Sapphire Rapids and later Xeons): llama.cpp's AMX buffer type is used."""
        return any(flag.startswith("amx") for flag in self.flags)

    def why_no_amx(self) -> str | None:
        """Why llama.cpp's AMX kernels can never run here, or None where they may."""
        if self.has_amx:
            return None
        if self.system == "Darwin":
            # No Mac has an AMX CPU: Apple Silicon is arm64, and the last Intel Macs predate Sapphire Rapids.
            return "macOS has no Intel AMX, so llama.cpp's AMX kernels are never used"
        if self.machine and self.machine.lower() not in _X86_64:
            return f"this CPU is {self.machine}, not x86-64, so llama.cpp's AMX kernels are never used"
        if self.flags_known:
            return "this CPU has no AMX, so llama.cpp's AMX kernels are never used"
        return None  # an x86-64 CPU whose flags this OS does not list (Windows): probed


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
    system, machine = platform.system(), platform.machine()
    read = _read_cpuinfo("/proc/cpuinfo") if system == "Linux" else None
    if read is None:
        cpu = Cpu(platform.processor() or machine, frozenset(), False, system, machine)
    else:
        model, flags = read
        cpu = Cpu(model or machine, flags, True, system, machine)
    if simulated_amx():
        cpu = Cpu(f"{cpu.model} (simulated AMX: {simulated_amx()})", cpu.flags | {"amx_int8", "amx_tile"}, True,
                  "Linux", "x86_64")
    return cpu
