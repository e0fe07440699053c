"""`coolfusion serve`: a real server on 127.0.0.1 with the real offline models, called as users call it.

Two servers per run, each loading its models once: `server` (the repository's
models.toml, no key, a short queue so the load test meets 429s) and
`keyed_server` (an API key, and a config with one model that cannot load).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import openai
import pytest

from serve_helpers import REPO, Reply, start_server, sse_data

pytestmark = pytest.mark.models

PROMPT = "What is 17 * 3? Answer in one sentence."
KEY = "test-key-4f1c9b"  # never a real secret: checks that it is not echoed


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    config = folder / "models.toml"
    # The shipped pair in cool mode, as these tests were written for (the shipped default became adaptive).
    config.write_text((REPO / "models.toml").read_text().replace('mode = "adaptive"', 'mode = "cool"', 1))
    server = start_server(folder, "--config", str(config), "--max-queue", "2")
    yield server
    assert server.stop(signal.SIGINT) == 0, server.stderr()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyed")
    (folder / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 60)  # a file that is not a model
    config = folder / "models.toml"
    config.write_text(
        '[[models]]\nname = "smollm2-135m"\npypi = "smollm2-135m-instruct"\n\n'
        '[[models]]\nname = "broken"\npath = "broken.gguf"\n',
        encoding="utf-8",
    )
    server = start_server(folder, "--config", str(config), "--api-key-env", "CF_TEST_KEY", env={"CF_TEST_KEY": KEY})
    yield server
    server.stop(signal.SIGKILL) if server.process.poll() is None else None


def chat_body(**fields) -> dict:
    return {"model": "coolfusion", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8,
            "temperature": 0, **fields}


def generate_json(*args: str) -> list[dict]:
    """`coolfusion generate --json`, greedy (where it samples by default, --temperature 0 says greedy)."""
    usage = subprocess.run([sys.executable, "-m", "coolfusion_local", "generate", "--help"],
                           capture_output=True, text=True, timeout=60, cwd=REPO).stdout
    greedy = ["--temperature", "0"] if "--temperature" in usage else []
    result = subprocess.run([sys.executable, "-m", "coolfusion_local", "generate", "--json", *greedy, *args],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


# --------------------------------------------------------------------------- the openai client


def test_models_list_names_every_mode_and_source_model(client, server):
    ids = [model.id for model in client.models.list()]
    assert ids == ["coolfusion", "coolfusion:cool", "coolfusion:cool+r", "coolfusion:adaptive",
                   "qwen-coder-0.5b", "smollm2-135m"]
    assert server.request("GET", "/v1/models").json()["missing"] == []


def test_chat_whole_answer_with_usage_and_winners(client):
    reply = client.chat.completions.create(model="coolfusion", messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": PROMPT}],
        max_tokens=12, temperature=0, extra_body={"cache_prompt": False})  # as a fresh `generate` process
    choice = reply.choices[0]
    # The answer is the engine's own greedy answer, word for word, as `coolfusion generate` writes it.
    records = generate_json("--mode", "cool", "--max-tokens", "12", "--system", "You are terse.", PROMPT)
    assert choice.message.role == "assistant" and choice.message.content == records[-1]["text"]
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 13
    extra = reply.model_extra["coolfusion"]
    assert extra["mode"] == "cool" and sum(extra["wins"].values()) == extra["segment_count"] == len(extra["segments"])
    assert "".join(s["text"] for s in extra["segments"]) == choice.message.content
    assert {s["winner"] for s in extra["segments"]} <= {"qwen-coder-0.5b", "smollm2-135m"}


def test_streamed_text_equals_coolfusion_generate(client):
    stream = client.chat.completions.create(model="coolfusion:cool", messages=[{"role": "user", "content": PROMPT}],
                                            max_tokens=24, temperature=0, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"cache_prompt": False})  # as a fresh `generate` process
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    segments = [c.model_extra["coolfusion"] for c in chunks if c.choices and c.choices[0].delta.content]
    records = generate_json("--mode", "cool", "--max-tokens", "24", PROMPT)
    assert text == records[-1]["text"]
    assert [s["winner"] for s in segments] == [r["winner"] for r in records[:-1] if r["text"]]
    assert finish == [{"max_tokens": "length"}.get(records[-1]["stop_reason"], "stop")]
    assert chunks[-1].usage.completion_tokens == records[-1]["stats"]["answer_tokens"]


def test_raw_stream_is_openai_sse_ending_with_done(server):
    connection = server.connection()
    connection.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(stream=True, max_tokens=3)),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    payloads = list(sse_data(response))
    connection.close()
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    stop_reason = chunks[-1]["coolfusion"]["stop_reason"]
    assert stop_reason in ("max_tokens", "eos")
    assert chunks[-1]["choices"][0]["finish_reason"] == {"max_tokens": "length", "eos": "stop"}[stop_reason]


def test_completions_whole_and_streamed(client):
    whole = client.completions.create(model="coolfusion", prompt="Name a colour.", max_tokens=6, temperature=0)
    assert whole.object == "text_completion" and whole.choices[0].text.strip()
    streamed = client.completions.create(model="coolfusion", prompt="Name a colour.", max_tokens=6, temperature=0,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text


def test_a_source_model_alone_and_cool_plus_r(client):
    solo = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": PROMPT}],
                                          max_tokens=6)
    assert set(solo.model_extra["coolfusion"]["wins"]) == {"smollm2-135m"}
    reranked = client.chat.completions.create(model="coolfusion:cool+r", messages=[
        {"role": "user", "content": PROMPT}], max_tokens=6, stream=True, temperature=0,
        extra_body={"cache_prompt": False})
    chunks = list(reranked)
    assert chunks[-1].model_extra["coolfusion"]["reranked"] in ("fused", "qwen-coder-0.5b", "smollm2-135m")
    # Cool+R's answer is the one `coolfusion generate --mode cool+r` picks, word for word.
    records = generate_json("--mode", "cool+r", "--max-tokens", "6", PROMPT)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == records[-1]["text"]


def test_max_tokens_is_a_cap_whole_and_streamed(client):
    """The last segment is cut at the limit: Qwen writes pi in 16-token segments, and max_tokens 1 gave all 16."""
    digits = [{"role": "user", "content": "Write the first 50 decimal digits of pi as one number with no spaces."}]
    for limit in (1, 3):
        whole = client.chat.completions.create(model="coolfusion", messages=digits, max_tokens=limit, temperature=0)
        assert whole.usage.completion_tokens <= limit and whole.choices[0].finish_reason == "length"
        assert whole.choices[0].message.content and whole.model_extra["coolfusion"]["stop_reason"] == "max_tokens"
        chunks = list(client.chat.completions.create(model="coolfusion", messages=digits, max_tokens=limit,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
        assert chunks[-1].usage.completion_tokens <= limit


def test_sampling_fields_reach_the_engine(client):
    seeded = [client.chat.completions.create(model="coolfusion", messages=[{"role": "user", "content": "Say hi."}],
                                             max_tokens=6, temperature=0.8, top_p=0.9, seed=7,
                                             extra_body={"cache_prompt": False})
              .choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]  # the same seed, the same answer


def test_an_answer_the_loop_guard_ended_says_length_and_stop_reason_loop(client):
    # SmolLM2 alone, greedy, loops on this prompt (test_sampling.py): the guard ends it. A client must
    # not take the cut answer for a complete one, so finish_reason is "length", as for max_tokens.
    haiku = [{"role": "user", "content": "Write a haiku about autumn rain, then explain it in one sentence."}]
    whole = client.chat.completions.create(model="smollm2-135m", messages=haiku, max_tokens=160, temperature=0)
    assert whole.model_extra["coolfusion"]["stop_reason"] == "loop", whole.choices[0].message.content
    assert whole.choices[0].finish_reason == "length"
    streamed = list(client.chat.completions.create(model="smollm2-135m", messages=haiku, max_tokens=160,
                                                   temperature=0, stream=True))
    assert streamed[-1].choices[0].finish_reason == "length"
    assert streamed[-1].model_extra["coolfusion"]["stop_reason"] == "loop"


# --------------------------------------------------------------------------- concurrency


def test_load_8_clients_x_3_requests_answered_or_429(server):
    results: list[tuple[int, float, Reply]] = []
    lock = threading.Lock()

    def client_thread():
        for _ in range(3):
            started = time.monotonic()
            reply = server.request("POST", "/v1/chat/completions", chat_body(max_tokens=4), timeout=180)
            with lock:
                results.append((reply.status, time.monotonic() - started, reply))

    threads = [threading.Thread(target=client_thread) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert len(results) == 24
    answered = [r for status, _, r in results if status == 200]
    refused = [r for status, _, r in results if status == 429]
    assert len(answered) + len(refused) == 24 and answered and refused
    for reply in answered:
        assert reply.json()["choices"][0]["message"]["content"]
    for reply in refused:
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.json()["error"]["code"] == "rate_limit_exceeded"
    health = server.request("GET", "/health").json()
    assert health["busy"] is False and health["waiting"] == 0


def test_a_client_that_leaves_mid_stream_frees_the_engine(server):
    connection = server.connection()
    connection.request("POST", "/v1/chat/completions",
                       body=json.dumps(chat_body(stream=True, max_tokens=400,
                                                 messages=[{"role": "user", "content": "Write a long story."}])),
                       headers={"Content-Type": "application/json"})
    payloads = sse_data(connection.getresponse())
    assert "role" in json.loads(next(payloads))["choices"][0]["delta"]
    assert json.loads(next(payloads))["choices"][0]["delta"]["content"]
    left = time.monotonic()
    connection.sock.close()
    connection.close()
    # 400 tokens take about 15 s here; a stop within one segment frees the engine at once.
    while server.request("GET", "/health").json()["busy"]:
        assert time.monotonic() - left < 5, "the answer kept running after its client left"
        time.sleep(0.1)
    assert server.request("POST", "/v1/chat/completions", chat_body(max_tokens=2)).status == 200


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_type"),
    ({"model": "coolfusion"}, 400, "missing_field"),
    ({"model": "coolfusion", "messages": []}, 400, "invalid_value"),
    ({"model": "coolfusion", "messages": "hello"}, 400, "invalid_value"),
    ({"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "12"}, 400,
     "invalid_value"),
    ({"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}, 400,
     "invalid_value"),
    ({"model": "coolfusion", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "invalid_value"),
    ({"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], "n": 3}, 400, "unsupported_parameter"),
    ({"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], "top_k": 4294967297}, 400,
     "invalid_value"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
    ({"model": "coolfusion", "messages": [{"role": "user", "content": "word " * 6000}]}, 400,
     "context_length_exceeded"),
    (b"x" * 1_100_000, 413, "request_too_large"),
])
def test_bad_requests_get_an_openai_error_and_the_server_keeps_serving(server, body, status, code):
    reply = server.request("POST", "/v1/chat/completions", body)
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert error["message"] and "\n" not in error["message"] and error["type"] and error["code"] == code
    assert server.request("GET", "/health").json()["status"] == "ok"


def test_an_unknown_route_and_a_bad_completion_prompt(server):
    assert server.request("GET", "/v1/nothing").json()["error"]["code"] == "not_found"
    reply = server.request("POST", "/v1/completions", {"model": "coolfusion", "prompt": "  "})
    assert reply.status == 400 and reply.json()["error"]["param"] == "prompt"


@pytest.mark.parametrize("field, value", [
    ("logprobs", True), ("top_logprobs", 2), ("response_format", {"type": "json_object"}),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
    ("tool_choice", "required"), ("functions", [{"name": "f", "parameters": {"type": "object"}}]),
    ("function_call", {"name": "f"}), ("n", 2),
])
def test_the_openai_client_gets_a_400_naming_a_field_that_is_not_honoured(client, field, value):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="coolfusion", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2, **{field: value})
    assert caught.value.param == field and caught.value.type == "invalid_request_error"


def test_the_openai_client_with_those_fields_at_their_neutral_values_is_answered(client):
    reply = client.chat.completions.create(model="coolfusion", messages=[{"role": "user", "content": PROMPT}],
                                           max_tokens=3, temperature=0, logprobs=False, n=1,
                                           response_format={"type": "text"}, tool_choice="none")
    assert reply.choices[0].message.content


def test_the_openai_client_gets_a_400_for_sampling_values_llama_cpp_cannot_take(client):
    for field, value in (("top_k", 4294967297), ("repeat_last_n", 2**31)):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="coolfusion", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=2, extra_body={field: value})
        assert caught.value.param == field


def test_a_web_page_cannot_use_the_server(server):
    # As a page on evil.example (its name rebound to 127.0.0.1) would send it: no preflight needed.
    page = {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": f"evil.example:{server.port}"}
    assert server.request("POST", "/v1/chat/completions", chat_body(), headers=page).status == 403
    cross_origin = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    assert server.request("POST", "/v1/chat/completions", chat_body(), headers=cross_origin).status == 403
    plain = {"Content-Type": "text/plain"}
    assert server.request("POST", "/v1/chat/completions", chat_body(), headers=plain).status == 415


def test_the_openai_client_raises_its_own_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="tokens, more than model"):
        client.chat.completions.create(model="coolfusion", messages=[{"role": "user", "content": "word " * 6000}])


# --------------------------------------------------------------------------- keys, missing models, shutdown


def test_api_key_required_when_set_and_never_logged(keyed_server):
    assert keyed_server.request("GET", "/v1/models").status == 401
    wrong = keyed_server.request("GET", "/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert keyed_server.request("GET", "/health").status == 200
    keyed = openai.OpenAI(base_url=keyed_server.base_url, api_key=KEY, max_retries=0, timeout=120)
    reply = keyed.chat.completions.create(model="coolfusion", messages=[{"role": "user", "content": "Hi."}],
                                          max_tokens=3)
    assert reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed_server.base_url, api_key="bad", max_retries=0).models.list()
    assert KEY not in keyed_server.stderr()


def test_a_model_that_fails_to_load_is_listed_as_missing(keyed_server):
    headers = {"Authorization": f"Bearer {KEY}"}
    listing = keyed_server.request("GET", "/v1/models", headers=headers).json()
    assert [m["id"] for m in listing["missing"]] == ["broken"] and listing["missing"][0]["reason"]
    assert "smollm2-135m" in [m["id"] for m in listing["data"]]
    reply = keyed_server.request("POST", "/v1/chat/completions", chat_body(model="broken"), headers=headers)
    assert reply.status == 503 and reply.json()["error"]["code"] == "model_unavailable"


def test_a_failure_before_any_text_is_a_400_when_one_model_answers_alone(keyed_server):
    """One model loaded: a notice comes first, and the too-long prompt after it gave 200, empty, "length"."""
    keyed = openai.OpenAI(base_url=keyed_server.base_url, api_key=KEY, max_retries=0, timeout=120)
    too_long = [{"role": "user", "content": "word " * 6000}]
    with pytest.raises(openai.BadRequestError, match="tokens, more than model") as whole:
        keyed.chat.completions.create(model="coolfusion", messages=too_long, max_tokens=4)
    assert whole.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="tokens, more than model"):  # before the stream opens
        keyed.chat.completions.create(model="coolfusion", messages=too_long, max_tokens=4, stream=True)


def test_sigterm_ends_a_stream_in_flight_with_an_error_and_exits_0(keyed_server):
    """The stream's last chunk is an error, never a finish chunk a client would take for the whole answer."""
    keyed = openai.OpenAI(base_url=keyed_server.base_url, api_key=KEY, max_retries=0, timeout=120)
    stream = iter(keyed.chat.completions.create(model="coolfusion", max_tokens=400, temperature=0, stream=True,
                                                messages=[{"role": "user", "content": "Write a long story."}]))
    seen = [next(stream), next(stream)]
    keyed_server.process.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIError, match="shutting down"):
        seen += list(stream)
    assert not any(chunk.choices[0].finish_reason for chunk in seen)
    assert keyed_server.process.wait(30) == 0, keyed_server.stderr()


