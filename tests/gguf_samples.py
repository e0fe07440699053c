"""Tiny GGUF files for tests, written with the `gguf` package's own writer."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np


def write_tiny_gguf(
    path: Path,
    *,
    arch: str = "llama",
    name: str = "tiny test model",
    tokens: list[str] | None = None,
    chat_template: str | None = "{{ messages[0]['content'] }}",
    file_type: int = 15,
    big_endian: bool = False,
    extra_floats: int = 0,
) -> Path:
    tokens = tokens if tokens is not None else [f"tok{i}" for i in range(300)]
    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(str(path), arch, endianess=endian)
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(2048)
    writer.add_block_count(2)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("tiny")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    embedding = np.arange(len(tokens) * 8, dtype=np.float32).reshape(len(tokens), 8)
    writer.add_tensor("token_embd.weight", embedding)
    if extra_floats:  # bulk, for files that must be larger than a download chunk
        writer.add_tensor("output.weight", np.ones(extra_floats, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def tiny_gguf_bytes(tmp_path: Path, **options) -> bytes:
    return write_tiny_gguf(tmp_path / "made.gguf", **options).read_bytes()


def with_version(data: bytes, version: int) -> bytes:
    return data[:4] + struct.pack("<I", version) + data[8:]
