"""The strongest model leads: `lead = true`, else weight, else GGUF parameter count, else file size.

The rule on its own, the parameter count read from GGUF headers (tiny files and
the real offline models), models.toml's `lead`, `coolfusion models list`, and
the real engine leading with the larger model although the smaller is listed first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import OFFLINE_MODELS, REPO
from gguf_samples import write_tiny_gguf
from models_env import Home, run_coolfusion

from coolfusion_local.config import parse_config
from coolfusion_local.models import pypi
from coolfusion_local.engine.lead import Standing, choose_lead, human_count, lead_reason
from coolfusion_local.errors import ConfigError
from coolfusion_local.models.gguf_info import read_gguf_info


def lead_of(*standings: Standing) -> tuple[str, str]:
    lead = choose_lead(standings)
    return lead.name, lead_reason(lead, standings)


def test_the_rule_in_order():
    small, big = Standing("small", parameters=135_000_000, file_size=100), Standing("big", parameters=494_000_000, file_size=90)
    assert lead_of(small, big) == ("big", "the most parameters (494M)")
    assert lead_of(Standing("a", file_size=10), Standing("b", file_size=20)) == ("b", "the largest file")
    assert lead_of(Standing("a", file_size=10), Standing("b", file_size=10)) == ("a", "listed first")
    heavier = Standing("small", weight=2.0, parameters=1)
    assert lead_of(heavier, big) == ("small", "the highest weight (2)")
    chosen = Standing("small", lead=True, parameters=1)
    assert lead_of(big, chosen) == ("small", "lead = true in models.toml")
    assert lead_of(small) == ("small", "the only model")
    # A model not on disk has no count yet: then file sizes (the expected download's) decide for all.
    assert lead_of(Standing("here", parameters=135_000_000, file_size=98), Standing("away", file_size=491)) == (
        "away", "the largest file")


def test_human_count():
    assert [human_count(n) for n in (None, 950, 134_515_008, 494_032_768, 3_212_749_888)] == [
        "?", "950", "135M", "494M", "3.2B"]


def test_parameter_count_comes_from_the_tensor_shapes(tmp_path):
    plain = read_gguf_info(write_tiny_gguf(tmp_path / "a.gguf", tokens=[f"t{i}" for i in range(300)]))
    assert plain.parameter_count == 300 * 8  # token_embd: 300 x 8
    bigger = read_gguf_info(write_tiny_gguf(tmp_path / "b.gguf", extra_floats=1000))
    assert bigger.parameter_count == 300 * 8 + 1000


def test_the_offline_models_parameter_counts(offline_model_path):
    """The header count is llama.cpp's n_params (what the engine leads by once loaded)."""
    from coolfusion_local.engine.source_model import SourceModel

    counts = {}
    for name in OFFLINE_MODELS:
        counts[name] = read_gguf_info(offline_model_path(name)).parameter_count
        model = SourceModel(name, offline_model_path(name), vocab_only=True)
        try:
            assert model.n_params == counts[name]
        finally:
            model.close()
    # Qwen2.5-Coder 0.5B stores its output matrix apart from the embeddings (151,936 x 896 twice): 630M.
    assert 600e6 < counts["qwen-coder-0.5b"] < 640e6
    assert 130e6 < counts["smollm2-135m"] < 140e6
    assert 260e6 < counts["gemma3-270m"] < 275e6


def models_toml(*entries: str) -> dict:
    import tomllib

    return tomllib.loads("".join(f'[[models]]\nname = "{e}"\npath = "{e}.gguf"\n' if "\n" not in e else e
                                 for e in entries))


