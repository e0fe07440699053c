"""`coolfusion models init [--preset NAME]`: a copy of a shipped models.toml in the user config folder, to edit.

The copy is read before the shipped default from then on. An existing file is
never replaced: it may hold the user's changes.
"""

from __future__ import annotations

import argparse
import sys

from ..config.edit import write_user_config
from ..errors import CoolfusionError
from ..presets import preset


def init_config(args: argparse.Namespace) -> int:
    if getattr(args, "config", None) is not None:
        raise CoolfusionError("models init always writes to your user config folder; drop --config", exit_code=2)
    chosen = preset(getattr(args, "preset", None) or "default")
    what = "default" if chosen.name == "default" else f"{chosen.name} preset"
    target = write_user_config(chosen.file, "init", what)
    print(f"wrote {target}")
    print("edit it to change the models (or use `coolfusion models add|remove|enable|disable|lead`); "
          "`coolfusion models list` now reads it", file=sys.stderr)
    return 0
