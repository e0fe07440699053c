"""Options `eval` and `bench` share: which models take part, which modes run, loading them.

`--models a,b` picks configured models (disabled ones too) in that order and
leaves the rest out; the first one leads (adaptive mode trusts its confident
proposals, and fused answer lengths are counted in its tokens).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Callable

from ..config import Config
from ..engine.events import ModelLoaded, ModelLoadFailed, ModelLoadWaiting
from ..engine.modes import FUSION_MODES, SOLO_PREFIX, solo_name
from ..errors import CoolfusionError


def add_models_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        metavar="A,B",
        help="comma-separated configured models to use, first one leading (default: the enabled ones); "
        "disabled models named here are enabled",
    )


def select_models(config: Config, names: str | None) -> Config:
    """The config with exactly `names` enabled, in that order; unchanged when `names` is None."""
    if names is None:
        return config
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    if not wanted:
        raise CoolfusionError("--models needs at least one model name", exit_code=2)
    if len(set(wanted)) != len(wanted):
        raise CoolfusionError(f"--models names a model twice: {names}", exit_code=2)
    chosen = [replace(config.model(name), enabled=True) for name in wanted]  # ConfigError for unknown names
    others = [replace(spec, enabled=False) for spec in config.models if spec.name not in wanted]
    fusion = config.fusion
    if fusion.solo_name is not None and fusion.solo_name not in wanted:
        fusion = replace(fusion, mode="cool")  # the default mode must not load a model left out
    return replace(config, models=tuple(chosen + others), fusion=fusion)


def parse_modes(text: str, names: list[str], *, allow_solo: bool = True) -> list[str]:
    """"solo,cool" -> ["solo:a", "solo:b", "cool"]: `solo` expands to every selected model alone."""
    modes: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "solo" and allow_solo:
            expanded = [f"{SOLO_PREFIX}{name}" for name in names]
        elif solo_name(item) is not None and allow_solo:
            if solo_name(item) not in names:
                raise CoolfusionError(
                    f"mode {item!r}: {solo_name(item)!r} is not among the selected models ({', '.join(names)})",
                    exit_code=2)
            expanded = [item]
        elif item in FUSION_MODES:
            expanded = [item]
        else:
            choices = ", ".join([*(["solo", "solo:NAME"] if allow_solo else []), *FUSION_MODES])
            raise CoolfusionError(f"unknown mode {item!r}; choose from: {choices}", exit_code=2)
        modes += [mode for mode in expanded if mode not in modes]
    if not modes:
        raise CoolfusionError("--modes names no mode", exit_code=2)
    return modes


def load_models(engine, names: list[str], say: Callable[[str], None]) -> None:
    """Load `names` into `engine`; a model that fails to load stops the run (its results would be missing)."""
    for event in engine.load(names):
        if isinstance(event, ModelLoadWaiting):
            say(f"note: {event.message}")
        elif isinstance(event, ModelLoaded):
            say(f"loaded {event.model} in {event.seconds:.1f}s")
            for notice in event.notices:
                say(f"note: {notice}")
        elif isinstance(event, ModelLoadFailed):
            raise CoolfusionError(event.reason)
