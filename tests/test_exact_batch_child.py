"""The exact-batch probe in a child process (the path a model with GPU layers takes), run on the CPU.

On a GPU device the probe once crashed the user's process (issue 28); there it
runs in `probe_child`. The child path is the same on the CPU, so it is tested
here with real models: the child's size equals an in-process probe's, and a
child that dies of a signal leaves this process standing with size 1.
"""

from __future__ import annotations

import pytest

from coolfusion_local.engine.exact_batch_probe import SIMULATE_CRASH_VARIABLE, probe_in_child


@pytest.mark.models
def test_the_child_measures_what_this_process_measures(offline_members):
    model = offline_members("smollm2-135m")[0].model
    verdict = probe_in_child(model)
    assert verdict.keep and verdict.note is None
    assert verdict.size == model._probe_exact_batch()


@pytest.mark.models
def test_a_crashing_child_leaves_this_process_with_the_safe_size(offline_members, monkeypatch, tmp_path):
    from models_env import Home

    Home(tmp_path).apply(monkeypatch)  # an empty cache folder: nothing recalled, nothing kept elsewhere
    model = offline_members("smollm2-135m")[0].model
    monkeypatch.setenv(SIMULATE_CRASH_VARIABLE, "1")
    verdict = probe_in_child(model)
    assert verdict.size == 1 and verdict.keep
    assert "llama.cpp crashed (SIGSEGV) measuring smollm2-135m's exact batch size" in verdict.note
    assert "drafting checks one token per decode" in verdict.note

    # Through SourceModel, as a model with GPU layers takes it: size 1, kept, and the note.
    model._exact_batch, layers = None, model.n_gpu_layers
    model.n_gpu_layers = 1  # only which path is taken: the child loads the model as given (no device here)
    try:
        assert model.exact_batch_size() == 1
        assert "crashed (SIGSEGV)" in model.exact_batch_note
    finally:
        model.n_gpu_layers, model._exact_batch, model.exact_batch_note = layers, None, None
