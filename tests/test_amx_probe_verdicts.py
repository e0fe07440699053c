"""The AMX probe's verdicts: which outcomes count as a crash, what is kept and for how long, which
model is probed and when nothing is (issue 29 points 2, 3, 8, 9; issue 28 part 3).

Where a real child cannot show the case on this machine (a Windows exception code, a child that
hangs for two minutes, exit statuses of every kind) the probe child's outcome is made at the
process boundary: `subprocess.run` as `extra_buffers` calls it returns what the OS would report.
Nothing of llama.cpp is faked: cases that depend on it run the real probe child on a real model
(marked `models`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from coolfusion_local.fusion_engine import load_config
from coolfusion_local.runtime import cpu as cpu_module
from coolfusion_local.runtime import exact_batch_cache, extra_buffers
from coolfusion_local.runtime.extra_buffers import decide
from models_env import Home

OK = (0, b"ok\n")
TIMEOUT = "timeout"
NO_START = "no-start"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    home = Home(tmp_path)
    home.apply(monkeypatch)
    monkeypatch.delenv(extra_buffers.VARIABLE, raising=False)
    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "works")  # a CPU with AMX, as the probe sees one
    extra_buffers.forget()
    yield home
    extra_buffers.forget()


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "small.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


class Children:
    """The probe's children as the OS reports them: (exit status, stdout), TIMEOUT or NO_START."""

    def __init__(self, monkeypatch, first, control=OK):
        self.outcomes = {"first": first, "control": control}
        self.calls: list[tuple[str, str]] = []  # (which child, model file)
        monkeypatch.setattr(extra_buffers.subprocess, "run", self.run)

    def run(self, command, **kwargs):
        which = "control" if "--without-extra-buffers" in command else "first"
        self.calls.append((which, Path(command[3]).name))
        outcome = self.outcomes[which]
        if outcome == TIMEOUT:
            raise subprocess.TimeoutExpired(command, kwargs.get("timeout"))
        if outcome == NO_START:
            raise OSError(24, "Too many open files")
        returncode, stdout = outcome
        return subprocess.CompletedProcess(command, returncode, stdout, b"cannot load it\n" if returncode > 0 else b"")


def _stored() -> dict:
    return json.loads(extra_buffers.cache_file().read_text())


# --- point 3: only a crash of the kernels counts --------------------------------------------------

@pytest.mark.parametrize("number", [signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGABRT])
def test_a_crash_signal_with_a_control_that_passes_is_an_amx_crash_kept_for_good(home, monkeypatch, model_file,
                                                                                number):
    children = Children(monkeypatch, (-number, b""), OK)
    decision = decide(probe_model=model_file)
    assert not decision.enabled and not decision.crashes
    assert decision.reason == (f"llama.cpp's AMX kernels crash on this CPU (llama.cpp #20824; the probe died of "
                               f"{signal.Signals(number).name}); running without them")
    (record,) = _stored().values()
    assert record["reason"] == decision.reason and "expires" not in record
    assert [which for which, _ in children.calls] == ["first", "control"]


@pytest.mark.parametrize("first, control", [
    ((-signal.SIGKILL, b""), OK),  # the OOM killer
    ((-signal.SIGTERM, b""), OK),
    ((3, b""), OK),  # the model could not be loaded
    ((0, b""), OK),  # ended without "ok"
    ((-signal.SIGSEGV, b""), (3, b"")),  # the control could not load the model
    ((-signal.SIGSEGV, b""), (-signal.SIGKILL, b"")),  # the control was killed from outside
    ((-signal.SIGSEGV, b""), (0, b"")),
    ((-signal.SIGSEGV, b""), NO_START),
], ids=["sigkill", "sigterm", "exit-3", "no-ok", "control-exit-3", "control-sigkill", "control-no-ok",
        "control-no-start"])
