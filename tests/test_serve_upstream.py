"""A served member's upstream details stay in the server log; `/health` without the key says up or down only.

The app is driven through ASGI with a stand-in engine whose answer fails the
way a served member's does (AnswerDone.failed_model set, the error naming the
member's URL): only the API's handling is under test, not fusion.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

from coolfusion_local.api.app import ServeSettings, create_app
from coolfusion_local.engine.events import AnswerDone, GenerationStats, SegmentChosen
import api_standin
from api_standin import JSON
from scripted_engine import ScriptedEngine

SECRET_URL = "http://user:hunter2@gpu-box:8000/v1?token=abc123"
UPSTREAM_ERROR = f"model 'big' ({SECRET_URL}): a proposal failed with HTTP 500: CUDA out of memory at 0x7f"
KEY = "serve-key-1"


class FailingEngine(ScriptedEngine):
    """Answers with `texts`, then fails as a served member 'big' does."""

    def __init__(self, texts: list[str]):
        super().__init__(names=("big", "small"))
        self.texts = texts
        self.config = SimpleNamespace(fusion=SimpleNamespace())  # no models.toml sampling

    def generate(self, messages, **_):
        for index, text in enumerate(self.texts):
            yield SegmentChosen(index=index, text=text, winner="big", proposers=("big",), candidates={}, scores={},
                                decision="solo", ends_answer=False, seconds=0.01)
        yield AnswerDone("".join(self.texts), "error", GenerationStats(mode="cool"), UPSTREAM_ERROR, "big")


def call(app, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    """One request through the ASGI app; the status and the whole body."""
    payload = json.dumps(body).encode() if body is not None else b""
    reply = asyncio.run(api_standin.call(app, method, path, payload, {**JSON, **(headers or {})}))
    return reply.status, reply.body


def app_for(engine, api_key: str | None = None):
    app = create_app(engine, ServeSettings(api_key=api_key))
    return app


def ask(app, stream: bool = False, headers: dict | None = None) -> tuple[int, bytes]:
    body = {"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return call(app, "POST", "/v1/chat/completions", body, headers)


def assert_no_upstream(body: bytes) -> None:
    for secret in ("hunter2", "abc123", "gpu-box", "CUDA", "http://"):
        assert secret.encode() not in body, body


def test_a_served_member_failing_before_any_text_names_the_member_only(caplog):
    app = app_for(FailingEngine([]))
    with caplog.at_level(logging.WARNING, logger="coolfusion.serve"):
        status, body = ask(app)
    assert status == 400
    assert_no_upstream(body)
    assert "'big'" in json.loads(body)["error"]["message"]
    assert UPSTREAM_ERROR in caplog.text  # the details are in the server's log
    app.state.worker.shutdown()


def test_a_served_member_failing_mid_answer_names_the_member_only_whole_and_streamed(caplog):
    app = app_for(FailingEngine(["Paris ", "is "]))
    status, body = ask(app)
    assert status == 500 and "'big'" in json.loads(body)["error"]["message"]
    assert_no_upstream(body)
    status, body = ask(app, stream=True)
    assert status == 200 and b"'big'" in body and b'"error"' in body
    assert_no_upstream(body)
    app.state.worker.shutdown()


def test_health_without_the_key_says_only_up():
    app = app_for(ScriptedEngine(names=("big", "small")), api_key=KEY)
    status, body = call(app, "GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, body = call(app, "GET", "/health", headers={"Authorization": "Bearer wrong"})
    assert json.loads(body) == {"status": "ok"}
    status, body = call(app, "GET", "/health", headers={"Authorization": f"Bearer {KEY}"})
    assert set(json.loads(body)["models"]) == {"big", "small"}
    app.state.worker.shutdown()
    open_app = app_for(ScriptedEngine(names=("big", "small")))  # no key configured: everything, as before
    assert "models" in json.loads(call(open_app, "GET", "/health")[1])
    open_app.state.worker.shutdown()
