"""Checks before a GGUF file is handed to llama.cpp, each failing with one line.

llama.cpp reports most broken files itself, but some things are better said
before it starts:

* `check_fits_in_memory(path, n_ctx)`: a model that cannot fit in the memory
  that is free now is refused from its file size, its context and its
  buffers, instead of swapping the machine to a halt or being killed by the
  kernel's OOM killer half-way through loading (no message at all).
* `gpu_fallback_notice(spec)`: `n_gpu_layers` asked for in models.toml on a
  llama.cpp build without GPU offload; llama.cpp silently runs on the CPU, the
  user should be told why it is slow.
* `check_gguf_for_llama(path)`: the header facts llama.cpp needs (magic,
  version, complete tensor data, an architecture, a tokenizer with its tokens),
  so a damaged or half-converted file gets a sentence naming what is wrong.

`preflight(spec, path)` runs the file and memory checks in one call; the
engine calls it between resolving the path and loading the model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import CoolfusionError
from ..runtime.gpu import gpu_offload_supported
from .gguf_info import GgufError, GgufInfo, kv_cache_bytes, read_gguf_info, read_gguf_metadata

SKIP_MEMORY_CHECK_VARIABLE = "COOLFUSION_SKIP_MEMORY_CHECK"
# The engine's batch size: llama.cpp reserves logits and compute buffers for it.
_N_BATCH = 512
_FIXED_OVERHEAD = 64 * 1024 * 1024  # llama.cpp's own structures, the Python side
# Tokenizer models llama.cpp knows (llama-vocab.cpp); "none"/"no_vocab": an embedding-only file.
KNOWN_TOKENIZER_MODELS = ("llama", "gpt2", "bert", "t5", "rwkv", "plamo2", "ugm", "none", "no_vocab")


# --------------------------------------------------------------------------- memory


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Room left under a container's memory limit (cgroup v2, then v1); None without a limit."""
    limit = _read_int(root / "memory.max")
    if limit is not None:
        used = (_read_int(root / "memory.current") or 0) - _stat_value(root / "memory.stat", "inactive_file")
        return max(limit - max(used, 0), 0)
    v1 = root / "memory"
    limit = _read_int(v1 / "memory.limit_in_bytes")
    if limit is not None and limit < 1 << 60:  # v1 writes "no limit" as a huge number
        used = (_read_int(v1 / "memory.usage_in_bytes") or 0) - _stat_value(v1 / "memory.stat", "total_inactive_file")
        return max(limit - max(used, 0), 0)
    return None


def available_memory() -> int | None:
    """Bytes that can be used now without swapping, or None where this cannot be told.

    Linux: MemAvailable from /proc/meminfo, lowered to a container's cgroup
    limit. Elsewhere: free physical pages from `os.sysconf` where the platform
    has them (macOS does not report reclaimable memory that way: the check is
    skipped there rather than refusing models that would fit).
    """
    if sys.platform.startswith("linux"):
        found = _meminfo_available()
        if found is None:
            return None
        limited = _cgroup_available()
        return min(found, limited) if limited is not None else found
    if sys.platform == "darwin":
        return None
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB"


def estimate_memory(path: Path | str, n_ctx: int) -> tuple[int, int]:
    """(weights, context and buffers) in bytes llama.cpp will need for `path` at `n_ctx`.

    The weights are the file size (read into llama.cpp's buffers at load).
    The context is the f16 KV cache of every layer, plus the logits and
    compute buffers llama.cpp reserves for a batch (vocabulary x batch floats
    dominate for small models with big vocabularies).
    """
    path = Path(path)
    meta = read_gguf_metadata(path, array_head=0)
    weights = path.stat().st_size
    kv_cache = kv_cache_bytes(meta, n_ctx) or 0
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab_size = meta.get(f"{meta.get('general.architecture')}.vocab_size")
    vocab = getattr(tokens, "length", 0) or (vocab_size if type(vocab_size) is int else 0)
    buffers = _N_BATCH * vocab * 4 + _FIXED_OVERHEAD
    return weights, kv_cache + buffers


