"""The `coolfusion` command: one sub-command per module in `commands/`.

Every sub-command module exposes `register(subparsers)`, which adds its parser
and sets `func` to a callable taking the parsed args and returning an exit code.
Errors a user can cause arrive here as `CoolfusionError` and are printed as one
line; so are file-system errors (`OSError`: a full disk, a read-only or missing
folder, a permission), which only the user's machine can cause. Ctrl-C exits
with 130 after the command has saved what it had.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import CoolfusionError, one_line

COMMAND_MODULES = ("chat", "generate", "serve", "models", "eval", "bench", "arena")
log = logging.getLogger("coolfusion")
log.addHandler(logging.NullHandler())  # without a log file, nothing reaches the terminal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coolfusion",
        description="Fuse several local GGUF language models into one chat partner (Cool-Fusion).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"coolfusion_local.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CoolfusionError as error:
        print(f"coolfusion: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("coolfusion: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`coolfusion models list | head`): not an error.
        sys.stderr.close()
        return 0
    except OSError as error:
        log.exception("file-system error")  # the traceback, for the log file
        print(f"coolfusion: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
