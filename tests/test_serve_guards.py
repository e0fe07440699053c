"""`coolfusion serve`'s HTTP side under hostile and unusual requests, with a stand-in engine (no model).

What the answers say is tested with the real models in test_serve.py; here it is
the queue, shutdown, the browser guards and refusals, which no model takes part in.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest
from api_standin import JSON, StandInEngine, app_with, call, chat_bytes

from coolfusion_local.engine import Message

TESTS = Path(__file__).resolve().parent


def hold_the_engine(worker):
    """A job that keeps the engine busy (the stand-in pauses before its first segment) until cancelled."""
    return worker.submit([Message("user", "hold")], mode=None, max_tokens=None, stop=None, sampling=None)


# --------------------------------------------------------------------------- the queue (issue 18, point 6)


def test_requests_that_leave_while_waiting_are_dropped_at_once_with_their_messages():
    engine = StandInEngine(pause_after=0)
    app = app_with(engine, max_waiting=2)
    worker = app.state.worker
    submitted: list[weakref.ref] = []
    submit = worker.submit

    def recording_submit(*args, **kwargs):
        job = submit(*args, **kwargs)
        submitted.append(weakref.ref(job))
        return job

    worker.submit = recording_submit

    async def scenario():
        held = hold_the_engine(worker)
        big = "x" * 1_000_000
        replies = [await call(app, "POST", "/v1/chat/completions", chat_bytes(big), JSON, leave=True)
                   for _ in range(12)]
        assert [r.status for r in replies] == [499] * 12  # each was admitted (no 429), then left
        gc.collect()
        kept = [ref for ref in submitted[1:] if ref() is not None]
        assert kept == [], f"{len(kept)} withdrawn requests (1 MB each) are still held"
        assert worker.state() == {"busy": True, "waiting": 0, "max_waiting": 2}
        worker.withdraw(held)
        return held

    held = asyncio.run(scenario())
    worker.shutdown()
    worker.join(10)
    assert held.cancel.is_set() and not worker._thread.is_alive()


def test_shutdown_ends_the_running_answer_and_answers_the_waiting_ones_503():
    engine = StandInEngine(pause_after=1)
    app = app_with(engine, max_waiting=2)
    worker = app.state.worker

    async def scenario():
        running = asyncio.create_task(call(app, "POST", "/v1/chat/completions", chat_bytes(), JSON))
        waiting = asyncio.create_task(call(app, "POST", "/v1/chat/completions", chat_bytes(), JSON))
        while worker.state()["waiting"] < 1:
            await asyncio.sleep(0.01)
        worker.shutdown()
        return await running, await waiting

    running, waiting = asyncio.run(scenario())
    worker.join(10)
    # An answer cut by the shutdown never passes for a whole one (test_serve_answer_ends.py).
    assert running.status == 503 and running.json()["error"]["code"] == "shutting_down"
    assert waiting.status == 503 and waiting.json()["error"]["code"] == "shutting_down"


# --------------------------------------------------------------------------- shutdown (point 7)

SIGNAL_WHILE_LOCKED = textwrap.dedent("""
    import asyncio, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import uvicorn
    from api_standin import app_with
    from coolfusion_local.api.server import StoppingServer

    app = app_with()
    worker = app.state.worker
    server = StoppingServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"),
                            worker)

    async def signal_while_locked():
        while not server.started:
            await asyncio.sleep(0.01)
        with worker._lock:  # as inside submit, withdraw or state() when the signal lands
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200_000):  # Python runs the handler in here, on this thread
                pass
        print("handler returned", flush=True)

    async def main():
        poke = asyncio.create_task(signal_while_locked())
        await server.serve()
        await poke

    asyncio.run(main())
    worker.join(10)
    print("worker stopped" if not worker._thread.is_alive() else "worker still running", flush=True)
