"""Pieces every sub-command shares: the --config option and the log file."""

from __future__ import annotations

import argparse
import logging

from .. import locations
from ..engine.events import ModelLoaded, ModelLoadFailed, ModelLoadWaiting
from ..presets import preset_file
from ..runtime.devices import placement_text


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--config",
        metavar="FILE",
        help="models file (default: the user's config dir, then the default shipped with coolfusion)",
    )
    which.add_argument("--preset", dest="config", type=preset_file, metavar="NAME",
                       help="a model set shipped with coolfusion instead (`coolfusion models list --presets`)")


def configure_logging() -> None:
    """Send llama.cpp's and our own log to a file, never to the terminal."""
    root = logging.getLogger("coolfusion")
    if any(isinstance(h, logging.FileHandler) for h in root.handlers):
        return
    try:
        folder = locations.log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(folder / "coolfusion.log", encoding="utf-8")
    except OSError:
        return  # a read-only home must not stop the tool; the log is a convenience
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def describe_load_event(event) -> list[str]:
    """The stderr lines for one load event: 'loaded NAME in 0.5s (...)', its notes, or a warning."""
    if isinstance(event, ModelLoadWaiting):  # shown before the wait, not after it
        return [f"note: {event.message}"]
    if isinstance(event, ModelLoaded):

        device = getattr(event, "device", None)
        gpu = f", {placement_text(event.n_gpu_layers, event.n_layers + 1, device)}" if event.n_gpu_layers else ""
        return [f"loaded {event.model} in {event.seconds:.1f}s ({event.chat_template} template{gpu})",
                *(f"note: {notice}" for notice in event.notices)]
    if isinstance(event, ModelLoadFailed):
        return [f"warning: {event.reason}"]
    return []
