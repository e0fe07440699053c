"""Whether this llama.cpp build can offload layers to a GPU."""

from __future__ import annotations

import functools


@functools.cache
def gpu_offload_supported() -> bool:
    try:  # deliberately lazy: reading models.toml (`--help`, config checks) must not load llama.cpp
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())
