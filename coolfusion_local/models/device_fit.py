"""Members fitted to the GPU's memory before they load: the lead first, the rest as they fit.

Without this a user with several members must guess `n_gpu_layers`: three
2 GB models on a 4 GB GPU fail somewhere inside llama.cpp. Before the first
load, each local member's device memory is estimated from its GGUF header:

* weights: the bytes of each `blk.N.` layer's tensors, and of the output
  layer (`output.weight`, or the token embeddings when the model ties them;
  llama.cpp keeps the input embeddings on the CPU);
* KV cache: n_ctx (padded as llama.cpp pads it) x KV heads x (key + value
  dims) x 2 bytes (f16) per layer; every layer keeps the whole context
  (swa_full, one unified cache for all sequences);
* compute buffers: a micro-batch (64 tokens) of the largest intermediates:
  logits, feed-forward, attention scores.

llama.cpp offloads the output layer first and then the last repeating layers
(n_gpu_layers = k: the output layer and the last k - 1 blocks), so a partial
fit keeps that order. The budget is the offload devices' free memory as the
backend reports it (ggml_backend_dev_memory), or COOLFUSION_GPU_MEMORY
("2GiB", "1500MB"), which wins. Where a member sets n_gpu_layers in
models.toml, that number is used and its estimate counts against the budget.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..runtime.devices import devices_label
from .gguf_info import GgufError, _int
from .gguf_tensors import read_tensor_sizes

VARIABLE = "COOLFUSION_GPU_MEMORY"
MICRO_BATCH = 64  # source_model.MAX_OUTPUTS_PER_DECODE: llama.cpp's n_ubatch as the engine sets it
CONTEXT_PADDING = 256  # llama.cpp rounds n_ctx up to this
HEADROOM = 0.05  # of the budget, kept free: allocator rounding, the backend's own buffers

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_size(text: str, where: str = VARIABLE) -> int:
    """"2GiB", "1.5 GB", "800MiB", "123456" (bytes) -> bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(f"{where}: {text!r} is not a size; write e.g. 2GiB, 1500MB or 800MiB")
    return int(float(match.group(1)) * _UNITS[unit])


def human_bytes(size: int) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


@dataclass(frozen=True)
class MemberCost:
    """One member's device memory, layer by layer."""

    name: str
    layer_bytes: tuple[int, ...]  # the weights of each repeating layer, blk.0 first
    output_bytes: int  # the output layer's weights
    kv_layer_bytes: int  # one layer's KV cache at the member's n_ctx
    compute_bytes: int  # the device's compute buffer (any layer offloaded)

    @property
    def total_layers(self) -> int:
        return len(self.layer_bytes) + 1  # + the output layer, as llama.cpp counts

    def device_bytes(self, layers: int) -> int:
        """Device memory with `layers` of total_layers offloaded."""
        layers = max(0, min(layers, self.total_layers))
        if layers == 0:
            return 0
        blocks = layers - 1  # the last ones: llama.cpp offloads from the top
        weights = self.output_bytes + sum(self.layer_bytes[len(self.layer_bytes) - blocks:])
        return weights + blocks * self.kv_layer_bytes + self.compute_bytes


def fit(costs: Sequence[MemberCost], budget: int, fixed: dict[str, int] | None = None) -> dict[str, int]:
    """Layers to offload per member, `costs` in priority order (the lead first).

    `fixed`: members whose layers are set (models.toml); they take their share
    first. Each other member gets all its layers where they fit in what is
    left, else as many as fit (the output layer first), else none.
    """
    fixed = fixed or {}
    remaining = int(budget * (1 - HEADROOM))
    chosen: dict[str, int] = {}
    for cost in costs:
        if cost.name in fixed:
            layers = fixed[cost.name]
            chosen[cost.name] = cost.total_layers if layers < 0 else min(layers, cost.total_layers)
            remaining -= cost.device_bytes(chosen[cost.name])
    for cost in costs:
        if cost.name in fixed:
            continue
        layers = cost.total_layers
        while layers > 0 and cost.device_bytes(layers) > remaining:
            layers -= 1
        chosen[cost.name] = layers
        remaining -= cost.device_bytes(layers)
    return {cost.name: chosen[cost.name] for cost in costs}