def test_sigterm_during_a_whole_answer_is_a_503_and_exits_0(tmp_path):
    """Whole answers are sent at their end: one cut by a shutdown is a 503, not a short answer with "stop"."""
    config = tmp_path / "models.toml"
    config.write_text('[[models]]\nname = "smollm2-135m"\npypi = "smollm2-135m-instruct"\n', encoding="utf-8")
    server = start_server(tmp_path, "--config", str(config))
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    outcome: dict = {}

    def ask() -> None:
        try:
            outcome["reply"] = client.chat.completions.create(
                model="coolfusion", max_tokens=400, temperature=0,
                messages=[{"role": "user", "content": "Write a long story."}])
        except openai.APIStatusError as error:
            outcome["error"] = error

    asking = threading.Thread(target=ask)
    asking.start()
    while not server.request("GET", "/health").json()["busy"]:
        assert asking.is_alive(), outcome
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    asking.join(60)
    assert "reply" not in outcome, outcome["reply"].choices[0]
    assert outcome["error"].status_code == 503 and outcome["error"].code == "shutting_down"
    assert server.process.wait(30) == 0, server.stderr()


def test_serve_help():
    result = subprocess.run([sys.executable, "-m", "coolfusion_local", "serve", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0
    for option in ("--host", "--port", "--config", "--api-key-env", "--cors", "--allow-host", "--max-queue"):
        assert option in result.stdout


def test_a_missing_key_variable_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "coolfusion_local", "serve", "--api-key-env", "CF_UNSET_VAR_X"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "CF_UNSET_VAR_X" in result.stderr
