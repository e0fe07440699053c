"""Sampling settings from models.toml and the command line: defaults, overrides, one-line errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coolfusion_local.fusion_engine import load_config
from coolfusion_local.engine.sampling import CHAT, GREEDY, Sampling
from models_env import REPO, Home, run_coolfusion

GOOD_MODEL = '[[models]]\nname = "qwen"\npypi = "qwen2.5-coder-0.5b-instruct"\n'


def write(tmp_path, text: str):
    toml = tmp_path / "models.toml"
    toml.write_text(text)
    return toml


def test_the_chat_defaults_are_what_llama_cpp_and_ollama_users_expect():
    assert (CHAT.temperature, CHAT.top_k, CHAT.top_p, CHAT.min_p) == (0.8, 40, 0.95, 0.05)
    assert (CHAT.repeat_penalty, CHAT.repeat_last_n, CHAT.seed) == (1.1, 64, None)
    assert GREEDY.greedy and not CHAT.greedy
    config = load_config(REPO / "models.toml")
    assert config.fusion.sampling == CHAT and config.fusion.loop_guard is True


def test_fusion_and_model_keys_set_sampling(tmp_path):
    config = load_config(write(tmp_path, GOOD_MODEL + "temperature = 0.5\n[fusion]\ntemperature = 0.7\ntop_k = 20\n"
                                         "top_p = 0.9\nmin_p = 0\nrepeat_penalty = 1.0\nrepeat_last_n = 32\n"
                                         "seed = 7\nloop_guard = false\n"))
    assert config.fusion.sampling == Sampling(0.7, 20, 0.9, 0.0, 1.0, 32, 7)
    assert config.fusion.loop_guard is False
    assert config.models[0].temperature == 0.5


def test_each_model_gets_its_own_seed_and_greedy_stays_greedy_for_all():
    answer = Sampling(temperature=0.8, seed=42)
    first, second = answer.for_model("a"), answer.for_model("b")
    assert first.seed != second.seed and first.seed == answer.for_model("a").seed
    assert answer.for_model("a", temperature=0.3).temperature == 0.3
    assert GREEDY.for_model("a", temperature=0.3) == GREEDY
    assert Sampling(temperature=0.8).with_seed().seed is not None
    assert Sampling(temperature=0.8, seed=5).with_seed().seed == 5


def test_the_status_summary_names_what_matters():
    assert GREEDY.summary() == "greedy" == replace(CHAT, temperature=0.0, seed=4).summary()
    assert Sampling(temperature=0.8, seed=3, repeat_penalty=1.1).summary() == (
        "temp 0.8 top-k 40 top-p 0.95 min-p 0.05 rep 1.1/64 seed 3"
    )


BAD = {
    "temperature-negative": ("[fusion]\ntemperature = -0.5\n", "temperature = -0.5 must be a finite number, 0 or above"),
    "top-p-zero": ("[fusion]\ntop_p = 0\n", "top_p 0 must be above 0 and at most 1"),
    "min-p-big": ("[fusion]\nmin_p = 2\n", "min_p 2 must be between 0 (off) and 1"),
    "penalty-zero": ("[fusion]\nrepeat_penalty = 0\n", "repeat_penalty 0 must be above 0"),
    "top-k-text": ('[fusion]\ntop_k = "many"\n', "top_k must be a whole number"),
    "top-k-past-int32": ("[fusion]\ntop_k = 4294967297\n", "top_k 4294967297 must be between 0 (off) and 2147483647"),
    "seed-negative": ("[fusion]\nseed = -1\n", "seed = -1 is too small"),
    "guard-text": ('[fusion]\nloop_guard = "yes"\n', "loop_guard must be true or false"),
    "model-temperature": ('temperature = "hot"\n', "model 'qwen': temperature must be a number"),
}


@pytest.mark.parametrize("text, expected", BAD.values(), ids=BAD.keys())
def test_a_bad_sampling_key_is_one_line_and_exit_2(tmp_path, text, expected):
    home = Home(tmp_path)
    toml = write(tmp_path, GOOD_MODEL + text)
    result = run_coolfusion(home, "models", "list", "--config", str(toml))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr, result.stderr


@pytest.mark.parametrize("args, expected", [
    (["generate", "--temperature", "-1", "hi"], "--temperature -1 must be 0 (greedy) or above"),
    (["generate", "--top-p", "1.5", "hi"], "--top-p 1.5 must be above 0 and at most 1"),
    (["generate", "--repeat-penalty", "inf", "hi"], "--repeat-penalty inf must be above 0 (1 = off), and finite"),
    (["generate", "--top-k", "4294967297", "hi"], "--top-k 4294967297 must be between 0 (off) and 2147483647"),
    (["eval", "gsm8k", "--data", "x.jsonl", "--seed", "3"], "--seed only matters with a --temperature above 0"),
])
def test_a_bad_sampling_flag_is_one_line_and_exit_2(tmp_path, args, expected):
    home = Home(tmp_path)
    toml = write(tmp_path, GOOD_MODEL)
    (tmp_path / "x.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    result = run_coolfusion(home, *args, "--config", str(toml))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert expected in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