def test_lead_in_models_toml_at_most_one(tmp_path):
    for name in "ab":
        write_tiny_gguf(tmp_path / f"{name}.gguf")
    config = parse_config(models_toml("a", '[[models]]\nname = "b"\npath = "b.gguf"\nlead = true\n'), tmp_path / "m.toml",
                          offline_models=pypi.OFFLINE_MODELS)
    assert [m.lead for m in config.models] == [False, True]
    two = models_toml('[[models]]\nname = "a"\npath = "a.gguf"\nlead = true\n',
                      '[[models]]\nname = "b"\npath = "b.gguf"\nlead = true\n')
    with pytest.raises(ConfigError, match="lead = true on 'a', 'b'; only one model can lead"):
        parse_config(two, tmp_path / "m.toml", offline_models=pypi.OFFLINE_MODELS)
    with pytest.raises(ConfigError, match="lead"):
        parse_config(models_toml('[[models]]\nname = "a"\npath = "a.gguf"\nlead = "yes"\n'), tmp_path / "m.toml",
                     offline_models=pypi.OFFLINE_MODELS)


def test_models_list_names_the_lead_and_why(tmp_path):
    home = Home(tmp_path)
    write_tiny_gguf(tmp_path / "small.gguf")
    write_tiny_gguf(tmp_path / "large.gguf", extra_floats=5000)
    toml = tmp_path / "models.toml"
    toml.write_text('[[models]]\nname = "small"\npath = "small.gguf"\n[[models]]\nname = "large"\npath = "large.gguf"\n')
    result = run_coolfusion(home, "models", "list", "--config", str(toml))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:4]}
    assert rows["large"][-1] == "lead" and rows["small"][-1] == "partner"
    assert rows["large"][5:7] == ["7K", "llama"] and rows["small"][5] == "2K"  # after SIZE's "0 MB"
    assert "lead: large, the most parameters (7K); lead = true on another model" in result.stdout

    toml.write_text(toml.read_text().replace('path = "small.gguf"\n', 'path = "small.gguf"\nlead = true\n'))
    result = run_coolfusion(home, "models", "list", "--config", str(toml))
    assert "lead: small, lead = true in models.toml\n" in result.stdout


@pytest.mark.models
def test_the_larger_model_leads_although_listed_second(tmp_path):
    """smollm2-135m first in the file, qwen-coder-0.5b second: qwen leads, and --json says so."""
    toml = tmp_path / "models.toml"
    toml.write_text("".join(f'[[models]]\nname = "{name}"\npypi = "{OFFLINE_MODELS[name]}"\n'
                            for name in ("smollm2-135m", "qwen-coder-0.5b")))

    def generate(config: Path) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "coolfusion_local", "generate", "--config", str(config), "--json",
             "--max-tokens", "8", "What is 2 + 2?"],
            capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])["stats"]

    stats = generate(toml)
    assert stats["lead"] == "qwen-coder-0.5b"
    # answer_tokens count the lead's tokens: the same as qwen's own count.
    assert stats["answer_tokens"] == stats["tokens_per_model"]["qwen-coder-0.5b"]

    toml.write_text(toml.read_text().replace('pypi = "smollm2-135m-instruct"\n', 'pypi = "smollm2-135m-instruct"\nlead = true\n'))
    assert generate(toml)["lead"] == "smollm2-135m"


def test_the_models_panel_names_the_lead_among_the_models_taking_part():
    from coolfusion_local.config import ModelSpec
    from coolfusion_local.tui.messages import ModelView
    from coolfusion_local.tui.model_facts import ModelFacts
    from coolfusion_local.tui.screens.models import lead_of

    def view(name, state, **spec):
        return ModelView(name, state, spec=ModelSpec(name=name, pypi=name, **spec))

    facts = {"small": ModelFacts(parameters=135_000_000), "big": ModelFacts(parameters=630_000_000),
             "huge": ModelFacts(parameters=3_000_000_000), "broken": ModelFacts(parameters=9_000_000_000)}
    views = [view("small", "loaded"), view("big", "loaded"), view("huge", "disabled"), view("broken", "failed")]
    assert lead_of(views, facts) == ("big", "the most parameters (630M)")
    views[0] = view("small", "loaded", lead=True)
    assert lead_of(views, facts) == ("small", "lead = true in models.toml")
