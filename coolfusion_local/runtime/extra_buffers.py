"""Whether llama.cpp may use its extra CPU buffer types (AMX, weight repacking) here.

On a CPU that reports Intel AMX, llama.cpp puts quantized weights in its AMX
buffer type, and on some such machines and VMs the AMX matmul kernel dies with
a general protection fault at the first decode (llama.cpp #20824), taking the
whole process with it. Turning the extra buffer types off
(`llama_model_params.use_extra_bufts = false`) avoids it, but also turns off
weight repacking, which speeds some quant types up on AVX2/AVX-512 CPUs, so
it is not switched off everywhere:

* a CPU without AMX keeps them (nothing there can reach the faulting kernel);
* a CPU with AMX is probed once: a child process loads a model with them and
  decodes; a child killed by a signal means "off", if a second child without
  them survives. The verdict is kept in the cache folder per llama.cpp build and
  CPU, and probed again when either changes.
* if the second child dies too, llama.cpp crashes here whatever this setting
  says (seen: a libstdc++ clash in llama.cpp's tokenizer regex): no model is
  loaded in the user's process, and the user reads why (`LlamaCrashes`).

`[runtime] cpu_extra_buffers = "auto" | true | false` in models.toml and the
COOLFUSION_CPU_EXTRA_BUFFERS variable (which wins) override the probe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import locations
from ..errors import ConfigError, CoolfusionError
from ..files import replace_text
from .cpu import this_cpu
from .machine_key import build_and_cpu_key

VARIABLE = "COOLFUSION_CPU_EXTRA_BUFFERS"
UPSTREAM_ISSUE = "llama.cpp #20824"
PROBE_TIMEOUT_S = 120.0
_CACHE_FILE = "cpu-extra-buffers.json"

_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}


@dataclass(frozen=True)
class ExtraBuffers:
    """The decision, and the reason a user reads for it."""

    enabled: bool
    reason: str
    probed: bool = False  # a child process was started for it in this process
    crashes: bool = False  # llama.cpp died in the probe even without them: loading here would too

    def describe(self) -> str:
        return f"{'on' if self.enabled else 'off'} ({self.reason})"


class LlamaCrashes(CoolfusionError):
    """llama.cpp died in a child process on this machine even without the extra buffer types."""


def check_loadable(decision: ExtraBuffers) -> None:
    """Refuse, in one line, to load a model in this process where llama.cpp would crash it."""
    if decision.crashes:
        raise LlamaCrashes(decision.reason)


def parse_setting(value: object, where: str) -> str | bool:
    """"auto", True or False from a models.toml value or an environment string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "auto":
            return "auto"
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ConfigError(f"{where}: cpu_extra_buffers must be \"auto\", true or false, not {value!r}")


_memo: dict[str, ExtraBuffers] = {}  # the probe's verdict per build-and-CPU key, for this process
_memo_lock = threading.Lock()


def decide(setting: str | bool = "auto", *, probe_model: Path | None = None, set_in: str = "models.toml") -> ExtraBuffers:
    """Whether to load models with llama.cpp's extra CPU buffer types.

    `probe_model` is a GGUF file the probe may load (the smallest model about
    to be loaded keeps it under a couple of seconds); without one a CPU with
    AMX runs without them until a probe can be made.
    """
    variable = os.environ.get(VARIABLE, "").strip()
    if variable:
        forced = parse_setting(variable, VARIABLE)
        if forced != "auto":
            return ExtraBuffers(bool(forced), f"set by {VARIABLE}={variable}")
    elif setting != "auto":
        return ExtraBuffers(bool(setting), f"set by cpu_extra_buffers in {set_in}")
    cpu = this_cpu()
    if cpu.flags_known and not cpu.has_amx:
        return ExtraBuffers(True, "this CPU has no AMX, so llama.cpp's AMX kernels are never used")
    key = build_and_cpu_key(cpu)
    with _memo_lock:
        known = _memo.get(key) or _read_cached(key)
        if known is not None:
            _memo[key] = known
            return known
        if probe_model is None:
            return ExtraBuffers(False, "this CPU has AMX and has not been probed yet; running without llama.cpp's "
                                       "extra buffer types until a model can be probed")
        verdict, keep = _probe(Path(probe_model))
        if keep:
            _write_cached(key, verdict)
        _memo[key] = verdict  # an unkept verdict holds for this process: one probe per start
        return verdict


def cache_file() -> Path:
    return locations.cache_dir() / "runtime" / _CACHE_FILE


def forget() -> None:
    """Drop this process's memory of the verdict (the cache file stays)."""
    with _memo_lock:
        _memo.clear()


# ------------------------------------------------------------------ the probe

def _probe(model: Path) -> tuple[ExtraBuffers, bool]:
    """Run the probe child on `model`; the verdict and whether it may be kept."""
    started = time.perf_counter()
    child = _run_child(model)
    if isinstance(child, str):
        return ExtraBuffers(False, f"{child}; running without llama.cpp's extra buffer types this time",
                            probed=True), False
    seconds = time.perf_counter() - started
    if child.returncode < 0:
        name = _signal_name(-child.returncode)
        control = _run_child(model, "--without-extra-buffers")
        if isinstance(control, subprocess.CompletedProcess) and control.returncode < 0:
            return ExtraBuffers(False, f"llama.cpp crashed ({_signal_name(-control.returncode)}) loading and running "
                                       f"{model.name} in a test process, with and without its extra CPU buffer types, "
                                       "so no model is loaded here; reinstall llama-cpp-python for this machine "
                                       "(see docs/models.md#when-llamacpp-crashes)", probed=True, crashes=True), False
        return ExtraBuffers(False, f"llama.cpp's AMX kernels crash on this CPU ({UPSTREAM_ISSUE}; the probe died "
                                   f"of {name}); running without them", probed=True), True
    if child.returncode == 0 and child.stdout.strip().endswith(b"ok"):
        return ExtraBuffers(True, f"this CPU has AMX and llama.cpp's AMX kernels passed the probe "
                                  f"({seconds:.1f} s, once per CPU and llama.cpp build)", probed=True), True
    last = (child.stderr or child.stdout).decode("utf-8", "replace").strip().splitlines()
    why = last[-1][:200] if last else f"exit code {child.returncode}"
    return ExtraBuffers(False, f"the AMX probe could not run ({why}); running without llama.cpp's extra "
                               "buffer types this time", probed=True), False


def _run_child(model: Path, *flags: str) -> subprocess.CompletedProcess | str:
    """The probe child's outcome, or why it could not be had."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "coolfusion_local.runtime.probe_child", str(model), *flags],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"the AMX probe did not finish in {PROBE_TIMEOUT_S:.0f} s"
    except OSError as error:
        return f"the AMX probe could not start ({error})"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ------------------------------------------------------------------ the cache

def _read_cached(key: str) -> ExtraBuffers | None:
    try:
        stored = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    if not isinstance(stored.get("enabled"), bool) or not isinstance(stored.get("reason"), str):
        return None
    return ExtraBuffers(stored["enabled"], stored["reason"])


def _write_cached(key: str, verdict: ExtraBuffers) -> None:
    path = cache_file()
    record = {"key": key, "enabled": verdict.enabled, "reason": verdict.reason,
              "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, json.dumps(record, indent=1))
    except OSError:
        pass  # a read-only cache: the probe runs again next time, nothing else is lost
