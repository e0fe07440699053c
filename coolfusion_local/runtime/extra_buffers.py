"""Whether llama.cpp may use its extra CPU buffer types (AMX, weight repacking) here.

On a CPU that reports Intel AMX, llama.cpp puts quantized weights in its AMX
buffer type, and on some such machines and VMs the AMX matmul kernel dies with
a general protection fault at the first decode (llama.cpp #20824), taking the
whole process with it. Turning the extra buffer types off
(`llama_model_params.use_extra_bufts = false`) avoids it, but also turns off
weight repacking, which speeds some quant types up on AVX2/AVX-512 CPUs, so
it is not switched off everywhere:

* a CPU without AMX keeps them (nothing there can reach the faulting kernel),
  and so does every Mac and every CPU that is not x86-64 (`cpu.Cpu.why_no_amx`);
* a CPU with AMX is probed once: a child process loads the smallest local model
  with them and decodes; a child that crashes (SIGSEGV, SIGILL, SIGBUS, SIGABRT,
  or a Windows exception code: `child_exit`) means "off", if a second child
  without them prints "ok". The verdict is kept in the cache folder per
  llama.cpp build and CPU (several builds on one host each keep their own), and
  probed again when either changes. A probe that did not finish is kept for a
  day; one that could not tell (the child was killed from outside, could not
  load the model, the second child failed otherwise) is not kept;
* where every layer of every local model is offloaded to a GPU, nothing runs on
  the CPU's kernels: the probe is skipped and they stay off, which costs nothing;
* if the second child crashes too, llama.cpp crashes here whatever this setting
  says (seen: a libstdc++ clash in llama.cpp's tokenizer regex): no model is
  loaded in the user's process, and the user reads why (`LlamaCrashes`).

`[runtime] cpu_extra_buffers = "auto" | true | false` in models.toml and the
COOLFUSION_CPU_EXTRA_BUFFERS variable (which wins) override the probe.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

from .. import locations
from ..errors import ConfigError, CoolfusionError
from . import child_exit
from .cpu import this_cpu
from .machine_key import build_and_cpu_key
from .records_file import read_records, write_records

VARIABLE = "COOLFUSION_CPU_EXTRA_BUFFERS"
UPSTREAM_ISSUE = "llama.cpp #20824"
PROBE_TIMEOUT_S = 120.0
# A probe that did not finish is not tried at every start (each would wait again), but
# it is tried again after this long: the machine may only have been busy.
TIMEOUT_KEPT_S = 24 * 3600.0
KEPT_VERDICTS = 16  # llama.cpp builds and CPUs this host has seen (pipx, venvs, CPU and GPU builds)
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


@dataclass(frozen=True)
class LocalModel:
    """A model this process may load with llama.cpp, as the probe sees it (`models.probe_candidates`)."""

    name: str
    path: Path | None  # its GGUF file where it is on disk and checked; None until it is
    all_on_gpu: bool  # every layer offloaded to a GPU: nothing of it runs on the CPU's kernels


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


# The local models, or a function giving them when first needed (`models.probe_candidates.local_models`).
LocalModels = Union[Sequence[LocalModel], Callable[[], Sequence[LocalModel]], None]

_memo: dict[str, ExtraBuffers] = {}  # the probe's verdict per build-and-CPU key, for this process
_memo_lock = threading.RLock()


def decide(setting: str | bool = "auto", *, probe_model: Path | None = None, set_in: str = "models.toml",
           local_models: LocalModels = None) -> ExtraBuffers:
    """Whether to load models with llama.cpp's extra CPU buffer types.

    `probe_model` is a GGUF file the probe may load; `local_models` every local
    model this process may load: the probe loads the smallest file among them
    (a couple of seconds, where the first one listed may take minutes on the
    CPU), and is skipped where all of them run wholly on a GPU. Without a file
    a CPU with AMX runs without them until a probe can be made.
    """
    with _memo_lock:
        settled, key = _settled(setting, set_in)
        if settled is not None:
            return settled
        local_models = _listed(local_models)
        skip = _all_on_gpu(local_models)
        if skip is not None:
            return skip  # not kept: it follows models.toml, not the CPU
        model = _smallest(probe_model, local_models)
        if model is None:
            return ExtraBuffers(False, "this CPU has AMX and has not been probed yet; running without llama.cpp's "
                                       "extra buffer types until a model can be probed")
        verdict, kept_for = _probe(model)
        if kept_for:
            _write_cached(key, verdict, kept_for)
        _memo[key] = verdict  # an unkept verdict holds for this process: one probe per start
        return verdict


def pending_probe(setting: str | bool = "auto", *, probe_model: Path | None = None,
                  local_models: LocalModels = None) -> str | None:
    """The line to show before `decide()` with the same arguments, where it will start a probe
    child (it may take a while); None where it will answer at once."""
    try:
        with _memo_lock:
            settled, _ = _settled(setting, "models.toml")
            if settled is not None:
                return None
            local_models = _listed(local_models)
            if _all_on_gpu(local_models) is not None:
                return None
            model = _smallest(probe_model, local_models)
    except ConfigError:
        return None  # decide() says so, in one line
    if model is None:
        return None
    return (f"testing llama.cpp's AMX kernels on this CPU with {model.name} in a separate process first "
            f"(once per llama.cpp build and CPU; it gives up after {PROBE_TIMEOUT_S:.0f} s)")


def _settled(setting: str | bool, set_in: str) -> tuple[ExtraBuffers | None, str]:
    """The decision where no probe is needed (a setting, a CPU without AMX, a kept verdict), and the key."""
    variable = os.environ.get(VARIABLE, "").strip()
    if variable:
        forced = parse_setting(variable, VARIABLE)
        if forced != "auto":
            return ExtraBuffers(bool(forced), f"set by {VARIABLE}={variable}"), ""
    elif setting != "auto":
        return ExtraBuffers(bool(setting), f"set by cpu_extra_buffers in {set_in}"), ""
    cpu = this_cpu()
    no_amx = cpu.why_no_amx()
    if no_amx:
        return ExtraBuffers(True, no_amx), ""
    key = build_and_cpu_key(cpu)
    known = _memo.get(key) or _read_cached(key)
    if known is not None:
        _memo[key] = known
    return known, key


def _listed(local_models: LocalModels) -> Sequence[LocalModel]:
    return (local_models() if callable(local_models) else local_models) or ()


def _all_on_gpu(local_models: Sequence[LocalModel] | None) -> ExtraBuffers | None:
    if not local_models or not all(model.all_on_gpu for model in local_models):
        return None
    return ExtraBuffers(False, "every layer of every local model is offloaded to the GPU, so llama.cpp's CPU "
                               "kernels are not used and the AMX probe is skipped")


def _smallest(probe_model: Path | None, local_models: Sequence[LocalModel] | None) -> Path | None:
    """The smallest GGUF file the probe may load: it loads on the CPU, where a big one takes minutes."""
    files = [Path(probe_model)] if probe_model is not None else []
    files += [model.path for model in local_models or () if model.path is not None]
    sized = []
    for path in files:
        try:
            sized.append((path.stat().st_size, path))
        except OSError:
            continue
    return min(sized, key=lambda pair: pair[0])[1] if sized else (files[0] if files else None)


def cache_file() -> Path:
    return locations.cache_dir() / "runtime" / _CACHE_FILE


def forget() -> None:
    """Drop this process's memory of the verdict (the cache file stays)."""
    with _memo_lock:
        _memo.clear()


