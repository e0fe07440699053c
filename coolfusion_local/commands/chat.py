"""`coolfusion chat`: the terminal chat UI over the fused models."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.modes import FUSION_MODES, check_mode
from ..fusion_engine import FusionEngine, load_config
from .common import add_config_argument, configure_logging
from .sampling_options import add_sampling_arguments, sampling_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="chat with the fused models in a terminal UI",
        description="Chat with the fused models. History is saved in your user data folder "
        "(COOLFUSION_DATA_DIR moves it). F1 in the app lists every key.",
    )
    add_config_argument(parser)
    parser.add_argument("--mode", metavar="MODE", help=f"{', '.join(FUSION_MODES)} or solo:NAME (default: the config's)")
    add_sampling_arguments(parser, "models.toml's [fusion] values (the chat defaults); Ctrl+P 'Sampling' changes them")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    # Deliberately lazy: Textual loads for the chat only, not for every `coolfusion` command's --help.
    from ..tui.app import CoolfusionApp
    from ..tui.store import Store

    config = load_config(Path(args.config) if args.config else None)
    names = [spec.name for spec in config.models]
    # Refuse a wrong --mode here, in one line, before the screen is taken over.
    mode = check_mode(args.mode or config.fusion.mode, names)
    sampling = sampling_from_args(args, config.fusion.sampling)
    store = Store.open_default()
    app = CoolfusionApp(
        lambda: FusionEngine(config, mode=mode),  # created on the engine thread
        store,
        model_names=names,
        mode=mode,
        sampling=sampling,
    )
    try:
        app.run()
    finally:
        # The engine thread finishes its job (a stopped answer ends within a token) and closes the models.
        app.runner.close(timeout=30)
        store.close()
    for notice in store.take_notices():
        print(f"coolfusion: {notice}")
    return 0
