"""Measurements in a child process (the path a model with GPU layers takes), run on the CPU.

On a GPU device the exact-batch probe and `bench --decode-costs` crashed the
user's process (issue 28); there they run in `device_probe_child`. The child
path is the same on the CPU, so it is tested here with real models: the
child's size equals an in-process probe's, its decode times come back, and a
child that dies of a signal leaves this process standing (size 1; a bench
that names the crash and measures the other models).
"""

from __future__ import annotations

import pytest

from coolfusion_local.engine.device_probes import SIMULATE_CRASH_VARIABLE, probe_in_child
from coolfusion_local.measure.decode_cost import format_decode_costs, measure_decode_costs
from models_env import Home


@pytest.mark.models
def test_the_child_measures_what_this_process_measures(offline_members):
    model = offline_members("smollm2-135m")[0].model
    verdict = probe_in_child(model)
    assert verdict.keep and verdict.note is None
    assert verdict.size == model._probe_exact_batch()


@pytest.mark.models
def test_a_crashing_child_leaves_this_process_with_the_safe_size(offline_members, monkeypatch, tmp_path):
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




@pytest.mark.models
def test_a_child_killed_from_outside_is_not_kept_as_a_crash(offline_members, monkeypatch, tmp_path):
    """SIGKILL is what the OOM killer sends: it says nothing of the kernels, so size 1 holds for this
    process only and the next start measures again."""
    Home(tmp_path).apply(monkeypatch)
    model = offline_members("smollm2-135m")[0].model
    monkeypatch.setenv(SIMULATE_CRASH_VARIABLE, "SIGKILL")
    verdict = probe_in_child(model)
    assert verdict.size == 1 and not verdict.keep
    assert verdict.note == ("the exact-batch probe of smollm2-135m could not run (killed by SIGKILL); "
                            "drafting checks one token per decode this time")

@pytest.fixture
def smollm2_taking_the_gpu_path(offline_members, monkeypatch, tmp_path):
    """The offline pair, SmolLM2 marked as having a GPU layer: on this CPU-only llama.cpp that changes
    only which path it takes (the child's, loaded as given), and it may not time decodes here."""
    Home(tmp_path).apply(monkeypatch)
    lead, partner = (member.model for member in offline_members("qwen-coder-0.5b", "smollm2-135m"))
    layers, exact = partner.n_gpu_layers, partner._exact_batch
    partner.n_gpu_layers = 1

    def not_here(*_):
        raise AssertionError("timed in the user's process")

    monkeypatch.setattr(partner, "_decode_times_here", not_here)
    yield lead, partner
    partner.n_gpu_layers, partner._exact_batch, partner.exact_batch_note = layers, exact, None


@pytest.mark.models
def test_decode_costs_of_a_model_with_gpu_layers_come_from_a_child(smollm2_taking_the_gpu_path):
    costs = {cost.model: cost for cost in measure_decode_costs(smollm2_taking_the_gpu_path, repeats=2)}
    for cost in costs.values():
        assert cost.failure is None and list(cost.ms) == [1, 2, 3, 4, 8, 16]
        assert all(ms > 0 for ms in cost.ms.values())


@pytest.mark.models
def test_a_crash_timing_decodes_names_itself_and_the_other_models_are_measured(smollm2_taking_the_gpu_path,
                                                                              monkeypatch):
    monkeypatch.setenv(SIMULATE_CRASH_VARIABLE, "1")
    said: list[str] = []
    lead, partner = costs = measure_decode_costs(smollm2_taking_the_gpu_path, repeats=2, say=said.append)
    assert lead.failure is None and all(ms > 0 for ms in lead.ms.values())
    assert partner.ms == {} and partner.failure.startswith(
        "llama.cpp crashed (SIGSEGV) timing smollm2-135m's decodes on the GPU in a test process (this command goes on")
    assert said[-1] == f"smollm2-135m: {partner.failure}"
    assert format_decode_costs(costs).splitlines()[-1] == f"smollm2-135m: not measured: {partner.failure}"


def test_a_crash_on_vulkan_names_the_switch_that_avoided_one():
    from coolfusion_local.engine.device_probes import _see_also

    assert _see_also("Vulkan0 (AMD Radeon 780M (RADV GFX1103_R1))").endswith(
        "GGML_VK_DISABLE_FUSION=1 avoided a Vulkan driver's crash like this")
    assert "GGML_VK" not in _see_also("CUDA0 (NVIDIA H100 80GB HBM3)") and "GGML_VK" not in _see_also(None)
