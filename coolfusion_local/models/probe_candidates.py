"""The local models a configuration may load, as the AMX probe needs them: file and where it runs.

The probe loads the smallest of them on the CPU (`extra_buffers.decide`), and
is skipped where every one runs wholly on a GPU. Only checked files count (the
one being loaded, the others `models list` calls ready, and the smallest
enabled model on disk, checked now as its own load would check it first): the
probe never downloads anything, and never loads a file that could crash
llama.cpp for being damaged.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from ..config import effective_gpu_layers
from ..runtime.extra_buffers import LocalModel
from ..runtime.gpu import gpu_offload_supported
from .gguf_info import read_gguf_info
from .hub import ModelState, model_status, resolve_model_path


def local_models(config, *, loading: tuple[str, Path] | None = None) -> Callable[[], list[LocalModel]]:
    """Every local model in `config` (enabled or not: either may be loaded later, alone or toggled on),
    looked up at the first call only, since most machines (no AMX) never need them; `loading` is
    the (name, checked file) being loaded now."""
    return functools.cache(lambda: _look_up(config, loading))


def _look_up(config, loading: tuple[str, Path] | None) -> list[LocalModel]:
    offload = gpu_offload_supported()
    paths: dict[str, Path | None] = {}
    unchecked = []  # (expected size, spec): enabled models on disk or in their packages, not yet checked
    for spec in config.models:
        if spec.is_remote:
            continue  # its server runs it, wherever that is
        paths[spec.name] = None
        if loading is not None and spec.name == loading[0]:
            paths[spec.name] = Path(loading[1])
            continue
        try:
            status = model_status(spec)
            if status.state is ModelState.READY and status.path is not None:
                paths[spec.name] = _checked(status.path)
            elif spec.enabled and status.state in (ModelState.UNVERIFIED, ModelState.NOT_ASSEMBLED):
                size = status.expected_size or (status.path.stat().st_size if status.path else None)
                if size:
                    unchecked.append((size, spec))
        except Exception:  # noqa: BLE001 - any trouble: not a candidate; its own load says why
            continue
    # The engine checks (and assembles) every enabled model before loading it anyway: doing it now
    # for the smallest, where that is smaller than any checked file, costs nothing in all.
    smallest_checked = min((_size(path) for path in paths.values() if path is not None), default=None)
    if unchecked:
        size, spec = min(unchecked, key=lambda pair: pair[0])
        if smallest_checked is None or size < smallest_checked:
            paths[spec.name] = _resolved(spec)
    by_name = {spec.name: spec for spec in config.models}
    return [LocalModel(name, path, offload and _all_layers_offloaded(by_name[name], path))
            for name, path in paths.items()]


def _checked(path: Path) -> Path | None:
    """The file, where its header reads as a GGUF model: a damaged one is not a file to probe with."""
    try:
        read_gguf_info(path)
    except Exception:  # noqa: BLE001
        return None
    return Path(path)


def _resolved(spec) -> Path | None:
    try:
        return _checked(resolve_model_path(spec, download=False))
    except Exception:  # noqa: BLE001 - its own load, later, says why in one line
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 1 << 62


def _all_layers_offloaded(spec, path: Path | None) -> bool:
    """llama.cpp offloads n_gpu_layers of its layers counted with the output layer (n_layers + 1);
    -1 means all. A number needs the file's layer count; without the file it is not known."""
    layers = effective_gpu_layers(spec)
    if layers < 0:
        return True
    if path is None or layers == 0:
        return False
    try:
        blocks = read_gguf_info(path).block_count
    except Exception:  # noqa: BLE001
        return False
    return bool(blocks) and layers >= blocks + 1
