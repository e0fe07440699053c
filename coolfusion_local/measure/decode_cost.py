"""What a decode costs by batch size: whether drafting can pay on this machine.

Drafting (engine/drafting.py) replaces one-token decodes of the lead with one
batched check of a drafted run of tokens. It can only save time where a
batch of k tokens, with a logits row for each, costs less than k one-token
decodes: nearly free on a GPU or where a large model's decode is bound by
memory, not at all where the CPU is busy computing every row. This measures
that curve for each loaded model, the way a check decodes, and says what the
best batch would save per token.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..engine.device_probes import DeviceProbeFailed
from ..runtime.exact_batch_cache import PROBED_UP_TO as EXACT_BATCH_PROBED
from .text_table import format_table

SIZES = (1, 2, 3, 4, 8, 16)
REPEATS = 6


@dataclass
class DecodeCost:
    model: str
    exact_batch: int  # the largest batch whose rows equal one-token rows bit for bit
    ms: dict[int, float] = field(default_factory=dict)  # median ms of one decode, by tokens in it
    exact_capped: bool = False  # the probe stopped at its largest size: larger batches may be exact too
    failure: str | None = None  # why no time was measured (the timing's child crashed on a GPU device)

    @property
    def exact_label(self) -> str:
        return f"{self.exact_batch}+" if self.exact_capped else str(self.exact_batch)

    def per_token(self, size: int) -> float:
        return self.ms[size] / size

    def saving(self, size: int) -> float:
        """The share of one-token decode time a batch of `size` saves per token (negative: costs more)."""
        return 1.0 - self.per_token(size) / self.ms[1]

    def best(self, largest: int | None = None) -> int:
        """The batch size, up to `largest`, with the cheapest token."""
        sizes = [s for s in self.ms if largest is None or s <= largest]
        return min(sizes, key=self.per_token)

    def as_dict(self) -> dict:
        return {"model": self.model, "exact_batch": self.exact_batch, "exact_capped": self.exact_capped,
                "ms_per_decode": {str(s): round(v, 3) for s, v in self.ms.items()},
                **({"error": self.failure} if self.failure else {})}


def measure_decode_costs(models: Sequence, sizes: Sequence[int] = SIZES, repeats: int = REPEATS,
                         say: Callable[[str], None] = lambda _: None) -> list[DecodeCost]:
    """Median time of a decode of each size, with a logits row per token, for each local model.

    A model with GPU layers is timed in a child process (engine/device_probes.py); where that child
    crashes, its cost carries the reason and the other models are still measured."""
    costs = []
    for model in models:
        if not model.is_local:
            say(f"{model.name}: served by its own server; its decode cost is not ours to measure")
            continue
        exact = model.exact_batch_size()
        cost = DecodeCost(model.name, exact, exact_capped=exact >= EXACT_BATCH_PROBED)
        fitting = [s for s in sizes if s <= model.largest_decode]  # a tiny n_ctx caps a decode
        try:
            times = model.measure_decode_times(fitting, repeats)
        except DeviceProbeFailed as error:
            cost.failure = str(error)
            say(f"{model.name}: {error}")
        else:
            cost.ms = {size: statistics.median(times[size]) * 1000 for size in fitting}
            say(f"{model.name}: {', '.join(f'{s}: {v:.1f} ms' for s, v in cost.ms.items())}")
        costs.append(cost)
    return costs


def format_decode_costs(costs: Sequence[DecodeCost]) -> str:
    if not costs:
        return "no local model to measure"
    failed = [cost for cost in costs if cost.failure]
    costs = [cost for cost in costs if not cost.failure]
    if not costs:
        return "\n".join(f"{cost.model}: not measured: {cost.failure}" for cost in failed)
    sizes = sorted({s for cost in costs for s in cost.ms})
    headers = ["model", "", *[f"{s} tok" for s in sizes], "exact"]
    rows = []
    for cost in costs:
        rows.append([cost.model, "ms/decode", *[f"{cost.ms[s]:.1f}" if s in cost.ms else "-" for s in sizes],
                     cost.exact_label])
        rows.append(["", "ms/token", *[f"{cost.per_token(s):.1f}" if s in cost.ms else "-" for s in sizes], ""])
    lines = [format_table(headers, rows, right=range(2, len(headers))), ""]
    for cost in costs:
        exact, anyhow = cost.best(cost.exact_batch), cost.best()
        lines.append(
            f"{cost.model}: checks in exact batches (draft = \"auto\", up to {cost.exact_label}) save at most "
            f"{cost.saving(exact):.0%} of a token's decode; one-batch checks (\"batch\") at most "
            f"{cost.saving(anyhow):.0%} (at {anyhow} tokens, every guess accepted)")
    lines += [f"{cost.model}: not measured: {cost.failure}" for cost in failed]
    return "\n".join(lines)
