"""Careful edits of a models.toml: what `coolfusion models add|remove|enable|disable|lead` change.

The file is the user's: every comment, blank line and key order stays as they
wrote it. The edits are made on the text, line by line, at places found by
parsing: a table header or a key counts only where the text before it parses
as TOML (so a "[[models]]" inside a multi-line string is not one). The
comments above a [[models]] table belong to it (removing the model removes
them); keys are added after a table's last key, before the comments that
introduce the next table. (A TOML document library such as tomlkit keeps
comments too, but files the comments above a table under the table before it:
a key added there lands below the next model's comment.)

An edit
- refuses a file that no longer parses (one line, exit 2: fix it by hand first);
- checks the result: it must parse to exactly the tables intended, and pass the
  loader's own checks when the file passed them before;
- keeps the previous file as `models.toml.bak` beside it;
- replaces the file atomically (files.replace_text): a crash leaves the old
  file or the new one, never half of one.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

from .. import locations
from ..errors import ConfigError, CoolfusionError
from ..files import replace_text
from .loading import parse_config
from .schema import Config

BACKUP_SUFFIX = ".bak"

INIT_HEADER = """\
# Your models.toml, written by `coolfusion models {how}` from the {what} shipped with
# coolfusion-local. It is read before that default; edit it freely (docs/models.md has the
# schema), or with `coolfusion models add|remove|enable|disable|lead`. To start again from the
# default, move this file away and run `coolfusion models init` again.

"""

_HEADER = re.compile(r"\s*\[")
_MODELS_HEADER = re.compile(r"\s*\[\[\s*models\s*\]\]\s*(#.*)?$")
_TRIVIA = re.compile(r"\s*(#.*)?$")  # a blank or comment-only line


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
    shipped default first (nothing inside the package is ever edited).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CoolfusionError(f"{path}: config file not found; check the --config path", exit_code=2)
        if locations.default_config_file().parent in path.resolve().parents:
            raise CoolfusionError(f"{path} ships with coolfusion-local and is not edited; copy it to your user "
                                  "config with `coolfusion models init [--preset NAME]` and edit that", exit_code=2)
        return path, False
    target = locations.user_config_file()
    if target.is_file():
        return target, False
    return write_user_config(locations.default_config_file(), "add", "default"), True


def toml_value(value: object) -> str:
    """A str, bool, int or float as TOML writes it (JSON's string escapes are all valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} into models.toml")


# --------------------------------------------------------------------------- the text's layout


@dataclass
class _Entry:
    """One [[models]] table in the text: line numbers, 0-based, end exclusive."""

    name: object
    comments_from: int  # the first comment line directly above the header (the header when none)
    header: int
    last: int  # the table's last line that is not blank or a comment
    keys: dict[str, int]  # top-level key -> its line


class Edit:
    """One edit under way: the text as lines, its parsed form, and what the parse should become."""

    def __init__(self, path: Path, text: str, document: dict, before: Config | None):
        self.path = path
        self.lines = text.splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"
        self.before = before  # the file as the loader reads it; None when it does not pass the loader's checks
        self.expected = copy.deepcopy(document)  # what the edited text must parse to
        self.entries = self._find_entries()

    # ------------------------------------------------------------------ finding things

    def _parses(self, upto: int) -> bool:
        try:
            tomllib.loads("".join(self.lines[:upto]))
        except tomllib.TOMLDecodeError:
            return False
        return True

    def _find_entries(self) -> list[_Entry]:
        headers = [i for i, line in enumerate(self.lines) if _HEADER.match(line) and self._parses(i)]
        models = self.expected.get("models", [])
        found = [i for i in headers if _MODELS_HEADER.match(self.lines[i])]
        if len(found) != len(models):
            raise self._layout_error()
        entries = []
        for header, model in zip(found, models):
            end = next((i for i in headers if i > header), len(self.lines))
            last = header
            for i in range(header + 1, end):
                if not _TRIVIA.match(self.lines[i]):
                    last = i
            keys = {}
            for i in range(header + 1, last + 1):
                match = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", self.lines[i])
                if match and match.group(1) in model and self._parses(i):
                    keys[match.group(1)] = i
            start = header
            while start > 0 and self.lines[start - 1].strip().startswith("#"):
                start -= 1
            entries.append(_Entry(model.get("name"), start, header, last, keys))
        return entries

    def _layout_error(self) -> CoolfusionError:
        return CoolfusionError(f"{self.path}: its [[models]] tables are written in a way this edit does not "
                               "follow (inline or dotted tables?); make the change by hand", exit_code=2)

    def names(self) -> list[str]:
        return [str(m.get("name")) for m in self.expected.get("models", [])]

    def index(self, name: str) -> int:
        names = self.names()
        if name not in names:
            known = ", ".join(names) or "none"
            raise CoolfusionError(f"{self.path}: no model named {name!r}; configured models: {known}", exit_code=2)
        return names.index(name)

    def model(self, name: str) -> dict:
        return self.expected["models"][self.index(name)]

    def mode(self) -> str | None:
        fusion = self.expected.get("fusion")
        return fusion.get("mode") if isinstance(fusion, dict) else None

    # ------------------------------------------------------------------ changing things

    def set_key(self, name: str, key: str, value: object) -> None:
        index = self.index(name)
        entry = self.entries[index]
        self.expected["models"][index][key] = value
        line = entry.keys.get(key)
        if line is not None:
            match = re.match(r"(\s*[A-Za-z0-9_-]+\s*=\s*)(true|false)(\s*(#.*)?\n)$", self.lines[line])
            if not match:
                raise self._layout_error()
            self.lines[line] = match.group(1) + toml_value(value) + match.group(3)
        else:
            self._insert(entry.last + 1, [f"{key} = {toml_value(value)}\n"])
            entry.keys[key] = entry.last + 1
            entry.last += 1

    def drop_key(self, name: str, key: str) -> None:
        index = self.index(name)
        entry = self.entries[index]
        self.expected["models"][index].pop(key, None)
        line = entry.keys.pop(key, None)
        if line is not None:
            if not re.match(r"\s*[A-Za-z0-9_-]+\s*=\s*(true|false)\s*(#.*)?\n$", self.lines[line]):
                raise self._layout_error()
            self._delete(line, line + 1)

    def remove(self, name: str) -> None:
        index = self.index(name)
        entry = self.entries[index]
        del self.expected["models"][index]
        start, end = entry.comments_from, entry.last + 1
        # One blank line where two would meet, none at the top of the file.
        if end < len(self.lines) and not self.lines[end].strip() and (start == 0 or not self.lines[start - 1].strip()):
            end += 1
        self._delete(start, end)

    def append(self, entry: dict, comment: str | None) -> None:
        self.expected.setdefault("models", []).append(dict(entry))
        block = ["\n"]
        if comment:
            block.append(f"# {comment}\n")
        block.append("[[models]]\n")
        block += [f"{key} = {toml_value(value)}\n" for key, value in entry.items()]
        if self.entries:
            at = self.entries[-1].last + 1
            following = at < len(self.lines) and self.lines[at].strip()
            self._insert(at, block + (["\n"] if following else []))
        else:
            self._insert(len(self.lines), block)

    def _insert(self, at: int, new: list[str]) -> None:
        self.lines[at:at] = new
        self._shift(at, len(new))

    def _delete(self, start: int, end: int) -> None:
        del self.lines[start:end]
        self.entries = [e for e in self.entries if not start <= e.header < end]
        self._shift(end, start - end)

    def _shift(self, at: int, by: int) -> None:
        def moved(line: int) -> int:
            return line + by if line >= at else line

        for e in self.entries:
            e.comments_from, e.header, e.last = moved(e.comments_from), moved(e.header), moved(e.last)
            e.keys = {key: moved(line) for key, line in e.keys.items()}

    def text(self) -> str:
        return "".join(self.lines)


def _read(path: Path) -> tuple[str, dict]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise CoolfusionError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8 before editing it",
                              exit_code=2) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CoolfusionError(f"{path}: not valid TOML ({error}); fix it by hand (or move it away) before "
                              "editing it with `coolfusion models`", exit_code=2) from None