def test_what_says_nothing_of_the_kernels_is_not_kept_as_an_amx_crash(home, monkeypatch, model_file, first, control):
    Children(monkeypatch, first, control)
    decision = decide(probe_model=model_file)
    assert not decision.enabled and not decision.crashes and decision.probed
    assert "AMX kernels crash" not in decision.reason, decision.reason
    assert decision.reason.endswith("running without llama.cpp's extra buffer types this time"), decision.reason
    assert not extra_buffers.cache_file().exists()  # the next start probes again


def test_a_control_that_times_out_is_kept_as_a_timeout_not_as_a_crash(home, monkeypatch, model_file):
    Children(monkeypatch, (-signal.SIGSEGV, b""), TIMEOUT)
    decision = decide(probe_model=model_file)
    assert not decision.enabled and "AMX kernels crash" not in decision.reason
    assert decision.reason.startswith("the AMX probe did not finish in 120 s; running without")
    (record,) = _stored().values()
    assert record["expires"] > time.time()


def test_a_sigkill_of_the_first_child_is_told_as_such(home, monkeypatch, model_file):
    Children(monkeypatch, (-signal.SIGKILL, b""))
    assert decide(probe_model=model_file).reason == (
        "the AMX probe could not run (killed by SIGKILL); running without llama.cpp's extra buffer types this time")


@pytest.mark.models
def test_a_real_child_killed_by_sigkill_is_not_an_amx_crash(home, monkeypatch, offline_model_path):
    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "killed")
    decision = decide(probe_model=offline_model_path("smollm2-135m"))
    assert decision.probed and not decision.enabled and not decision.crashes
    assert decision.reason.startswith("the AMX probe could not run (killed by SIGKILL)"), decision.reason
    assert not extra_buffers.cache_file().exists()


# --- point 8: the platforms --------------------------------------------------------------------------

def _platform(monkeypatch, system: str, machine: str) -> None:
    """This machine as `system` on `machine`: no /proc/cpuinfo, as on macOS and Windows."""
    monkeypatch.delenv(cpu_module.SIMULATE_AMX_VARIABLE, raising=False)
    monkeypatch.setattr(cpu_module.platform, "system", lambda: system)
    monkeypatch.setattr(cpu_module.platform, "machine", lambda: machine)
    monkeypatch.setattr(cpu_module.platform, "processor", lambda: machine)
    monkeypatch.setattr(cpu_module, "_read_cpuinfo", lambda path: None)


@pytest.mark.parametrize("system, machine, why", [
    ("Darwin", "arm64", "macOS has no Intel AMX, so llama.cpp's AMX kernels are never used"),
    ("Darwin", "x86_64", "macOS has no Intel AMX, so llama.cpp's AMX kernels are never used"),
    ("Windows", "ARM64", "this CPU is ARM64, not x86-64, so llama.cpp's AMX kernels are never used"),
    ("Linux", "aarch64", "this CPU is aarch64, not x86-64, so llama.cpp's AMX kernels are never used"),
])
def test_no_mac_and_no_cpu_but_x86_64_is_probed(home, monkeypatch, model_file, system, machine, why):
    _platform(monkeypatch, system, machine)
    children = Children(monkeypatch, OK)
    decision = decide(probe_model=model_file)
    assert (decision.enabled, decision.reason, decision.probed) == (True, why, False)
    assert children.calls == [] and not extra_buffers.cache_file().exists()


@pytest.mark.parametrize("status, named", [
    (0xC0000005, "an access violation (0xC0000005)"),
    (-1073741819, "an access violation (0xC0000005)"),  # the same, as a signed 32-bit number
    (0xC000001D, "an illegal instruction (0xC000001D)"),
    (-1073741795, "an illegal instruction (0xC000001D)"),
    (0xC0000409, "a fail-fast abort (0xC0000409)"),
])
def test_a_windows_exception_code_is_a_crash(home, monkeypatch, model_file, status, named):
    _platform(monkeypatch, "Windows", "AMD64")
    Children(monkeypatch, (status, b""), OK)
    decision = decide(probe_model=model_file)
    assert decision.reason == (f"llama.cpp's AMX kernels crash on this CPU (llama.cpp #20824; the probe died of "
                               f"{named}); running without them")
    assert not decision.enabled and list(_stored().values())[0]["reason"] == decision.reason
    extra_buffers.forget()
    assert decide(probe_model=model_file).reason == decision.reason  # the next start reads it


