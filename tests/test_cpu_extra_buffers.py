"""llama.cpp's extra CPU buffer types (AMX, repacking): decided per machine, never by crashing.

A CPU whose AMX kernels fault is simulated the way the probe sees one: a child
process that dies by SIGSEGV (COOLFUSION_SIMULATE_AMX=crash). Everything else
is real: the probe child loads and decodes a real model through llama.cpp.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coolfusion_local.fusion_engine import load_config
from coolfusion_local.errors import ConfigError
from coolfusion_local.runtime import cpu as cpu_module
from coolfusion_local.runtime import extra_buffers
from coolfusion_local.runtime.extra_buffers import LlamaCrashes, check_loadable, decide, parse_setting
from models_env import REPO, Home, run_coolfusion
from helpers import free_port
from remote_servers import LAUNCHER


@pytest.fixture
def machine_home(sealed_home, monkeypatch) -> Home:
    """A sealed home (conftest.py) with no extra-buffer setting from the environment and no decision remembered."""
    monkeypatch.delenv(extra_buffers.VARIABLE, raising=False)
    monkeypatch.delenv(cpu_module.SIMULATE_AMX_VARIABLE, raising=False)
    extra_buffers.forget()
    yield sealed_home
    extra_buffers.forget()


def _no_amx(monkeypatch) -> None:
    monkeypatch.setattr(extra_buffers, "this_cpu",
                        lambda: cpu_module.Cpu("Plain CPU", frozenset({"avx2", "avx512f"}), True))


# --- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("auto", "auto"), ("AUTO", "auto"), (True, True), (False, False), ("on", True), ("off", False),
    ("1", True), ("0", False), ("true", True), ("no", False),
])
def test_settings_read_as_auto_on_or_off(value, expected):
    assert parse_setting(value, "x") == expected


def test_a_bad_runtime_setting_is_one_config_line(tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text('[[models]]\nname = "m"\npath = "m.gguf"\n[runtime]\ncpu_extra_buffers = "sometimes"\n')
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(ConfigError) as error:
        load_config(toml)
    assert str(error.value) == (f"{toml}: [runtime]: cpu_extra_buffers must be \"auto\", true or false, "
                                "not 'sometimes'")
    toml.write_text('[[models]]\nname = "m"\npath = "m.gguf"\n[runtime]\ncpu_extra_bufers = false\n')
    with pytest.raises(ConfigError, match="unknown key 'cpu_extra_bufers' \\(did you mean 'cpu_extra_buffers'\\?\\)"):
        load_config(toml)
    toml.write_text('[[models]]\nname = "m"\npath = "m.gguf"\n[runtime]\ncpu_extra_buffers = false\n')
    assert load_config(toml).runtime.cpu_extra_buffers is False


def test_the_config_and_then_the_variable_override_the_probe(machine_home, monkeypatch):
    assert decide(False, set_in="my.toml") == extra_buffers.ExtraBuffers(False, "set by cpu_extra_buffers in my.toml")
    monkeypatch.setenv(extra_buffers.VARIABLE, "on")
    assert decide(False, set_in="my.toml") == extra_buffers.ExtraBuffers(True, f"set by {extra_buffers.VARIABLE}=on")
    monkeypatch.setenv(extra_buffers.VARIABLE, "maybe")
    with pytest.raises(ConfigError, match="COOLFUSION_CPU_EXTRA_BUFFERS: cpu_extra_buffers must be"):
        decide()


def test_a_cpu_without_amx_keeps_them_with_no_probe(machine_home, monkeypatch):
    _no_amx(monkeypatch)
    decision = decide(probe_model=Path("/nonexistent.gguf"))
    assert decision.enabled and not decision.probed
    assert decision.reason == "this CPU has no AMX, so llama.cpp's AMX kernels are never used"
    assert not extra_buffers.cache_file().exists()


def test_cpu_flags_are_read_from_proc_cpuinfo():
    cpu = cpu_module.this_cpu()
    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo here")
    assert cpu.flags_known and cpu.model
    assert cpu.has_amx == ("amx_int8" in Path("/proc/cpuinfo").read_text() or "amx_tile" in cpu.flags)


# --- the probe, on real models -------------------------------------------------------------------

@pytest.mark.models
def test_a_crashing_probe_turns_them_off_once_and_is_remembered(machine_home, monkeypatch, smollm2_path):
    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "crash")
    decision = decide(probe_model=smollm2_path)
    assert not decision.enabled and decision.probed and not decision.crashes
    assert decision.reason == ("llama.cpp's AMX kernels crash on this CPU (llama.cpp #20824; the probe died of "
                               "SIGSEGV); running without them")
    (stored,) = json.loads(extra_buffers.cache_file().read_text()).values()  # records by build and CPU
    assert stored["enabled"] is False and stored["reason"] == decision.reason
    # A new process (no memory of it) reads the verdict: no second probe.
    extra_buffers.forget()
    again = decide(probe_model=smollm2_path)
    assert (again.enabled, again.reason, again.probed) == (False, decision.reason, False)


@pytest.mark.models
def test_a_new_llama_cpp_build_or_cpu_is_probed_again(machine_home, monkeypatch, smollm2_path):
    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "crash")
    extra_buffers.cache_file().parent.mkdir(parents=True)
    extra_buffers.cache_file().write_text(json.dumps(
        {"another build or CPU": {"enabled": True, "reason": "old verdict"}}))
    decision = decide(probe_model=smollm2_path)
    assert decision.probed and not decision.enabled
    stored = json.loads(extra_buffers.cache_file().read_text())
    assert stored["another build or CPU"]["reason"] == "old verdict"  # kept: that build may come back
    assert [record["enabled"] for key, record in stored.items() if key != "another build or CPU"] == [False]


@pytest.mark.models
def test_an_amx_cpu_whose_kernels_work_keeps_them(machine_home, monkeypatch, smollm2_path):
    really_amx = cpu_module.this_cpu().has_amx
    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "works")
    started = time.perf_counter()
    decision = decide(probe_model=smollm2_path)
    assert decision.probed, decision
    if really_amx and not decision.enabled:
        # "works" only stops the probe simulating a fault; on a CPU that really has AMX
        # the kernels really run, and on the affected Xeons they really fault.
        assert decision.reason.startswith("llama.cpp's AMX kernels crash on this CPU"), decision
    else:
        assert decision.enabled, decision
        assert decision.reason.startswith("this CPU has AMX and llama.cpp's AMX kernels passed the probe (")
    assert time.perf_counter() - started < 60  # a bound on a hang, not a speed test


@pytest.mark.models
def test_llama_cpp_crashing_even_without_them_loads_nothing_in_process(machine_home, monkeypatch, smollm2_path):
    from coolfusion_local.engine.source_model import SourceModel

    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "crash-always")
    decision = decide(probe_model=smollm2_path)
    assert decision.crashes and not decision.enabled
    assert "with and without its extra CPU buffer types" in decision.reason
    assert not extra_buffers.cache_file().exists()  # a fixed machine is probed again next start
    with pytest.raises(LlamaCrashes):
        check_loadable(decision)
    with pytest.raises(LlamaCrashes, match="llama.cpp crashed \\(SIGSEGV\\)"):
        SourceModel("smollm2", smollm2_path, n_ctx=256)


@pytest.mark.models
def test_the_setting_reaches_llama_cpp(machine_home, smollm2_path, caplog):
    """With them on, llama.cpp weighs its extra buffer types for every tensor; with them off it never does."""
    from coolfusion_local.engine.source_model import SourceModel

    logs = {}
    for enabled in (True, False):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="coolfusion.llama"):
            model = SourceModel("smollm2", smollm2_path, n_ctx=256, cpu_extra_buffers=enabled)
        assert model.cpu_extra_buffers is enabled
        model.close()
        logs[enabled] = caplog.text
    assert "preferred buffer type" in logs[True] or "CPU_REPACK" in logs[True] or "AMX" in logs[True]
    assert "preferred buffer type" not in logs[False] and "CPU_REPACK" not in logs[False]


# --- as a user meets it ----------------------------------------------------------------------------

@pytest.mark.models
def test_generate_answers_on_a_cpu_whose_amx_kernels_crash(machine_home):
    result = run_coolfusion(machine_home, "generate", "--temperature", "0", "--max-tokens", "12", "What is 2 + 2?",
                            timeout=300, COOLFUSION_SIMULATE_AMX="crash")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    lines = result.stderr.splitlines()
    assert ("note: llama.cpp's extra CPU buffer types are off: llama.cpp's AMX kernels crash on this CPU "
            "(llama.cpp #20824; the probe died of SIGSEGV); running without them") in lines
    # Before the wait, a line says what it is; the probe loads the smallest model, not the first listed.
    waiting = ("note: testing llama.cpp's AMX kernels on this CPU with SmolLM2-135M-Instruct.Q4_1.gguf in a "
               "separate process first (once per llama.cpp build and CPU; it gives up after 120 s)")
    assert waiting in lines and lines.index(waiting) < min(i for i, line in enumerate(lines) if line.startswith("loaded "))
    assert "Traceback" not in result.stderr
    # The next start reads the verdict and says it again, without probing.
    again = run_coolfusion(machine_home, "generate", "--temperature", "0", "--max-tokens", "4", "Hi",
                           timeout=300, COOLFUSION_SIMULATE_AMX="crash")
    assert again.returncode == 0 and "AMX kernels crash on this CPU" in again.stderr
    assert "testing llama.cpp's AMX kernels" not in again.stderr


@pytest.mark.models
def test_models_check_says_which_is_in_use_and_why(machine_home):
    result = run_coolfusion(machine_home, "models", "check", "smollm2-135m", timeout=300, COOLFUSION_SIMULATE_AMX="crash")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("smollm2-135m: ok  load ")
    assert lines[-1] == ("llama.cpp extra CPU buffer types (AMX, repacking): off (llama.cpp's AMX kernels crash "
                         "on this CPU (llama.cpp #20824; the probe died of SIGSEGV); running without them)")
    assert result.stderr.splitlines()[0] == (
        "note: testing llama.cpp's AMX kernels on this CPU with SmolLM2-135M-Instruct.Q4_1.gguf in a separate "
        "process first (once per llama.cpp build and CPU; it gives up after 120 s)")  # before the wait, not after
    # "off", not "on": forced on, a CPU whose AMX kernels really fault (as some test machines do) crashes.
    forced = run_coolfusion(machine_home, "models", "check", "smollm2-135m", timeout=300, COOLFUSION_CPU_EXTRA_BUFFERS="off")
    assert forced.stdout.splitlines()[-1] == ("llama.cpp extra CPU buffer types (AMX, repacking): off "
                                              "(set by COOLFUSION_CPU_EXTRA_BUFFERS=off)")


@pytest.mark.models
def test_the_test_server_launcher_applies_the_decision(machine_home, smollm2_path, tmp_path):
    """llama-cpp-python's own server, started as the remote tests start it, loads without the extra buffers."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--model", str(smollm2_path), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "256", "--n_threads", "2", "--verbose", "True"],
            stdout=subprocess.DEVNULL, stderr=sink, env=machine_home.env(COOLFUSION_SIMULATE_AMX="crash"),
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.3)
            assert server.poll() is None, log.read_text()[-2000:]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "llama_server_launcher: extra CPU buffer types off (llama.cpp's AMX kernels crash" in text
    assert "load_tensors" in text  # the model was loaded, verbosely
    assert "preferred buffer type" not in text and "CPU_REPACK" not in text


