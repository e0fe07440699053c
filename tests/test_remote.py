"""Remote members against real HTTP servers: llama-cpp-python's server with the offline Qwen 0.5B.

Run under the shared lock (the server decodes on the same two cores):
    flock /tmp/cf-models.lock python -m pytest tests/test_remote.py
"""

from __future__ import annotations


import pytest

from coolfusion_local.config import parse_config
from coolfusion_local.fusion_engine import FusionEngine
from coolfusion_local.models import pypi
from coolfusion_local.engine.events import AnswerDone, Message, ModelLoaded, ModelLoadFailed, SegmentChosen
from conftest import OFFLINE_MODELS, REPO
from remote_servers import LlamaServer, serve_directory, serve_no_echo

pytestmark = pytest.mark.models

KEY = "cf-test-key-4711"
KEY_VARIABLE = "CF_TEST_REMOTE_KEY"
SYSTEM = Message("system", "Answer briefly.")
PROMPTS = [
    "What is 7 times 8?",
    "Name the capital of Italy.",
    "Write a Python expression that adds 2 and 3.",
]


@pytest.fixture(scope="module")
def qwen_server(offline_model_path):
    server = LlamaServer(offline_model_path("qwen-coder-0.5b"), api_key=KEY)
    yield server
    server.stop()


def remote_entry(url: str, **extra) -> dict:
    entry = {"name": "qwen-remote", "url": url, "model": "qwen", "pypi": OFFLINE_MODELS["qwen-coder-0.5b"],
             "n_ctx": 2048, "api_key_env": KEY_VARIABLE}
    return {**entry, **extra}


def local_entry(name: str) -> dict:
    return {"name": name, "pypi": OFFLINE_MODELS[name], "n_ctx": 2048}


def engine_for(*entries: dict) -> tuple[FusionEngine, list]:
    config = parse_config({"models": list(entries)}, REPO / "models.toml", offline_models=pypi.OFFLINE_MODELS)
    engine = FusionEngine(config)
    return engine, list(engine.load())


def answer(engine: FusionEngine, prompt: str, max_tokens: int = 24, mode: str | None = None) -> tuple[AnswerDone, list]:
    engine.forget_cached_text()
    events = list(engine.generate([SYSTEM, Message("user", prompt)], max_tokens=max_tokens, mode=mode))
    done = events[-1]
    assert isinstance(done, AnswerDone)
    return done, [e for e in events if isinstance(e, SegmentChosen)]


def test_server_killed_mid_answer_ends_it_with_one_line_and_keeps_the_text(offline_model_path, monkeypatch):
    server = LlamaServer(offline_model_path("qwen-coder-0.5b"))
    engine, _ = engine_for(remote_entry(server.url, api_key_env=None), local_entry("smollm2-135m"))
    try:
        engine.forget_cached_text()
        events = []
        for event in engine.generate([SYSTEM, Message("user", "Count from one to twenty in words.")], max_tokens=64):
            events.append(event)
            if isinstance(event, SegmentChosen) and server.process.poll() is None:
                server.stop()  # the server dies after the first segment
        done = events[-1]
        shown = "".join(e.text for e in events if isinstance(e, SegmentChosen))
        assert done.stop_reason == "error"
        assert "qwen-remote" in done.error and "\n" not in done.error
        assert done.failed_model == "qwen-remote"  # the chat marks it failing (test_tui_chat.py)
        assert shown and done.text == shown  # the partial answer is kept
        # The other member keeps working: solo answers still come.
        solo_events = list(engine.generate([Message("user", "Say hi.")], mode="solo:smollm2-135m", max_tokens=4))
        assert solo_events[-1].stop_reason in ("eos", "max_tokens")
    finally:
        server.stop()
        engine.close()


def test_wrong_key_fails_that_member_in_one_line_naming_the_variable(qwen_server, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "not-the-key")
    engine, loads = engine_for(remote_entry(qwen_server.url), local_entry("smollm2-135m"))
    try:
        failed = [e for e in loads if isinstance(e, ModelLoadFailed)]
        assert [e.model for e in failed] == ["qwen-remote"]
        assert KEY_VARIABLE in failed[0].reason and "not-the-key" not in failed[0].reason
        assert "\n" not in failed[0].reason and "401" in failed[0].reason
        assert engine.status("smollm2-135m").state == "loaded"
    finally:
        engine.close()


def test_server_down_at_load_fails_that_member_only(monkeypatch):
    from helpers import free_port

    engine, loads = engine_for(remote_entry(f"http://127.0.0.1:{free_port()}/v1", api_key_env=None),
                               local_entry("smollm2-135m"))
    try:
        failed = [e for e in loads if isinstance(e, ModelLoadFailed)]
        assert [e.model for e in failed] == ["qwen-remote"] and "connection refused" in failed[0].reason
        done, _ = answer(engine, "Say hi.", max_tokens=4)
        assert done.stop_reason in ("eos", "max_tokens")
    finally:
        engine.close()


def test_a_plain_http_server_is_refused_in_one_line(tmp_path):
    (tmp_path / "index.html").write_text("<html>hello</html>")
    server, url = serve_directory(tmp_path)
    engine, loads = engine_for(remote_entry(url, api_key_env=None))
    try:
        (failed,) = [e for e in loads if isinstance(e, ModelLoadFailed)]
        assert "OpenAI-compatible" in failed.reason and "\n" not in failed.reason
    finally:
        server.shutdown()
        engine.close()


def test_a_server_that_cannot_score_is_refused_in_one_line():
    server, url = serve_no_echo()
    engine, loads = engine_for(remote_entry(url, api_key_env=None))
    try:
        (failed,) = [e for e in loads if isinstance(e, ModelLoadFailed)]
        assert "cannot score" in failed.reason and "llama-server" in failed.reason and "\n" not in failed.reason
    finally:
        server.shutdown()
        engine.close()


def test_remote_qwen_fuses_like_local_qwen(qwen_server, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    remote, loads = engine_for(remote_entry(qwen_server.url), local_entry("smollm2-135m"))
    assert sum(isinstance(e, ModelLoaded) for e in loads) == 2, loads
    local, _ = engine_for(local_entry("qwen-coder-0.5b"), local_entry("smollm2-135m"))
    try:
        # Alone, the served model writes exactly what the same GGUF writes here (proposals carry no workaround).
        # (Few tokens: llama-cpp-python's server spends ~0.5 s on each token's logprobs on 2 cores.)
        for prompt in PROMPTS[:1]:
            remote_solo, _ = answer(remote, prompt, max_tokens=8, mode="solo:qwen-remote")
            local_solo, _ = answer(local, prompt, max_tokens=8, mode="solo:qwen-coder-0.5b")
            assert remote_solo.text == local_solo.text
        same = 0
        for prompt in PROMPTS:
            remote_done, segments = answer(remote, prompt, max_tokens=10)
            local_done, _ = answer(local, prompt, max_tokens=10)
            assert remote_done.stop_reason in ("eos", "max_tokens"), remote_done.error
            assert remote_done.text == "".join(s.text for s in segments)
            assert {s.winner for s in segments} <= {"qwen-remote", "smollm2-135m"}
            same += remote_done.text == local_done.text
            print(f"{prompt!r}: remote {remote_done.text!r} local {local_done.text!r}")
            # The remote member's own token state spells the shared answer.
            model = remote.member("qwen-remote").model
            assert model.detokenize(model.answer_tokens).decode() == remote_done.text
        assert same == len(PROMPTS)
    finally:
        remote.close()
        local.close()
