"""What a GGUF file holds, read from its header without loading any weights.

The `gguf` package's GGUFReader builds a numpy view of every field, which took
7-9 s on the 152k/262k-token vocabularies of our offline models. This reader
walks the header with `struct` over a memory map and keeps only the first few
items of each long array, so `coolfusion models list` stays instant.

Layout (GGUF v2/v3): magic "GGUF", u32 version, u64 tensor count, u64 metadata
count, the metadata key/values, the tensor infos, then aligned tensor data.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import CoolfusionError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_DEFAULT_ALIGNMENT = 32

# GGUF metadata value types and their struct codes (8 = string, 9 = array).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {
    0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32",
    7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64",
}


class GgufError(CoolfusionError):
    """The file is not a usable GGUF model; the message says which and what to do."""


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array, kept as its length and first items."""

    element_type: str
    length: int
    head: tuple

    def __str__(self) -> str:
        shown = ", ".join(repr(item) for item in self.head)
        more = ", …" if self.length > len(self.head) else ""
        return f"[{shown}{more}] ({self.length:,} {self.element_type})"


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    file_size: int
    version: int
    tensor_count: int
    architecture: str | None
    name: str | None
    file_type: int | None  # general.file_type, see `quant`
    quant: str | None  # file_type as llama.cpp names it, e.g. "Q4_K_M"
    vocab_size: int | None
    tokenizer_model: str | None  # "gpt2" (BPE), "llama" (SentencePiece), ...
    tokenizer_pre: str | None  # pre-tokenizer, e.g. "qwen2", "smollm"
    context_length: int | None  # trained context
    block_count: int | None  # transformer layers
    has_chat_template: bool
    parameter_count: int | None = None  # elements of all tensors, as llama.cpp counts n_params

    @property
    def tokenizer_family(self) -> str | None:
        """"gpt2/qwen2"-style label: models sharing it tokenize alike."""
        if self.tokenizer_model is None:
            return None
        return f"{self.tokenizer_model}/{self.tokenizer_pre}" if self.tokenizer_pre else self.tokenizer_model


class _Header:
    """A bounds-checked cursor over the mapped file."""

    def __init__(self, data: mmap.mmap | bytes, path: Path, order: str):
        self.data = data
        self.path = path
        self.order = order
        self.offset = 0

    def _truncated(self, need: int) -> GgufError:
        return GgufError(
            f"{self.path} is truncated: its GGUF header needs byte {need:,} but the file has "
            f"{len(self.data):,}; download or assemble it again"
        )

    def unpack(self, code: str):
        size = struct.calcsize(code)
        if self.offset + size > len(self.data):
            raise self._truncated(self.offset + size)
        (value,) = struct.unpack_from(self.order + code, self.data, self.offset)
        self.offset += size
        return value

    def skip(self, size: int) -> None:
        if self.offset + size > len(self.data):
            raise self._truncated(self.offset + size)
        self.offset += size

    def string(self) -> str:
        length = self.unpack("Q")
        start = self.offset
        self.skip(length)
        return bytes(self.data[start:self.offset]).decode("utf-8", errors="replace")

    def value(self, value_type: int, array_head: int):
        if value_type in _SCALARS:
            return self.unpack(_SCALARS[value_type])
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            return self.array(array_head)
        raise GgufError(f"{self.path}: unknown GGUF value type {value_type} at byte {self.offset:,}; "
                        "the file is damaged or from a newer llama.cpp")

    def array(self, head_size: int) -> ArraySummary:
        element_type = self.unpack("I")
        length = self.unpack("Q")
        head = tuple(self.value(element_type, head_size) for _ in range(min(length, head_size)))
        remaining = length - len(head)
        if element_type in _SCALARS:
            self.skip(remaining * struct.calcsize(_SCALARS[element_type]))
        elif element_type == _STRING:
            self._skip_strings(remaining)
        else:
            for _ in range(remaining):
                self.value(element_type, 0)
        return ArraySummary(_TYPE_NAMES.get(element_type, str(element_type)), length, head)

    def _skip_strings(self, count: int) -> None:
        # The hot loop for vocabularies (262k tokens): no decoding, one unpack per item.
        data, offset, end = self.data, self.offset, len(self.data)
        unpack_length = struct.Struct(self.order + "Q").unpack_from
        for _ in range(count):
            if offset + 8 > end:
                self.offset = offset
                raise self._truncated(offset + 8)
            offset += 8 + unpack_length(data, offset)[0]
        if offset > end:
            raise self._truncated(offset)
        self.offset = offset


def _open_header(path: Path, data: mmap.mmap | bytes) -> tuple[_Header, int, int, int]:
    if len(data) < 4 or data[:4] != GGUF_MAGIC:
        start = bytes(data[:4])
        hint = " (an HTML page: the download went wrong)" if start.lstrip().startswith(b"<") else ""
        raise GgufError(f"{path} is not a GGUF file (it starts with {start!r}{hint}); "
                        "point the config at a .gguf model file")
    order = "<"
    header = _Header(data, path, order)
    header.skip(4)
    version = header.unpack("I")
    if version & 0xFFFF == 0:  # a big-endian file (s390x builds) reads as a huge little-endian number
        header.order = ">"
        version = struct.unpack(">I", bytes(data[4:8]))[0]
    if version not in SUPPORTED_VERSIONS:
        raise GgufError(f"{path} is GGUF version {version}; only versions 2 and 3 are supported, "
                        "re-convert it with a current llama.cpp")
    tensor_count = header.unpack("Q")
    kv_count = header.unpack("Q")
    if kv_count > len(data) or tensor_count > len(data):
        raise GgufError(f"{path} has a damaged GGUF header (metadata count {kv_count:,}); download it again")
    return header, version, tensor_count, kv_count