def test_windows_where_both_children_crash_loads_nothing(home, monkeypatch, model_file):
    _platform(monkeypatch, "Windows", "AMD64")
    Children(monkeypatch, (0xC0000005, b""), (0xC0000005, b""))
    decision = decide(probe_model=model_file)
    assert decision.crashes and decision.reason.startswith("llama.cpp crashed (an access violation (0xC0000005))")


def test_a_windows_x86_64_cpu_whose_kernels_pass_is_kept_on(home, monkeypatch, model_file):
    _platform(monkeypatch, "Windows", "AMD64")  # Windows lists no CPU flags: an Intel Xeon may have AMX
    Children(monkeypatch, OK)
    assert decide(probe_model=model_file).enabled and list(_stored().values())[0]["enabled"] is True


# --- point 2: the wait -------------------------------------------------------------------------------

def test_a_probe_that_times_out_is_kept_for_a_day_then_tried_again(home, monkeypatch, model_file):
    children = Children(monkeypatch, TIMEOUT)
    first = decide(probe_model=model_file)
    assert not first.enabled and first.probed
    assert first.reason.startswith("the AMX probe did not finish in 120 s; running without llama.cpp's extra "
                                   "buffer types, and probing again after ")
    (record,) = _stored().values()
    assert abs(record["expires"] - (time.time() + 24 * 3600)) < 60
    extra_buffers.forget()  # a new process: no second wait
    again = decide(probe_model=model_file)
    assert (again.enabled, again.reason, again.probed) == (False, first.reason, False)
    assert len(children.calls) == 1
    extra_buffers.forget()
    day_later = time.time() + 24 * 3600 + 1
    monkeypatch.setattr(extra_buffers.time, "time", lambda: day_later)
    assert decide(probe_model=model_file).probed and len(children.calls) == 2


def test_the_probe_loads_the_smallest_local_model_and_says_so_first(home, monkeypatch, tmp_path):
    big, small = tmp_path / "big.gguf", tmp_path / "small.gguf"
    big.write_bytes(bytes(4000))
    small.write_bytes(bytes(1000))
    models = [extra_buffers.LocalModel("big", big, False), extra_buffers.LocalModel("small", small, False)]
    assert extra_buffers.pending_probe(probe_model=big, local_models=models) == (
        "testing llama.cpp's AMX kernels on this CPU with small.gguf in a separate process first "
        "(once per llama.cpp build and CPU; it gives up after 120 s)")
    children = Children(monkeypatch, OK)
    assert decide(probe_model=big, local_models=models).enabled
    assert children.calls == [("first", "small.gguf")]
    assert extra_buffers.pending_probe(probe_model=big, local_models=models) is None  # decided: no wait


# --- point 2 / issue 28 part 3: nothing on the CPU, no probe ------------------------------------------

def _config(tmp_path: Path, model_path: Path, layers: list[int]) -> object:
    toml = tmp_path / "models.toml"
    toml.write_text("".join(f'[[models]]\nname = "m{i}"\npath = "{model_path}"\nn_gpu_layers = {n}\n\n'
                            for i, n in enumerate(layers)))
    return load_config(toml)