def check_fits_in_memory(
    path: Path | str, n_ctx: int, *, available: int | None = None, name: str | None = None
) -> None:
    """Refuse, in one line, a model that needs more memory than is free now.

    `available` (bytes) replaces the measurement, for tests; where the free
    memory cannot be measured, or `COOLFUSION_SKIP_MEMORY_CHECK=1` is set,
    nothing is checked.
    """
    if os.environ.get(SKIP_MEMORY_CHECK_VARIABLE, "") not in ("", "0"):
        return
    if available is None:
        available = available_memory()
        if available is None:
            return
    path = Path(path)
    try:
        weights, context = estimate_memory(path, n_ctx)
    except GgufError:
        return  # the file checks say what is wrong with it
    need = weights + context
    if need <= available:
        return
    who = f"model {name!r} ({path.name})" if name else f"{path.name}"
    raise CoolfusionError(
        f"{who} needs about {_size(need)} of memory ({_size(weights)} of weights + {_size(context)} for a "
        f"{n_ctx:,}-token context and buffers) but only {_size(available)} is free; close other programs, "
        f"lower n_ctx in models.toml, or pick a smaller model or quant (set {SKIP_MEMORY_CHECK_VARIABLE}=1 to try anyway)"
    )


# --------------------------------------------------------------------------- GPU


def gpu_fallback_notice(spec) -> str | None:
    """One line when models.toml asks for GPU layers this llama.cpp build cannot offload.

    `spec` is a `config.ModelSpec`. None when nothing was asked (the default
    picks the GPU only where there is one) or when the build can offload.
    """
    asked = spec.n_gpu_layers
    if asked is None or asked == 0 or gpu_offload_supported():
        return None
    layers = "all layers" if asked < 0 else f"{asked} layers"
    return (
        f"model {spec.name!r}: n_gpu_layers asks for {layers} on the GPU, but this llama.cpp build has no GPU "
        "support, so it runs on the CPU; reinstall llama-cpp-python with CMAKE_ARGS=\"-DGGML_CUDA=on\" "
        "(or -DGGML_METAL=on), see docs/models.md"
    )


# --------------------------------------------------------------------------- the file


def check_gguf_for_llama(path: Path | str, name: str | None = None) -> GgufInfo:
    """The header checks, as one CoolfusionError line, before llama.cpp sees the file.

    `read_gguf_info` already refuses files that are not GGUF, of an unknown
    version, or truncated; this adds what llama.cpp needs to build a
    vocabulary, which it otherwise reports only in its log.
    """
    path = Path(path)
    prefix = f"model {name!r}: " if name else ""
    try:
        info = read_gguf_info(path)
    except GgufError as error:
        raise CoolfusionError(f"{prefix}{error}") from None
    if not info.architecture:
        raise CoolfusionError(
            f"{prefix}{path} has no general.architecture in its GGUF metadata; it is not a complete model "
            "file, convert it again with a current llama.cpp"
        )
    if info.tokenizer_model is None:
        raise CoolfusionError(
            f"{prefix}{path} has no tokenizer (tokenizer.ggml.model is missing); "
            "convert it again with its tokenizer files"
        )
    if info.tokenizer_model not in KNOWN_TOKENIZER_MODELS:
        raise CoolfusionError(
            f"{prefix}{path} uses the tokenizer {info.tokenizer_model!r}, which llama.cpp does not know; "
            "convert it again or update llama-cpp-python"
        )
    tokens = read_gguf_metadata(path, array_head=0).get("tokenizer.ggml.tokens")
    if info.tokenizer_model not in ("none", "no_vocab") and not getattr(tokens, "length", 0):
        raise CoolfusionError(
            f"{prefix}{path} has a tokenizer without tokens (tokenizer.ggml.tokens is missing); "
            "convert it again with its tokenizer files"
        )
    return info


def preflight(spec, path: Path | str) -> list[str]:
    """Every check before loading `spec` from `path`: raises one line, or returns notices to show."""
    check_gguf_for_llama(path, spec.name)
    check_fits_in_memory(path, spec.n_ctx, name=spec.name)
    notice = gpu_fallback_notice(spec)
    return [notice] if notice else []