# ------------------------------------------------------------------ the probe

_OFF = "running without llama.cpp's extra buffer types this time"


def _probe(model: Path) -> tuple[ExtraBuffers, float | None]:
    """Run the probe child on `model`: the verdict, and for how long it may be kept (None: not
    kept; inf: until llama.cpp or the CPU changes)."""
    started = time.perf_counter()
    child = _run_child(model)
    if isinstance(child, _NoOutcome):
        return _no_outcome(child), child.kept_for
    seconds = time.perf_counter() - started
    if _passed(child):
        return ExtraBuffers(True, f"this CPU has AMX and llama.cpp's AMX kernels passed the probe "
                                  f"({seconds:.1f} s, once per CPU and llama.cpp build)", probed=True), float("inf")
    crash = child_exit.crash_name(child.returncode)
    if crash is None:  # killed from outside (SIGKILL: out of memory), or an error: says nothing of the kernels
        return ExtraBuffers(False, f"the AMX probe could not run ({_last_words(child)}); {_OFF}", probed=True), None
    control = _run_child(model, "--without-extra-buffers")
    if isinstance(control, _NoOutcome):
        if control.kept_for:
            return _no_outcome(control), control.kept_for
        return ExtraBuffers(False, f"the AMX probe could not tell (the test process crashed with {crash}, and "
                                   f"the second one, without them, {control.why}); {_OFF}", probed=True), None
    if _passed(control):
        return ExtraBuffers(False, f"llama.cpp's AMX kernels crash on this CPU ({UPSTREAM_ISSUE}; the probe died "
                                   f"of {crash}); running without them", probed=True), float("inf")
    control_crash = child_exit.crash_name(control.returncode)
    if control_crash is not None:
        return ExtraBuffers(False, f"llama.cpp crashed ({control_crash}) loading and running {model.name} in a test "
                                   "process, with and without its extra CPU buffer types, so no model is loaded "
                                   "here; reinstall llama-cpp-python for this machine "
                                   "(see docs/models.md#when-llamacpp-crashes)", probed=True, crashes=True), None
    return ExtraBuffers(False, f"the AMX probe could not tell (the test process crashed with {crash}, and the "
                               f"second one, without them, failed: {_last_words(control)}); {_OFF}",
                        probed=True), None


