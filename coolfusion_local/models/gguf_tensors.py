"""Each tensor's name and size in bytes, from a GGUF header (no weights read).

What the device fit (models/device_fit.py) weighs: llama.cpp places a model
layer by layer, so the bytes of each `blk.N.` layer and of the rest matter.
"""

from __future__ import annotations

from pathlib import Path

from .gguf_info import GgufError, _mapped, _open_header, _read_metadata


def read_tensor_sizes(path: Path) -> tuple[dict[str, object], dict[str, int]]:
    """(metadata with short arrays, {tensor name: bytes}); a tensor type unknown to
    the gguf package raises GgufError (its size cannot be told)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    data = _mapped(path)
    with data:
        header, _version, tensor_count, kv_count = _open_header(path, data)
        metadata = _read_metadata(header, kv_count, array_head=0)
        sizes: dict[str, int] = {}
        for _ in range(tensor_count):
            name = header.string()
            dims = [header.unpack("Q") for _ in range(header.unpack("I"))]
            ggml_type = header.unpack("I")
            header.unpack("Q")  # offset
            elements = 1
            for dim in dims:
                elements *= dim
            try:
                block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
            except (ValueError, KeyError):
                raise GgufError(f"{path}: tensor {name} has a type ({ggml_type}) this gguf package does not know") from None
            sizes[name] = elements // block_size * type_size
    return metadata, sizes
