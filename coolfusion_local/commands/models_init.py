"""`coolfusion models init`: a copy of the shipped models.toml in the user config folder, to edit.

The copy is read before the shipped default from then on. An existing file is
never replaced: it may hold the user's changes.
"""

from __future__ import annotations

import argparse
import sys

from .. import locations
from ..errors import CoolfusionError

HEADER = """\
# Your models.toml, written by `coolfusion models init` from the default shipped with
# coolfusion-local. It is read before that default; edit it freely (docs/models.md has the
# schema). To start again from the default, move this file away and run `models init` again.

"""


def init_config(args: argparse.Namespace) -> int:
    if getattr(args, "config", None) is not None:
        raise CoolfusionError("models init always writes to your user config folder; drop --config", exit_code=2)
    target = locations.user_config_file()
    if target.exists():
        raise CoolfusionError(f"{target} already exists; edit it, or move it away to write a fresh copy")
    default = locations.default_config_file().read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8") as file:  # "x": never over a file that appeared meanwhile
            file.write(HEADER + default)
    except FileExistsError:
        raise CoolfusionError(f"{target} already exists; edit it, or move it away to write a fresh copy") from None
    print(f"wrote {target}")
    print("edit it to change the models; `coolfusion models list` now reads it", file=sys.stderr)
    return 0