@pytest.mark.parametrize("layers, on_cpu", [
    ([-1, -1], False),
    ([-1, 31], False),  # SmolLM2 135M: 30 layers and the output layer
    ([-1, 30], True),  # the output layer stays on the CPU
    ([-1, 10], True),
    ([-1, 0], True),
])
def test_the_probe_is_skipped_where_every_layer_is_on_a_gpu(home, monkeypatch, tmp_path, offline_model_path,
                                                           layers, on_cpu):
    from coolfusion_local.models import probe_candidates
    from coolfusion_local.models.probe_candidates import local_models

    monkeypatch.setattr(probe_candidates, "gpu_offload_supported", lambda: True)  # a CUDA/Metal/Vulkan build with a device
    smollm2 = offline_model_path("smollm2-135m")
    local = local_models(_config(tmp_path, smollm2, layers), loading=("m0", smollm2))
    children = Children(monkeypatch, OK)
    waiting = extra_buffers.pending_probe(probe_model=smollm2, local_models=local)
    decision = decide(probe_model=smollm2, local_models=local)
    if on_cpu:
        assert waiting and decision.probed and children.calls
    else:
        assert waiting is None and not decision.probed and children.calls == []
        assert decision == extra_buffers.ExtraBuffers(
            False, "every layer of every local model is offloaded to the GPU, so llama.cpp's CPU kernels are not "
                   "used and the AMX probe is skipped")
        assert not extra_buffers.cache_file().exists()  # it follows models.toml, not the machine


def test_a_cpu_only_build_is_probed_whatever_n_gpu_layers_says(home, monkeypatch, tmp_path, offline_model_path):
    from coolfusion_local.models import probe_candidates
    from coolfusion_local.models.probe_candidates import local_models

    monkeypatch.setattr(probe_candidates, "gpu_offload_supported", lambda: False)
    smollm2 = offline_model_path("smollm2-135m")
    local = local_models(_config(tmp_path, smollm2, [-1]), loading=("m0", smollm2))
    Children(monkeypatch, OK)
    assert decide(probe_model=smollm2, local_models=local).probed


# --- point 9: the caches ------------------------------------------------------------------------------

def test_two_llama_cpp_builds_on_one_host_keep_their_own_verdicts(home, monkeypatch, model_file):
    build = ["build A"]
    monkeypatch.setattr(extra_buffers, "build_and_cpu_key", lambda cpu: build[0])
    children = Children(monkeypatch, (-signal.SIGSEGV, b""), OK)
    assert not decide(probe_model=model_file).enabled  # build A: the kernels crash
    extra_buffers.forget()
    build[0] = "build B"
    children.outcomes["first"] = OK
    assert decide(probe_model=model_file).enabled  # build B (another venv): they pass
    calls = len(children.calls)
    for key, enabled in (("build A", False), ("build B", True), ("build A", False)):
        extra_buffers.forget()
        build[0] = key
        decision = decide(probe_model=model_file)
        assert (decision.enabled, decision.probed) == (enabled, False)
    assert len(children.calls) == calls  # no install made the other probe again
    assert set(_stored()) == {"build A", "build B"}


DAMAGED = {
    "deeply-nested": "[" * 200_000,
    "deeply-nested-object": '{"a":' * 100_000,
    "not-utf8": b"\xff\xfe{\x00}",
    "not-json": "{not json",
    "a-list": "[1, 2]",
    "binary": bytes(range(256)),
    "huge": '{"x": "' + "y" * (2 << 20) + '"}',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_verdict_file_is_probed_again_and_rewritten(home, monkeypatch, model_file, content):
    path = extra_buffers.cache_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    children = Children(monkeypatch, OK)
    assert decide(probe_model=model_file).enabled and len(children.calls) == 1
    assert list(_stored().values())[0]["enabled"] is True


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_exact_batch_file_is_measured_again(home, model_file, content):
    path = exact_batch_cache.cache_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    key = exact_batch_cache.model_key(model_file, threads=2)
    assert exact_batch_cache.recall(key, largest=8) is None
    exact_batch_cache.remember(key, 3, "m")
    assert exact_batch_cache.recall(key, largest=8) == 3


@pytest.mark.parametrize("size, recalled", [
    (1, 1), (3, 3), (8, 8), (9, None), (40, None), (0, None), (-2, None), (True, None), (2.0, None), ("4", None),
])
def test_a_kept_exact_batch_size_outside_what_the_probe_measures_is_measured_again(home, model_file, size, recalled):
    key = exact_batch_cache.model_key(model_file, threads=2)
    path = exact_batch_cache.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({key: {"size": size, "model": "m"}}))
    assert exact_batch_cache.recall(key, largest=8) == recalled
