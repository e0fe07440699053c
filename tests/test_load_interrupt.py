"""Ctrl-C while llama.cpp loads a model: the load stops and the interrupt reaches the program.

llama.cpp calls back into Python while it loads (progress, log); a KeyboardInterrupt
raised inside such a callback is swallowed by ctypes ("Exception ignored ...") and
the load fails for a made-up reason. These run real loads in real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from models_env import REPO, Home

pytestmark = pytest.mark.models

# Ctrl-C arrives while llama.cpp is inside the load: sent from the progress
# callback, the way a key press lands while the C code runs.
LOAD_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from coolfusion_local.engine.source_model import SourceModel
    seen = []
    def progress(fraction):
        seen.append(fraction)
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGINT)
    started = time.perf_counter()
    try:
        SourceModel("m", sys.argv[1], n_ctx=256, progress=progress)
    except KeyboardInterrupt:
        print(f"interrupted after {len(seen)} progress calls, at {max(seen):.2f}")
    else:
        print(f"loaded after {len(seen)} progress calls")
    """
)


def test_ctrl_c_inside_a_load_stops_it_and_raises_keyboard_interrupt(offline_model_path):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(offline_model_path("qwen-coder-0.5b"))],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert result.stdout.startswith("interrupted after "), result.stdout + result.stderr
    assert not result.stdout.endswith("at 1.00\n"), result.stdout  # the load was cut short
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_ctrl_c_while_generate_loads_models_exits_130(tmp_path, offline_model_path):
    home = Home(tmp_path)
    config = home.root / "models.toml"
    config.write_text("".join(
        f'[[models]]\nname = "{name}"\npath = "{offline_model_path(name)}"\n'
        for name in ("smollm2-135m", "qwen-coder-0.5b")
    ))
    process = subprocess.Popen(
        [sys.executable, "-m", "coolfusion_local", "generate", "Say hi.", "--config", str(config), "--max-tokens", "4"],
        cwd=home.root, env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = process.stderr.readline().decode()  # "loaded smollm2-135m ...": qwen is loading now
        assert first.startswith("loaded smollm2-135m"), first
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, (stdout, stderr)
    assert stderr.decode() == "coolfusion: interrupted\n"
    assert stdout == b""