""")


def test_a_signal_that_lands_while_the_worker_lock_is_held_still_stops_the_server():
    # Before: the handler took the worker's (non-reentrant) lock held by the very thread it
    # interrupted, and the process hung forever. The timeout bounds the wait for that hang.
    try:
        result = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_LOCKED, str(TESTS)], capture_output=True,
                                text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the server deadlocked in its signal handler")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["handler returned", "worker stopped"], result.stdout + result.stderr


# --------------------------------------------------------------------------- web pages (point 8)


def reply_to(headers: dict, method: str = "POST", **settings):
    app = app_with(**settings)
    try:
        body = chat_bytes(max_tokens=4) if method == "POST" else b""
        path = "/v1/chat/completions" if method != "GET" else "/v1/models"
        return asyncio.run(call(app, method, path, body, headers))
    finally:
        app.state.worker.shutdown()


def test_a_text_plain_post_from_a_foreign_page_is_refused():
    # The confirmed case: a page on evil.example whose name resolves to 127.0.0.1.
    reply = reply_to({"host": "evil.example:8080", "origin": "http://evil.example:8080", "content-type": "text/plain"})
    assert reply.status == 403 and reply.json()["error"]["code"] == "host_not_allowed"
    assert "--allow-host evil.example" in reply.json()["error"]["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_post_body_must_say_json(content_type):
    reply = reply_to({"content-type": content_type} if content_type else {})
    assert reply.status == 415 and reply.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("host, settings", [
    ("127.0.0.1:8080", {}), ("localhost:8080", {}), ("LOCALHOST", {}), ("[::1]:8080", {}),
    ("192.168.1.5:8080", {"host": "0.0.0.0"}),  # an address cannot be rebound
    ("mybox:8080", {"host": "mybox"}), ("host.docker.internal:8080", {"allowed_hosts": ("host.docker.internal",)}),
    ("any.example", {"allowed_hosts": ("*",)}),
])
def test_hosts_this_server_is_reached_by_pass(host, settings):
    reply = reply_to({"host": host, **JSON}, **settings)
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("host", ["evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io:8080"])
def test_other_host_names_are_refused(host):
    reply = reply_to({"host": host, **JSON}, host="0.0.0.0")
    assert reply.status == 403 and reply.json()["error"]["code"] == "host_not_allowed"


def test_a_foreign_origin_is_refused_unless_cors_allows_it():
    page = {"origin": "https://app.example", **JSON}
    refused = reply_to(page)
    assert refused.status == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    assert "--cors https://app.example" in refused.json()["error"]["message"]
    assert reply_to({"origin": "null", **JSON}).status == 403  # sandboxed frames, file:// pages
    allowed = reply_to(page, cors_origins=("https://app.example",))
    assert allowed.status == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert reply_to({"origin": "http://127.0.0.1:8080", **JSON}).status == 200  # the server's own origin
    assert reply_to({"origin": "https://other.example", **JSON}, cors_origins=("*",)).status == 200


OPENAI_JS_PREFLIGHT = {
    "origin": "https://app.example", "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type,x-stainless-arch,x-stainless-lang,"
                                      "x-stainless-os,x-stainless-package-version,x-stainless-retry-count,"
                                      "x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout",
}


def test_the_openai_js_sdk_preflight_passes_for_an_allowed_origin_without_a_key():
    reply = reply_to(OPENAI_JS_PREFLIGHT, "OPTIONS", cors_origins=("https://app.example",), api_key="k")
    assert reply.status == 204, reply.body
    assert reply.headers["access-control-allow-origin"] == "https://app.example"
    allowed = {h.strip() for h in reply.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-stainless-os", "x-stainless-retry-count"} <= allowed
    assert "POST" in reply.headers["access-control-allow-methods"]
    refused = reply_to(OPENAI_JS_PREFLIGHT, "OPTIONS", cors_origins=("https://other.example",))
    assert refused.status == 403 and "access-control-allow-origin" not in refused.headers


def test_an_allowed_page_reads_its_401_and_clients_outside_browsers_are_unchanged():
    keyed = reply_to({"origin": "https://app.example", **JSON}, cors_origins=("https://app.example",), api_key="k")
    assert keyed.status == 401 and keyed.headers["access-control-allow-origin"] == "https://app.example"
    assert reply_to(JSON).status == 200  # curl, the openai package: no Origin
    assert reply_to({}, "GET").status == 200


# --------------------------------------------------------------------------- refusals and values (points 10, 14)


@pytest.mark.parametrize("fields, param", [
    ({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
    ({"function_call": {"name": "f"}}, "function_call"),
    ({"response_format": {"type": "json_object"}}, "response_format"), ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"), ({"n": 2}, "n"),
])
def test_fields_that_would_change_the_answer_get_a_400_naming_them(fields, param):
    app = app_with()
    reply = asyncio.run(call(app, "POST", "/v1/chat/completions", chat_bytes(**fields), JSON))
    app.state.worker.shutdown()
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["param"] == param and reply.json()["error"]["type"] == "invalid_request_error"


def test_neutral_values_of_those_fields_are_answered():
    app = app_with()
    body = chat_bytes(logprobs=False, n=1, response_format={"type": "text"}, tool_choice="none")
    reply = asyncio.run(call(app, "POST", "/v1/chat/completions", body, JSON))
    app.state.worker.shutdown()
    assert reply.status == 200 and reply.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("raw, param", [('"repeat_penalty": 1e400', "repeat_penalty"),
                                        ('"top_k": 4294967297', "top_k"), ('"seed": 4294967296', "seed")])
def test_sampling_values_past_what_llama_cpp_takes_get_a_400(raw, param):
    engine = StandInEngine()
    app = app_with(engine)
    body = chat_bytes()[:-1] + b", " + raw.encode() + b"}"
    reply = asyncio.run(call(app, "POST", "/v1/chat/completions", body, JSON))
    app.state.worker.shutdown()
    assert reply.status == 400 and reply.json()["error"]["param"] == param, reply.body
    assert engine.calls == []  # never reached the engine (nor a served member as Infinity)
    json.loads(reply.body)
