"""The device fit: members' GPU memory estimated from their GGUF headers, placed lead first."""

from __future__ import annotations

import pytest

from coolfusion_local.errors import ConfigError
from coolfusion_local.models.device_fit import HEADROOM, MemberCost, fit, parse_size, plan
from coolfusion_local.runtime.devices import Device, placement_text

MIB = 2**20


def cost(name: str, layers: int, layer_mib: int, output_mib: int = 10, kv_mib: int = 2, compute_mib: int = 20):
    return MemberCost(name, (layer_mib * MIB,) * layers, output_mib * MIB, kv_mib * MIB, compute_mib * MIB)


def test_sizes_are_read_as_people_write_them():
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5 GB") == 1_500_000_000
    assert parse_size("800MiB") == 800 * MIB and parse_size("123") == 123
    for bad in ("lots", "2 parsecs", "", "-1G"):
        with pytest.raises(ConfigError, match="COOLFUSION_GPU_MEMORY: .* is not a size"):
            parse_size(bad)


def test_layers_are_counted_from_the_top_as_llama_cpp_offloads_them():
    member = MemberCost("m", (1 * MIB, 2 * MIB, 3 * MIB), 10 * MIB, 1 * MIB, 20 * MIB)
    assert member.total_layers == 4
    assert member.device_bytes(0) == 0
    assert member.device_bytes(1) == (10 + 20) * MIB  # the output layer first, and the compute buffer
    assert member.device_bytes(2) == (10 + 3 + 1 + 20) * MIB  # then the last block, with its KV cache
    assert member.device_bytes(4) == member.device_bytes(99) == (10 + 6 + 3 + 20) * MIB


def test_the_lead_first_then_the_rest_as_they_fit():
    lead, partner, third = cost("lead", 24, 20), cost("partner", 30, 5), cost("third", 18, 12)
    whole = {c.name: c.device_bytes(c.total_layers) for c in (lead, partner, third)}
    roomy = int(sum(whole.values()) / (1 - HEADROOM)) + MIB
    assert fit([lead, partner, third], roomy) == {"lead": 25, "partner": 31, "third": 19}
    # Room for the lead and part of the partner: the third stays on the CPU.
    budget = int((whole["lead"] + whole["partner"] // 2) / (1 - HEADROOM))
    layers = fit([lead, partner, third], budget)
    assert layers["lead"] == 25 and 0 < layers["partner"] < 31 and layers["third"] == 0
    assert sum(c.device_bytes(layers[c.name]) for c in (lead, partner, third)) <= budget * (1 - HEADROOM)
    # Too small even for the lead's whole: the lead keeps as many layers as fit, the others none.
    layers = fit([lead, partner], whole["lead"] // 2)
    assert 0 < layers["lead"] < 25 and layers["partner"] == 0
    # A member whose layers models.toml sets takes its share first, whatever its rank.
    layers = fit([lead, partner], whole["lead"], fixed={"partner": -1})
    assert layers["partner"] == 31 and layers["lead"] < 25


@pytest.mark.models
def test_the_estimate_from_real_gguf_headers(offline_model_path, monkeypatch):
    from coolfusion_local.models.device_fit import estimate

    for name, blocks in (("qwen-coder-0.5b", 24), ("smollm2-135m", 30), ("gemma3-270m", 18)):
        path = offline_model_path(name)
        member = estimate(name, path, 4096)
        assert len(member.layer_bytes) == blocks and member.total_layers == blocks + 1
        weights = member.output_bytes + sum(member.layer_bytes)
        # Every tensor but the input embeddings (kept on the CPU): most of the file, never more
        # than it plus a tied output layer's copy.
        assert 0.3 * path.stat().st_size < weights < 1.6 * path.stat().st_size
        assert member.kv_layer_bytes > 0 and member.compute_bytes > 0
    qwen = estimate("qwen", offline_model_path("qwen-coder-0.5b"), 4096)
    # Qwen2.5 0.5B: 2 KV heads of 64 dims, keys and values in f16, 4096 cells.
    assert qwen.kv_layer_bytes == 4096 * 2 * (64 + 64) * 2

    devices = [Device("GPU0", "a test card", False, free=8 * 2**30, total=8 * 2**30)]
    members = [(n, offline_model_path(n), 4096, None) for n in ("smollm2-135m", "qwen-coder-0.5b", "gemma3-270m")]
    roomy = plan(members, "qwen-coder-0.5b", devices)
    assert list(roomy.placements) == ["qwen-coder-0.5b", "smollm2-135m", "gemma3-270m"]  # the lead first
    assert all(p.layers == p.total for p in roomy.placements.values()) and roomy.advice is None
    assert roomy.summary().startswith("GPU fit on GPU0 (a test card) (8.00 GiB free): qwen-coder-0.5b 25/25 layers")

    # COOLFUSION_GPU_MEMORY wins over the free memory: the lead whole, the rest as they fit.
    lead_whole = roomy.placements["qwen-coder-0.5b"].device_bytes
    monkeypatch.setenv("COOLFUSION_GPU_MEMORY", str(int(lead_whole / (1 - HEADROOM)) + 40 * MIB))
    tight = plan(members, "qwen-coder-0.5b", devices)
    assert tight.placements["qwen-coder-0.5b"].layers == 25
    assert tight.placements["smollm2-135m"].layers < 31 and tight.placements["gemma3-270m"].layers < 19
    assert "set by COOLFUSION_GPU_MEMORY" in tight.summary()

    monkeypatch.setenv("COOLFUSION_GPU_MEMORY", "1MiB")
    nothing = plan(members, "qwen-coder-0.5b", devices)
    assert all(p.layers == 0 for p in nothing.placements.values())
    assert "set COOLFUSION_GPU_MEMORY to the GPU memory you can spare, or n_gpu_layers" in nothing.summary()
    assert "qwen-coder-0.5b CPU" in nothing.summary()


def test_no_device_means_the_cpu():
    assert plan([("m", None, 4096, None)], "m", []).summary().startswith("GPU: none")
    assert placement_text(0, 25, None) == "every layer on the CPU"
    assert placement_text(25, 25, "Vulkan0 (llvmpipe)") == "25/25 layers on Vulkan0 (llvmpipe)"
    assert placement_text(10, 25, "CUDA0 (H100)") == "10/25 layers on CUDA0 (H100), the rest on the CPU"
