"""Probe children: how one is run, and what its exit status says (a crash in native code, or not).

Only the ways a faulting kernel ends a process count as a crash:

* POSIX: killed by SIGSEGV, SIGILL, SIGBUS or SIGABRT (subprocess gives -N).
  SIGKILL is what the kernel's OOM killer and a user's `kill -9` send, SIGTERM
  and SIGINT a shutdown: none of them says anything about the kernels.
* Windows: there is no signal; a process ended by an unhandled exception
  exits with the exception's NTSTATUS code (0xC0000005 for an access
  violation). subprocess gives it unsigned (3221225477); some wrappers pass
  it on as a signed 32-bit number (-1073741819): both are read.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Sequence

CRASH_SIGNALS = {
    number: name
    for name in ("SIGSEGV", "SIGILL", "SIGBUS", "SIGABRT")
    if (number := getattr(signal, name, None)) is not None
}

# NTSTATUS codes of a process killed by a fault in its own code (winnt.h / ntstatus.h).
WINDOWS_CRASHES = {
    0xC0000005: "an access violation (0xC0000005)",
    0xC000001D: "an illegal instruction (0xC000001D)",
    0xC0000096: "a privileged instruction (0xC0000096)",
    0xC0000006: "an in-page error (0xC0000006)",
    0xC00000FD: "a stack overflow (0xC00000FD)",
    0xC0000409: "a fail-fast abort (0xC0000409)",  # abort() and __fastfail in MSVC's runtime
    0xC0000374: "heap corruption (0xC0000374)",
    0xC0000094: "an integer division by zero (0xC0000094)",
    0x80000003: "a breakpoint trap (0x80000003)",  # __debugbreak, as some asserts end
}


def crash_name(returncode: int) -> str | None:
    """How native code crashed the child ("SIGSEGV", "an access violation (0xC0000005)"), or None
    where its exit status is not a crash: a clean exit, an error code, or a kill from outside."""
    if -64 < returncode < 0:  # POSIX: killed by signal -returncode
        return CRASH_SIGNALS.get(-returncode)
    return WINDOWS_CRASHES.get(returncode & 0xFFFFFFFF) if returncode < -64 or returncode > 255 else None


def describe(returncode: int) -> str:
    """The exit status in words, for a reason a user reads."""
    if -64 < returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    named = crash_name(returncode)
    if named:
        return f"ended by {named}"
    return f"exit code {returncode}"


@dataclass(frozen=True)
class NotRun:
    """A probe child that gave no exit status, and why."""

    why: str  # "did not finish in 120 s", "could not start (...)"
    timed_out: bool


def run_probe_child(module: str, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess | NotRun:
    """`python -m MODULE ARGS...` with no stdin and its output captured: how it ended, or why it did not."""
    try:
        return subprocess.run([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return NotRun(f"did not finish in {timeout:.0f} s", timed_out=True)
    except OSError as error:
        return NotRun(f"could not start ({error})", timed_out=False)
