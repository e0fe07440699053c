"""Loading a local member: a models.toml entry's GGUF file into llama.cpp.

The local counterpart of `remote/load.py`'s `load_remote`: the engine's
`SourceModel` knows nothing of models.toml, so the entry's settings are
turned into its arguments here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import ModelSpec, effective_gpu_layers
from ..engine.source_model import SourceModel


def load_local(
    spec: ModelSpec,
    path: Path,
    progress: Callable[[float], None] | None = None,
    *,
    cpu_extra_buffers: bool | None = None,
    n_gpu_layers: int | None = None,
) -> SourceModel:
    """Load `spec` from its resolved file; `cpu_extra_buffers` None lets the machine's decision choose;
    `n_gpu_layers`: the device fit's (models/offload.py) where models.toml sets none."""
    return SourceModel(
        spec.name,
        path,
        n_ctx=spec.n_ctx,
        n_gpu_layers=effective_gpu_layers(spec) if n_gpu_layers is None else n_gpu_layers,
        n_threads=spec.n_threads,
        cpu_extra_buffers=cpu_extra_buffers,
        progress=progress,
    )