def edit_config(path: Path, change: Callable[[Edit], str], *, offline_models: Collection[str]) -> str:
    """Apply `change` to the file at `path` and write it back (see the module docstring); its message.
    `offline_models`: the PyPI-carried names the loader accepts (as for `load_config`)."""
    text, document = _read(path)
    try:
        before = parse_config(document, path, offline_models=offline_models)
    except ConfigError:
        before = None  # already invalid in a way the edit may fix (a model whose file is gone): not ours to judge
    edit = Edit(path, text, document, before)
    message = change(edit)
    new_text = edit.text()
    try:
        written = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        written = None
    if written != edit.expected:  # never write what we did not mean
        raise edit._layout_error()
    if before is not None:
        try:
            parse_config(written, path, offline_models=offline_models)
        except ConfigError as error:
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
            raise CoolfusionError(f"{edit.path}: a model named {name!r} is already configured; pick another "
                                  f"with --name, or `coolfusion models remove {name}` first", exit_code=2)
        if lead:
            _clear_leads(edit)
        edit.append({**entry, **({"lead": True} if lead else {})}, comment)
        return f"added {name} to {edit.path}"

    return change


def remove_model(name: str) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        edit.index(name)
        if edit.mode() == f"solo:{name}":
            raise CoolfusionError(f"{edit.path}: [fusion] mode is solo:{name}; change the mode before removing "
                                  "that model", exit_code=2)
        edit.remove(name)
        return f"removed {name} from {edit.path}"

    return change


def set_enabled(name: str, enabled: bool) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        state = "enabled" if enabled else "disabled"
        if bool(edit.model(name).get("enabled", True)) == enabled:
            return f"{name} is already {state} in {edit.path}"
        edit.set_key(name, "enabled", enabled)
        return f"{state} {name} in {edit.path}"

    return change


def set_lead(name: str) -> Callable[[Edit], str]:
    def change(edit: Edit) -> str:
        if not edit.model(name).get("enabled", True):
            raise CoolfusionError(f"{edit.path}: {name} is disabled; `coolfusion models enable {name}` first",
                                  exit_code=2)
        _clear_leads(edit)
        edit.set_key(name, "lead", True)
        return f"{name} now leads the fusion ({edit.path})"

    return change


def _clear_leads(edit: Edit) -> None:
    """Only one model may say lead = true: the others lose the key (false is the default)."""
    for other in edit.names():
        if "lead" in edit.model(other):
            edit.drop_key(other, "lead")