@pytest.mark.models
def test_the_engine_reports_the_choice_with_every_local_model_and_notes_it_once(machine_home, monkeypatch):
    from coolfusion_local.fusion_engine import FusionEngine
    from coolfusion_local.engine.events import ModelLoaded, ModelLoadWaiting

    monkeypatch.setenv(cpu_module.SIMULATE_AMX_VARIABLE, "crash")
    with FusionEngine(load_config(REPO / "models.toml")) as engine:
        events = list(engine.load())
        loaded = [event for event in events if isinstance(event, ModelLoaded)]
        assert [event.model for event in loaded] == ["qwen-coder-0.5b", "smollm2-135m"]
        # The wait is announced before it, and the probe loads the smallest model (98 MB), not the first (491 MB).
        assert [type(event).__name__ for event in events][:3] == ["ModelLoadStarted", "ModelLoadWaiting", "ModelLoaded"]
        assert events[1] == ModelLoadWaiting(
            "qwen-coder-0.5b", "testing llama.cpp's AMX kernels on this CPU with SmolLM2-135M-Instruct.Q4_1.gguf in "
                               "a separate process first (once per llama.cpp build and CPU; it gives up after 120 s)")
        assert all(event.cpu_extra_buffers == engine.cpu_extra_buffers.describe() for event in loaded)
        assert engine.cpu_extra_buffers.describe().startswith("off (llama.cpp's AMX kernels crash on this CPU")
        notes = [note for event in loaded for note in event.notices if "extra CPU buffer types" in note]
        assert len(notes) == 1 and notes[0] in loaded[0].notices
        assert all(member.model.cpu_extra_buffers is False
                   for member in (engine.member("qwen-coder-0.5b"), engine.member("smollm2-135m")))