@dataclass(frozen=True)
class _NoOutcome:
    why: str  # "did not finish in 120 s", "could not start (...)"
    kept_for: float | None  # a timeout is kept for a while, a start failure not


def _no_outcome(outcome: _NoOutcome) -> ExtraBuffers:
    if outcome.kept_for:
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + outcome.kept_for))
        return ExtraBuffers(False, f"the AMX probe {outcome.why}; running without llama.cpp's extra buffer "
                                   f"types, and probing again after {until}", probed=True)
    return ExtraBuffers(False, f"the AMX probe {outcome.why}; {_OFF}", probed=True)


def _passed(child: subprocess.CompletedProcess) -> bool:
    return child.returncode == 0 and child.stdout.strip().endswith(b"ok")


def _last_words(child: subprocess.CompletedProcess) -> str:
    status = child_exit.describe(child.returncode)
    last = (child.stderr or b"").decode("utf-8", "replace").strip().splitlines()
    return f"{status}: {last[-1][:200]}" if last and child.returncode > 0 else status


def _run_child(model: Path, *flags: str) -> subprocess.CompletedProcess | _NoOutcome:
    """The probe child's outcome, or why there is none."""
    outcome = child_exit.run_probe_child("coolfusion_local.runtime.probe_child", [str(model), *flags],
                                         PROBE_TIMEOUT_S)
    if isinstance(outcome, child_exit.NotRun):
        return _NoOutcome(outcome.why, TIMEOUT_KEPT_S if outcome.timed_out else None)
    return outcome


# ------------------------------------------------------------------ the cache

def _read_cached(key: str) -> ExtraBuffers | None:
    record = read_records(cache_file()).get(key)
    if record is None:
        return None
    enabled, reason, expires = record.get("enabled"), record.get("reason"), record.get("expires")
    if not isinstance(enabled, bool) or not isinstance(reason, str):
        return None
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, (int, float)) or time.time() >= expires:
            return None  # a timeout's verdict, run out: probe again
    return ExtraBuffers(enabled, reason)


def _write_cached(key: str, verdict: ExtraBuffers, kept_for: float) -> None:
    records = read_records(cache_file())
    records.pop(key, None)
    records[key] = {"enabled": verdict.enabled, "reason": verdict.reason,
                    "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if kept_for != float("inf"):
        records[key]["expires"] = time.time() + kept_for
    write_records(cache_file(), records, keep=KEPT_VERDICTS)
