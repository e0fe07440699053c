"""Field checks for models.toml, each failing with one line a user can act on.

`Checker` knows the file being read so that every message starts with it;
`loading.py` decides which checks each table gets.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NoReturn

from ..errors import ConfigError

# Names appear on the command line (`coolfusion models info NAME`) and in
# "solo:NAME", so keep them to characters that need no quoting.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REPO_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def _type_name(value: object) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a decimal number", str: "a string",
        list: "a list", dict: "a table",
    }.get(type(value), type(value).__name__)


class Checker:
    def __init__(self, source: Path, offline_models: Collection[str]):
        """`offline_models`: the PyPI-carried models a `pypi = ...` entry may name (models/pypi.py's)."""
        self.source = source
        self.offline_models = tuple(offline_models)

    def fail(self, where: str, problem: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {where}: {problem}")

    @staticmethod
    def closest(word: str, choices: Iterable[str]) -> str:
        match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
        return f" (did you mean {match[0]!r}?)" if match else ""

    def known_keys(self, table: dict, known: set[str], where: str) -> None:
        for key in table:
            if key not in known:
                hint = self.closest(key, sorted(known))
                self.fail(where, f"unknown key {key!r}{hint}; known keys: {', '.join(sorted(known))}")

    def _wrong_type(self, where: str, key: str, expected: str, value: object) -> NoReturn:
        self.fail(where, f"{key} must be {expected}, not {_type_name(value)} ({value!r})")

    def model_name(self, raw: dict, where: str) -> str:
        name = raw.get("name")
        if name is None:
            self.fail(where, 'no name; add name = "short-name"')
        if not isinstance(name, str):
            self._wrong_type(where, "name", "a string", name)
        if not _NAME_PATTERN.fullmatch(name):
            self.fail(where, f"name {name!r} must be letters, digits, '.', '_' or '-' (no spaces or ':')")
        return name

    def optional_str(self, raw: dict, key: str, where: str, default: str | None = None) -> str | None:
        value = raw.get(key, default)
        if value is not None and not isinstance(value, str):
            self._wrong_type(where, key, "a string", value)
        if value == "":
            self.fail(where, f"{key} is empty; give a value or remove the key")
        return value

    def optional_int(self, raw: dict, key: str, where: str, minimum: int, default: int | None = None) -> int | None:
        value = raw.get(key, default)
        if value is None:
            return None
        # TOML booleans are Python bools, which are ints: reject them explicitly.
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(where, key, "a whole number", value)
        if value < minimum:
            self.fail(where, f"{key} = {value} is too small; use {minimum} or more")
        return value

    def optional_bool(self, raw: dict, key: str, where: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self._wrong_type(where, key, "true or false", value)
        return value

    def weight(self, raw: dict, where: str) -> float:
        value = raw.get("weight", 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._wrong_type(where, "weight", "a number", value)
        if not value > 0 or value != value or value == float("inf"):
            self.fail(where, f"weight = {value} must be a finite number above 0 (1.0 is neutral)")
        return float(value)

    def non_negative_float(self, raw: dict, key: str, where: str, default: float) -> float:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._wrong_type(where, key, "a number", value)
        if not 0 <= value < float("inf"):
            self.fail(where, f"{key} = {value} must be a finite number, 0 or above")
        return float(value)

    def fraction(self, raw: dict, key: str, where: str, default: float) -> float:
        value = self.non_negative_float(raw, key, where, default)
        if value > 1:
            self.fail(where, f"{key} = {value} must be between 0 and 1 (a difference of two probabilities)")
        return value

    def string_list(self, raw: dict, key: str, where: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if isinstance(value, str):
            self.fail(where, f'{key} must be a list of strings: write {key} = [{value!r}]'.replace("'", '"'))
        if not isinstance(value, list):
            self._wrong_type(where, key, "a list of strings", value)
        if not all(isinstance(item, str) for item in value):
            self.fail(where, f"{key} must be a list of strings; {value!r} has other items")
        if any(item == "" for item in value):
            self.fail(where, f"{key} contains an empty string; remove it")
        return tuple(value)

    def chat_template(self, raw: dict, where: str) -> str | None:
        value = self.optional_str(raw, "chat_template", where)
        if value is None or value == "plain":
            return value
        if "{{" not in value and "{%" not in value:
            # A lone word like "chatml" is a common guess; it would be sent to the model verbatim.
            self.fail(where, f'chat_template {value!r} is neither "plain" nor a Jinja template; '
                             'remove it to use the GGUF\'s own template')
        return value

    def remote_settings(self, raw: dict, where: str) -> dict:
        """The served-model keys (url, model, api_key_env, timeout_s) as ModelSpec fields; {} for a local model."""
        remote_only = [key for key in ("model", "api_key_env", "timeout_s") if key in raw]
        if "url" not in raw:
            if remote_only:
                self.fail(where, f"{remote_only[0]!r} only applies to a served model; add url = \"http://host:port/v1\"")
            return {}
        url = self.optional_str(raw, "url", where)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            self.fail(where, f"url {url!r} must be an http:// or https:// address, e.g. \"http://127.0.0.1:8000/v1\"")
        for key in ("n_gpu_layers", "n_threads"):
            if key in raw:
                self.fail(where, f"{key!r} applies to local models; a served model's server decides it")
        api_key_env = self.optional_str(raw, "api_key_env", where)
        if api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
            self.fail(where, f"api_key_env {api_key_env!r} must be the NAME of an environment variable "
                             "holding the key, never the key itself")
        timeout = raw.get("timeout_s", 60.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            self.fail(where, f"timeout_s must be a number of seconds above 0, not {timeout!r}")
        return {
            "url": url,
            "served_model": self.optional_str(raw, "model", where),
            "api_key_env": api_key_env,
            "timeout_s": float(timeout),
        }

    def repo_id(self, raw: dict, where: str) -> str:
        value = self.optional_str(raw, "repo", where)
        assert value is not None
        if not _REPO_PATTERN.fullmatch(value):
            self.fail(where, f'repo {value!r} must look like "owner/name" (a Hugging Face model repository)')
        return value

    def pypi_name(self, raw: dict, where: str) -> str:
        value = self.optional_str(raw, "pypi", where)
        assert value is not None
        if value not in self.offline_models:
            hint = self.closest(value, self.offline_models)
            self.fail(where, f"pypi = {value!r} is not a known PyPI-carried model{hint}; "
                             f"known: {', '.join(self.offline_models)}")
        return value

    def local_gguf_path(self, raw: dict, where: str) -> Path:
        value = self.optional_str(raw, "path", where)
        assert value is not None
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.source.parent / path  # relative to the toml, not to where the command runs
        path = Path(os.path.normpath(path))
        if not path.exists():
            self.fail(where, f"path {str(path)!r} does not exist; fix the path or download the file there")
        if path.is_dir():
            self.fail(where, f"path {str(path)!r} is a folder; point it at the .gguf file inside")
        if not os.access(path, os.R_OK):
            self.fail(where, f"path {str(path)!r} is not readable; fix its permissions (chmod u+r)")
        return path