def _read_metadata(header: _Header, kv_count: int, array_head: int) -> dict[str, object]:
    metadata: dict[str, object] = {}
    for _ in range(kv_count):
        key = header.string()
        value_type = header.unpack("I")
        metadata[key] = header.value(value_type, array_head)
    return metadata


def _check_tensor_data(header: _Header, tensor_count: int, metadata: dict[str, object]) -> int | None:
    """A file cut short after its header (an interrupted copy) fails here rather than inside llama.cpp.

    Returns the parameter count: the elements of every tensor (None without tensors).
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    data_end = 0
    parameters = 0
    sizes_known = True
    for _ in range(tensor_count):
        header.string()  # tensor name
        dims = [header.unpack("Q") for _ in range(header.unpack("I"))]
        ggml_type = header.unpack("I")
        offset = header.unpack("Q")
        elements = 1
        for dim in dims:
            elements *= dim
        parameters += elements
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        except (ValueError, KeyError):
            sizes_known = False  # a tensor type newer than our gguf package: size unknown, skip the check
            continue
        data_end = max(data_end, offset + elements // block_size * type_size)
    if not sizes_known:
        return parameters or None
    alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
    alignment = alignment if isinstance(alignment, int) and alignment > 0 else _DEFAULT_ALIGNMENT
    data_start = -(-header.offset // alignment) * alignment
    if data_start + data_end > len(header.data):
        raise GgufError(
            f"{header.path} is truncated: its tensors end at byte {data_start + data_end:,} but the file has "
            f"{len(header.data):,}; download or assemble it again"
        )
    return parameters or None


def _mapped(path: Path):
    path = Path(path)
    try:
        stream = path.open("rb")
    except IsADirectoryError:
        raise GgufError(f"{path} is a folder, not a GGUF file") from None
    except FileNotFoundError:
        raise GgufError(f"{path} does not exist") from None
    except PermissionError:
        raise GgufError(f"{path} is not readable; fix its permissions (chmod u+r)") from None
    with stream:
        if path.stat().st_size == 0:
            raise GgufError(f"{path} is empty, not a GGUF file; download or assemble it again")
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)


def read_gguf_metadata(path: Path, array_head: int = 8) -> dict[str, object]:
    """All metadata key/values; arrays longer than `array_head` are summarized."""
    data = _mapped(path)
    with data:
        header, version, tensor_count, kv_count = _open_header(Path(path), data)
        metadata = _read_metadata(header, kv_count, array_head)
    return {"GGUF.version": version, "GGUF.tensor_count": tensor_count, **metadata}


def read_gguf_info(path: Path) -> GgufInfo:
    """The facts a user compares models by, after checking magic, version and length."""
    path = Path(path)
    data = _mapped(path)
    with data:
        header, version, tensor_count, kv_count = _open_header(path, data)
        meta = _read_metadata(header, kv_count, array_head=0)
        parameter_count = _check_tensor_data(header, tensor_count, meta)
        file_size = len(data)
    architecture = _text(meta.get("general.architecture"))
    tokens = meta.get("tokenizer.ggml.tokens")
    file_type = meta.get("general.file_type")
    vocab_size = tokens.length if isinstance(tokens, ArraySummary) else meta.get(f"{architecture}.vocab_size")
    return GgufInfo(
        path=path,
        file_size=file_size,
        version=version,
        tensor_count=tensor_count,
        architecture=architecture,
        name=_text(meta.get("general.name")),
        file_type=file_type if isinstance(file_type, int) else None,
        quant=quant_name(file_type) if isinstance(file_type, int) else None,
        vocab_size=vocab_size if isinstance(vocab_size, int) else None,
        tokenizer_model=_text(meta.get("tokenizer.ggml.model")),
        tokenizer_pre=_text(meta.get("tokenizer.ggml.pre")),
        context_length=_int(meta.get(f"{architecture}.context_length")),
        block_count=_int(meta.get(f"{architecture}.block_count")),
        has_chat_template="tokenizer.chat_template" in meta,
        parameter_count=parameter_count,
    )


def kv_cache_bytes(meta: dict[str, object], n_ctx: int) -> int | None:
    """The f16 KV cache of `n_ctx` tokens: n_ctx x layers x KV heads x (key + value dims) x 2 bytes.

    Every layer keeps the full context (the engine sets swa_full; all
    sequences share one unified cache), so this is the whole cache. None when
    the header lacks the layer count or head sizes (or gives them per layer).
    """
    arch = meta.get("general.architecture")

    def number(key: str) -> int | None:
        return _int(meta.get(f"{arch}.{key}"))

    layers, heads, width = number("block_count"), number("attention.head_count"), number("embedding_length")
    kv_heads = number("attention.head_count_kv") or heads
    if not (layers and heads and width and kv_heads):
        return None
    key_dim = number("attention.key_length") or width // heads
    value_dim = number("attention.value_length") or width // heads
    return n_ctx * layers * kv_heads * (key_dim + value_dim) * 2


def quant_name(file_type: int) -> str:
    """llama.cpp's name for general.file_type, e.g. 15 -> "Q4_K_M"."""
    from gguf.constants import LlamaFileType

    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"type {file_type}"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
