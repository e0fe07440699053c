"""The devices llama.cpp offloads layers to (CUDA, Metal, Vulkan, ...), with their memory.

llama-cpp-python 0.3.36 binds no `ggml_backend_dev_*` function, but its
`llama_cpp._ggml` module has the ggml library those functions live in; they
are bound here with ctypes. llama.cpp's own choice is mirrored: every device
of type GPU, or the integrated GPUs when there is no discrete one (CPU and
accelerator devices such as AMX or BLAS hold no offloaded layers). Nothing here
depends on the backend: a CUDA, Metal or Vulkan build reports its devices alike.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

# enum ggml_backend_dev_type
_CPU, _GPU, _IGPU, _ACCEL = 0, 1, 2, 3


@dataclass(frozen=True)
class Device:
    name: str  # llama.cpp's name, e.g. "CUDA0", "Metal", "Vulkan0"
    description: str  # e.g. "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
    integrated: bool
    free: int  # bytes, as the backend reports them now
    total: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.description})" if self.description else self.name


@functools.cache
def _library():
    """The ggml library with the device functions typed, or None (no llama_cpp, or too old)."""
    try:
        import llama_cpp
        from llama_cpp import _ggml
    except ImportError:
        return None
    lib = _ggml.libggml
    try:
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_count.argtypes = []
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for text_function in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
            text_function.restype = ctypes.c_char_p
            text_function.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_memory.restype = None
        lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                                ctypes.POINTER(ctypes.c_size_t)]
    except AttributeError:
        return None
    llama_cpp.llama_backend_init()
    return lib


def offload_devices() -> list[Device]:
    """The devices llama.cpp puts offloaded layers on, in its order; [] for a CPU-only build or machine."""
    lib = _library()
    if lib is None:
        return []
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return []
    gpus, integrated = [], []
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        kind = lib.ggml_backend_dev_type(device)
        if kind not in (_GPU, _IGPU):
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        found = Device(
            (lib.ggml_backend_dev_name(device) or b"?").decode("utf-8", "replace"),
            (lib.ggml_backend_dev_description(device) or b"").decode("utf-8", "replace").strip(),
            kind == _IGPU, free.value, total.value,
        )
        (gpus if kind == _GPU else integrated).append(found)
    # llama.cpp adds integrated GPUs only where it found no discrete one.
    return gpus or integrated[:1]


def devices_label(devices: list[Device]) -> str:
    return " + ".join(device.label for device in devices) if devices else "CPU"


def offloaded_layers(requested: int, n_layers: int) -> tuple[int, str | None]:
    """How many of a model's n_layers + 1 layers (the output layer counts, as llama.cpp
    counts them) llama.cpp offloads for n_gpu_layers = `requested`, and onto what."""
    devices = offload_devices()
    if not devices or requested == 0:
        return 0, None
    total = n_layers + 1
    layers = total if requested < 0 else min(requested, total)
    return layers, devices_label(devices)


def placement_text(layers: int, total: int, device: str | None) -> str:
    """"25/25 layers on Vulkan0 (llvmpipe)", "12/31 layers on CUDA0 (...), the rest on the CPU"."""
    if not layers or not device:
        return "every layer on the CPU"
    rest = "" if layers >= total else ", the rest on the CPU"
    return f"{layers}/{total} layers on {device}{rest}"