def estimate(name: str, path: Path, n_ctx: int) -> MemberCost:
    """A member's MemberCost from its GGUF header (GgufError where the header cannot tell)."""

    meta, sizes = read_tensor_sizes(path)
    arch = meta.get("general.architecture")

    def number(key: str) -> int | None:
        return _int(meta.get(f"{arch}.{key}"))

    blocks = number("block_count")
    heads, width = number("attention.head_count"), number("embedding_length")
    if not (blocks and heads and width):
        raise GgufError(f"{path}: its header lacks the layer count or head sizes")
    kv_heads = number("attention.head_count_kv") or heads
    key_dim = number("attention.key_length") or width // heads
    value_dim = number("attention.value_length") or width // heads
    feed_forward = number("feed_forward_length") or 4 * width
    layer_bytes = [0] * blocks
    output = 0
    for tensor, size in sizes.items():
        match = re.match(r"blk\.(\d+)\.", tensor)
        if match and int(match.group(1)) < blocks:
            layer_bytes[int(match.group(1))] += size
        elif tensor.startswith("output"):  # output.weight, output_norm.weight
            output += size
    if "output.weight" not in sizes:  # tied embeddings: the output layer gets its own copy
        output += sizes.get("token_embd.weight", 0)
    vocab = meta.get("tokenizer.ggml.tokens")
    n_vocab = getattr(vocab, "length", None) or number("vocab_size") or 32000
    context = -(-n_ctx // CONTEXT_PADDING) * CONTEXT_PADDING
    kv_layer = context * kv_heads * (key_dim + value_dim) * 2
    # float32 intermediates of one micro-batch: logits, the feed-forward's two
    # halves, a few residual-width tensors, and one layer's attention scores.
    compute = MICRO_BATCH * 4 * (n_vocab + 2 * feed_forward + 4 * width + heads * context)
    return MemberCost(name, tuple(layer_bytes), output, kv_layer, compute)


@dataclass
class Placement:
    layers: int
    total: int
    device_bytes: int


@dataclass
class OffloadPlan:
    """What went where: the line a user reads, and each member's layers."""

    device: str | None
    budget: int = 0
    budget_source: str = ""
    placements: dict[str, Placement] = field(default_factory=dict)
    advice: str | None = None  # set where nothing sensible fits

    def summary(self) -> str:
        if not self.device:
            return "GPU: none (this llama.cpp build or machine offers no GPU device): every layer on the CPU"
        parts = []
        for name, placed in self.placements.items():
            where = "CPU" if placed.layers == 0 else f"{placed.layers}/{placed.total} layers, {human_bytes(placed.device_bytes)}"
            parts.append(f"{name} {where}")
        line = f"GPU fit on {self.device} ({human_bytes(self.budget)} {self.budget_source}): " + "; ".join(parts)
        return line + (f". {self.advice}" if self.advice else "")


def budget_for(devices) -> tuple[int, str]:
    """The bytes the members may take on the device(s), and where that number came from."""
    variable = os.environ.get(VARIABLE, "").strip()
    if variable:
        return parse_size(variable), f"set by {VARIABLE}"
    return sum(device.free for device in devices), "free"


def plan(members: Sequence[tuple[str, Path | None, int, int | None]], lead: str | None, devices) -> OffloadPlan:
    """members: (name, GGUF path or None when not on disk, n_ctx, n_gpu_layers set in models.toml or None)."""

    if not devices:
        return OffloadPlan(None)
    budget, source = budget_for(devices)
    ordered = sorted(members, key=lambda member: member[0] != lead)  # the lead first, the rest as listed
    costs, fixed = [], {}
    for name, path, n_ctx, configured in ordered:
        if path is None:
            continue
        try:
            costs.append(estimate(name, path, n_ctx))
        except (GgufError, OSError):
            continue  # llama.cpp's own default then: it is the loader that will say what is wrong
        if configured is not None:
            fixed[name] = configured
    layers = fit(costs, budget, fixed)
    result = OffloadPlan(devices_label(devices), budget, source)
    for cost in costs:
        result.placements[cost.name] = Placement(layers[cost.name], cost.total_layers,
                                                 cost.device_bytes(layers[cost.name]))
    if costs and costs[0].name == lead and lead not in fixed and layers[lead] == 0:
        need = costs[0].device_bytes(costs[0].total_layers)
        result.advice = (f"not even the lead {lead}'s output layer fits ({human_bytes(need)} for all its layers): "
                         f"everything runs on the CPU; set {VARIABLE} to the GPU memory you can spare, or "
                         "n_gpu_layers (0 = CPU) per model in models.toml")
    return result
