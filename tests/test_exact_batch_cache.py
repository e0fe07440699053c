"""The exact batch size is measured once per model and machine, and later processes read it back.

Real models through llama.cpp in child processes, each with its own empty
cache folder; the value read back must be the one a fresh probe gives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from coolfusion_local.runtime import exact_batch_cache
from models_env import Home

CHILD = """
import json, sys
from coolfusion_local.engine.source_model import SourceModel
model = SourceModel("m", sys.argv[1], n_ctx=2048)
size = model.exact_batch_size()
print(json.dumps({"size": size, "probe_seconds": model.exact_batch_probe_seconds}))
"""


def _child(home: Home, model_file, model) -> dict:
    # The same loading as the model in this process, so both measure the same kernels.
    env = home.env(COOLFUSION_CPU_EXTRA_BUFFERS="on" if model.cpu_extra_buffers else "off")
    done = subprocess.run([sys.executable, "-c", CHILD, str(model_file)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.models
def test_a_later_process_reads_the_measured_size_back_and_a_changed_file_is_measured_again(
        tmp_path, offline_members, offline_model_path):
    model = offline_members("smollm2-135m")[0].model
    home = Home(tmp_path)
    model_file = tmp_path / "model.gguf"
    shutil.copyfile(offline_model_path("smollm2-135m"), model_file)

    first = _child(home, model_file, model)
    second = _child(home, model_file, model)
    assert first["probe_seconds"] > 0 and second["probe_seconds"] == 0
    assert first["size"] == second["size"] == model._probe_exact_batch()
    stored = json.loads((home.cache / "coolfusion-local" / "runtime" / "exact-batch.json").read_text())
    assert [entry["size"] for entry in stored.values()] == [first["size"]]

    stat = model_file.stat()
    os.utime(model_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a replaced file, as far as anyone can tell
    third = _child(home, model_file, model)
    assert third["probe_seconds"] > 0 and third["size"] == first["size"]


def test_the_cache_survives_damage_and_keys_on_how_the_model_is_loaded(tmp_path, monkeypatch):
    Home(tmp_path).apply(monkeypatch)
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"GGUF" + bytes(64))
    key = exact_batch_cache.model_key(model_file, threads=2, extra_buffers=False)
    assert key != exact_batch_cache.model_key(model_file, threads=4, extra_buffers=False)
    assert key != exact_batch_cache.model_key(model_file, threads=2, extra_buffers=True)
    assert exact_batch_cache.model_key(tmp_path / "gone.gguf", threads=2) is None
    assert exact_batch_cache.recall(key, largest=8) is None

    exact_batch_cache.remember(key, 3, "m")
    assert exact_batch_cache.recall(key, largest=8) == 3
    exact_batch_cache.cache_file().write_text("{not json")
    assert exact_batch_cache.recall(key, largest=8) is None  # measured again, not a crash
    exact_batch_cache.remember(key, 4, "m")
    assert exact_batch_cache.recall(key, largest=8) == 4
    exact_batch_cache.cache_file().write_text(json.dumps({key: {"size": "lots"}}))
    assert exact_batch_cache.recall(key, largest=8) is None

    for n in range(exact_batch_cache.KEPT_ENTRIES + 5):
        exact_batch_cache.remember(f"k{n}", 2, "m")
    stored = json.loads(exact_batch_cache.cache_file().read_text())
    assert len(stored) == exact_batch_cache.KEPT_ENTRIES and f"k{exact_batch_cache.KEPT_ENTRIES + 4}" in stored


@pytest.mark.models
def test_a_kept_size_larger_than_the_probe_measures_is_measured_again(tmp_path, monkeypatch, offline_members):
    """A damaged or hand-edited 40 would make drafting check 40 tokens in one decode, whose rows are
    not the one-token rows: the size is measured again instead of trusted."""
    from coolfusion_local.engine.source_model import EXACT_BATCH_PROBED

    model = offline_members("smollm2-135m")[0].model
    Home(tmp_path).apply(monkeypatch)
    saved = model._exact_batch
    try:
        model._exact_batch = None
        measured = model.exact_batch_size()
        assert 1 <= measured <= EXACT_BATCH_PROBED
        stored = json.loads(exact_batch_cache.cache_file().read_text())
        (key,) = stored
        stored[key]["size"] = 40
        exact_batch_cache.cache_file().write_text(json.dumps(stored))
        model._exact_batch, model.exact_batch_probe_seconds = None, 0.0
        assert model.exact_batch_size() == measured
        assert model.exact_batch_probe_seconds > 0  # measured again, not read back
        assert json.loads(exact_batch_cache.cache_file().read_text())[key]["size"] == measured
    finally:
        model._exact_batch = saved
