"""Models from Hugging Face repositories: find them in the local cache, or
download them when (and only when) asked.

Everything goes through huggingface_hub, so its cache (HF_HOME), token,
HF_ENDPOINT and HF_HUB_OFFLINE work as users know them. It is imported lazily:
starting the chat with local models should not pay for it.

Looking a model up (`cached_model_file`) never touches the network; only
`download_model_file` does, and it checks what arrived: a GGUF header, and the
size and sha256 the Hub lists for the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import integrity
from ..config import ModelSpec
from ..errors import CoolfusionError
from .gguf_info import GgufError, read_gguf_info
from .integrity import Progress

# llama.cpp's split files: "name-00001-of-00003.gguf"; it loads the set from the first.
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None  # LFS files only; small git files have a sha1 instead


def pull_hint(spec: ModelSpec) -> str:
    return f"coolfusion models pull {spec.name}"


def offline_mode() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


# --- choosing a file ---------------------------------------------------------------------------

def _split_parts(chosen: str) -> list[str]:
    """All files of the split set `chosen` belongs to (just `chosen` if it is whole)."""
    match = _SPLIT.search(chosen)
    if not match:
        return [chosen]
    stem, count = chosen[: match.start()], int(match.group(2))
    return [f"{stem}-{n:05d}-of-{count:05d}.gguf" for n in range(1, count + 1)]


def _model_sets(files: list[str]) -> list[str]:
    """The loadable GGUF files: whole ones, and the first part of each split set."""
    found = []
    for name in files:
        if not name.lower().endswith(".gguf") or "mmproj" in name.lower():
            continue
        match = _SPLIT.search(name)
        if match and int(match.group(1)) != 1:
            continue
        found.append(name)
    return sorted(found)


def match_quant(files: list[str], pattern: str, where: str) -> str:
    """The one GGUF file whose name contains `pattern` (case-insensitive).

    A match delimited by punctuation wins over a bare substring, so "Q4_0"
    picks "model-Q4_0.gguf" and not also "model-Q4_0_4_4.gguf", and "Q4_K_M"
    never matches inside "IQ4_K_M"-like names.
    """
    candidates = _model_sets(files)
    needle = pattern.lower()
    as_word = re.compile(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9_])")
    exact = [name for name in candidates if as_word.search(name.lower())]
    loose = [name for name in candidates if needle in name.lower()]
    matches = exact or loose
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listed = ", ".join(Path(name).name for name in candidates) or "no .gguf files at all"
        raise CoolfusionError(f"{where}: quant {pattern!r} matches no file; the repo has: {listed}")
    raise CoolfusionError(
        f"{where}: quant {pattern!r} matches {len(matches)} files ({', '.join(matches)}); "
        "write a longer quant or file = \"exact-name.gguf\""
    )


# --- the local cache (no network) --------------------------------------------------------------

def _repo_cache_folder(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def _snapshot_folder(spec: ModelSpec) -> Path | None:
    folder = _repo_cache_folder(spec.repo or "")
    revision = spec.revision or "main"
    if _COMMIT.fullmatch(revision):
        commit = revision
    else:
        ref = folder / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def cached_model_file(spec: ModelSpec) -> Path | None:
    """The model's file if every part of it is in the Hugging Face cache; never downloads."""
    snapshot = _snapshot_folder(spec)
    if snapshot is None:
        return None
    cached = [str(p.relative_to(snapshot).as_posix()) for p in snapshot.rglob("*.gguf")]
    if spec.file is not None:
        chosen = spec.file
    else:
        try:
            chosen = match_quant(cached, spec.quant or "", where=f"model {spec.name!r}")
        except CoolfusionError:
            return None  # not (unambiguously) in the cache: `pull` will ask the Hub
    parts = _split_parts(chosen)
    if not all((snapshot / part).is_file() for part in parts):
        return None
    return snapshot / parts[0]


def named_by_sha256(blob: Path) -> bool:
    """True for a cache blob named by its content's sha256 (files stored with Git LFS)."""
    return bool(_SHA256.fullmatch(blob.name))


def verify_cached(spec: ModelSpec, path: Path, progress: Progress | None = None) -> Path:
    """Check a cached model once (every part of a split one): a blob is named by its sha256,
    so no network is needed."""
    for part in _split_parts(path.name):
        part_path = path.with_name(part)
        blob = part_path.resolve()
        if named_by_sha256(blob):
            problem = integrity.verify_file(blob, sha256=blob.name, size=None, progress=progress,
                                            label=f"verifying {part}")
            if problem:
                raise CoolfusionError(
                    f"model {spec.name!r}: the cached file {part_path} is damaged ({problem}); "
                    f"delete it and run `{pull_hint(spec)}`"
                )
        try:
            read_gguf_info(part_path)
        except GgufError as error:
            raise CoolfusionError(f"model {spec.name!r}: {error}; delete it and run `{pull_hint(spec)}`") from None
    return path


# --- downloading (network, only when asked) ----------------------------------------------------

def _tqdm_reporting_to(progress: Progress, label: str):
    from tqdm.auto import tqdm

    class ReportingBar(tqdm):
        """A silent bar that hands its counts to `progress` (the CLI or the TUI draws them)."""

        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = kwargs.get("initial") or 0
            self.expected = kwargs.get("total")

        def update(self, n=1):
            self.done += n or 0
            progress(label, self.done, self.expected)

    return ReportingBar


