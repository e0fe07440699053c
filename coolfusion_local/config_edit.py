"""Careful edits of a models.toml: what `coolfusion models add|remove|enable|disable|lead` change.

The file is the user's: every comment, blank line and key order stays as they
wrote it (tomlkit round-trips them; tomllib cannot). An edit
- refuses a file that no longer parses (one line, exit 2: fix it by hand first);
- refuses to turn a valid file into an invalid one (the loader's own checks run
  on the result before anything is written);
- keeps the previous file as `models.toml.bak` beside it;
- replaces the file atomically (files.replace_text): a crash leaves the old
  file or the new one, never half of one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from . import locations
from .config import Config, parse_config
from .errors import CoolfusionError, ConfigError
from .files import replace_text

BACKUP_SUFFIX = ".bak"

INIT_HEADER = """\
# Your models.toml, written by `coolfusion models {how}` from the {what} shipped with
# coolfusion-local. It is read before that default; edit it freely (docs/models.md has the
# schema), or with `coolfusion models add|remove|enable|disable|lead`. To start again from the
# default, move this file away and run `coolfusion models init` again.

"""


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def write_user_config(source: Path, how: str, what: str) -> Path:
    """A new user config: `source`'s text under a header saying where it came from; never over a file."""
    target = locations.user_config_file()
    text = INIT_HEADER.format(how=how, what=what) + source.read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8") as file:  # "x": never over a file that appeared meanwhile
            file.write(text)
    except FileExistsError:
        raise CoolfusionError(f"{target} already exists; edit it, or move it away to write a fresh copy") from None
    return target


def file_to_edit(explicit: Path | None) -> tuple[Path, bool]:
    """The models.toml an edit changes, and whether it was just created.

    `--config FILE` edits that file; otherwise the user config, made from the
    shipped default first (the default inside the package is never edited).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CoolfusionError(f"{path}: config file not found; check the --config path", exit_code=2)
        if locations.default_config_file().parent in path.resolve().parents:
            raise CoolfusionError(f"{path} ships with coolfusion-local and is not edited; "
                                  "copy it to your user config with `coolfusion models init [--preset NAME]` "
                                  "and edit that", exit_code=2)
        return path, False
    target = locations.user_config_file()
    if target.is_file():
        return target, False
    return write_user_config(locations.default_config_file(), "add", "default"), True


@dataclass
class Edit:
    """One edit under way: the parsed document and the file it came from."""

    path: Path
    document: TOMLDocument
    before: Config | None  # the file as the loader reads it; None when it does not pass the loader's checks

    # ------------------------------------------------------------------ the [[models]] tables

    def models(self) -> AoT:
        entries = self.document.get("models")
        if entries is None:
            entries = tomlkit.aot()
            self.document.append("models", entries)
        if not isinstance(entries, AoT):
            raise CoolfusionError(f"{self.path}: 'models' is not written as [[models]] tables; fix it by hand",
                                  exit_code=2)
        return entries

    def names(self) -> list[str]:
        return [str(table.get("name")) for table in self.models()]

    def find(self, name: str) -> Table:
        for table in self.models():
            if table.get("name") == name:
                return table
        known = ", ".join(self.names()) or "none"
        raise CoolfusionError(f"{self.path}: no model named {name!r}; configured models: {known}", exit_code=2)

    def mode(self) -> str | None:
        fusion = self.document.get("fusion")
        mode = fusion.get("mode") if isinstance(fusion, dict) else None
        return str(mode) if mode is not None else None


def _parse(path: Path) -> tuple[str, TOMLDocument]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise CoolfusionError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8 before editing it",
                              exit_code=2) from None
    try:
        return text, tomlkit.parse(text)
    except TOMLKitError as error:
        raise CoolfusionError(f"{path}: not valid TOML ({str(error).strip()}); fix it by hand (or move it away) "
                              "before editing it with `coolfusion models`", exit_code=2) from None


def _load(path: Path, text: str) -> Config:
    return parse_config(tomllib.loads(text), path)


def edit_config(path: Path, change: Callable[[Edit], str]) -> str:
    """Apply `change` to the file at `path` and write it back (see the module docstring); its message."""
    text, document = _parse(path)
    try:
        before = _load(path, text)
    except (ConfigError, tomllib.TOMLDecodeError):
        before = None  # already broken in a way the edit may fix (a model whose file is gone): not our check
    edit = Edit(path, document, before)
    message = change(edit)
    new_text = tomlkit.dumps(document)
    try:
        _load(path, new_text)
    except tomllib.TOMLDecodeError as error:  # tomlkit wrote something tomllib rejects: never write it
        raise CoolfusionError(f"{path}: the edited file would not parse ({error}); nothing was changed") from None
    except ConfigError as error:
        if before is not None:
            reason = str(error).removeprefix(f"{path}: ")
            raise CoolfusionError(f"{path}: refused, the file would then be invalid: {reason}; nothing was changed",
                                  exit_code=2) from None
    replace_text(backup_path(path), text)
    replace_text(path, new_text)
    return message


# --------------------------------------------------------------------------- the edits


def add_model(entry: dict, *, lead: bool, comment: str | None) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        name = entry["name"]
        if name in edit.names():
            raise CoolfusionError(f"{edit.path}: a model named {name!r} is already configured; "
                                  "pick another with --name, or `coolfusion models remove "
                                  f"{name}` first", exit_code=2)
        table = tomlkit.table()
        if comment:
            table.add(tomlkit.comment(comment))
        for key, value in entry.items():
            table.add(key, value)
        if lead:
            _clear_leads(edit)
            table.add("lead", True)
        edit.models().append(table)
        return f"added {name} to {edit.path}"

    return change


def remove_model(name: str) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        edit.find(name)
        if edit.mode() == f"solo:{name}":
            raise CoolfusionError(f"{edit.path}: [fusion] mode is solo:{name}; change the mode before removing "
                                  "that model", exit_code=2)
        models = edit.models()
        index = edit.names().index(name)
        del models[index]
        return f"removed {name} from {edit.path}"

    return change


def set_enabled(name: str, enabled: bool) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        table = edit.find(name)
        if bool(table.get("enabled", True)) == enabled:
            return f"{name} is already {'enabled' if enabled else 'disabled'} in {edit.path}"
        table["enabled"] = enabled
        return f"{'enabled' if enabled else 'disabled'} {name} in {edit.path}"

    return change


def set_lead(name: str) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        table = edit.find(name)
        if not table.get("enabled", True):
            raise CoolfusionError(f"{edit.path}: {name} is disabled; `coolfusion models enable {name}` first",
                                  exit_code=2)
        _clear_leads(edit)
        table["lead"] = True
        return f"{name} now leads the fusion ({edit.path})"

    return change


def _clear_leads(edit: Edit) -> None:
    """Only one model may say lead = true: the others lose the key (false is the default)."""
    for table in edit.models():
        if "lead" in table:
            del table["lead"]