def _list_repo(spec: ModelSpec) -> dict[str, RemoteFile]:
    # One request, and no retries: offline, this fails in a moment instead of backing off for 20 s.
    from huggingface_hub import HfApi, constants

    info = HfApi().model_info(spec.repo or "", revision=spec.revision, files_metadata=True,
                              timeout=constants.HF_HUB_ETAG_TIMEOUT)
    files = {}
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        files[sibling.rfilename] = RemoteFile(
            sibling.rfilename, lfs.size if lfs is not None else sibling.size, lfs.sha256 if lfs is not None else None
        )
    return files


list_repo = _list_repo  # `models add` checks a repo before writing it (models/sources.py)
model_files = _model_sets


def download_size(listing: dict[str, RemoteFile], chosen: str) -> int | None:
    """The bytes a pull of `chosen` fetches (every part of a split set); None when the listing lacks a size."""
    sizes = [listing[part].size if part in listing else None for part in _split_parts(chosen)]
    return None if None in sizes else sum(sizes)


def _hub_error(spec: ModelSpec, error: Exception) -> CoolfusionError:
    """One line for whatever went wrong talking to the Hub."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    where = f"model {spec.name!r} ({spec.repo})"
    retry = f"run `{pull_hint(spec)}` again"
    if isinstance(error, hf.OfflineModeIsEnabled) or offline_mode():
        return CoolfusionError(f"{where} is not downloaded and HF_HUB_OFFLINE=1 is set: "
                               f"unset HF_HUB_OFFLINE and {retry}")
    if isinstance(error, hf.GatedRepoError):
        return CoolfusionError(f"{where}: the repo is gated; accept its licence at "
                               f"{constants.ENDPOINT}/{spec.repo}, log in with `hf auth login`, then {retry}")
    if isinstance(error, hf.RepositoryNotFoundError):
        return CoolfusionError(f"{where}: no such repo on {constants.ENDPOINT} (or it is private: "
                               "log in with `hf auth login`); check repo in models.toml")
    if isinstance(error, hf.RevisionNotFoundError):
        return CoolfusionError(f"{where}: the repo has no revision {spec.revision!r}; check revision in models.toml")
    if isinstance(error, hf.RemoteEntryNotFoundError):
        return CoolfusionError(f"{where}: the repo has no file {spec.file!r}; check file in models.toml")
    if isinstance(error, hf.HfHubHTTPError) and error.response is not None:
        return CoolfusionError(f"{where}: the Hub answered HTTP {error.response.status_code}; {retry} later")
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CoolfusionError(f"{where}: cannot download from {constants.ENDPOINT} ({reason}); "
                           f"check the connection and {retry}")


def _discard(path: Path) -> None:
    """Remove a bad download from the cache so that the next pull fetches it again."""
    blob = path.resolve()
    integrity.forget(blob)
    for doomed in {path, blob}:
        try:
            os.unlink(doomed)
        except FileNotFoundError:
            pass


def _check_download(spec: ModelSpec, path: Path, remote: RemoteFile | None, progress: Progress | None) -> None:
    try:
        read_gguf_info(path)
        if remote is not None and remote.sha256 is not None:
            problem = integrity.verify_file(path.resolve(), sha256=remote.sha256, size=remote.size,
                                            progress=progress, label=f"verifying {path.name}")
        elif remote is not None and remote.size is not None and path.stat().st_size != remote.size:
            problem = f"size {path.stat().st_size:,} B instead of {remote.size:,} B"
        else:
            problem = None
    except GgufError as error:
        _discard(path)
        raise CoolfusionError(f"model {spec.name!r}: the download is unusable: {error}; removed it, "
                              f"run `{pull_hint(spec)}` to try again") from None
    if problem:
        _discard(path)
        raise CoolfusionError(f"model {spec.name!r}: {remote.path if remote else path.name} from {spec.repo} "
                              f"does not match the Hub's listing ({problem}); removed it, "
                              f"run `{pull_hint(spec)}` to try again")


def download_model_file(spec: ModelSpec, progress: Progress | None = None) -> Path:
    """Fetch the model's file(s) into the Hugging Face cache, verified; network required."""
    from huggingface_hub import hf_hub_download

    if offline_mode():
        raise _hub_error(spec, RuntimeError("offline"))
    try:
        remote = _list_repo(spec)
        chosen = spec.file if spec.file is not None else match_quant(
            list(remote), spec.quant or "", where=f"model {spec.name!r} ({spec.repo})")
        if chosen not in remote:
            listed = ", ".join(_model_sets(list(remote))) or "no .gguf files at all"
            raise CoolfusionError(f"model {spec.name!r} ({spec.repo}): the repo has no file {chosen!r}; "
                                  f"it has: {listed}")
        paths = []
        for part in _split_parts(chosen):
            tqdm_class = _tqdm_reporting_to(progress, f"downloading {Path(part).name}") if progress else None
            local = hf_hub_download(spec.repo or "", part, revision=spec.revision, tqdm_class=tqdm_class)
            paths.append(Path(local))
            _check_download(spec, paths[-1], remote.get(part), progress)
    except CoolfusionError:
        raise
    except Exception as error:
        if is_transfer_error(error):
            raise _hub_error(spec, error) from None
        raise
    return paths[0]


def is_transfer_error(error: Exception) -> bool:
    # The Hub client's own errors are OSErrors; its HTTP library's (httpx2 in huggingface_hub 2.x,
    # requests before 1.0) are not, and which library it is depends on the installed version.
    library = type(error).__module__.split(".")[0]
    return isinstance(error, OSError) or library in {"httpx", "httpx2", "requests", "urllib3", "httpcore"}
