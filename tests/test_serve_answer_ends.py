"""How `coolfusion serve` reports answers that fail before their text or are cut by a shutdown.

The real ASGI app, driven in-process through a minimal ASGI client, with a
stand-in engine that replays scripted event lists: what is tested is the
app's reading of the engine's events (status codes, error bodies, stream
chunks), not fusion. The same cases against the real models and the real
server are in test_serve.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

import pytest

from coolfusion_local.api import ServeSettings, create_app
from coolfusion_local.engine.events import AnswerDone, GenerationStats, Notice, SegmentChosen
from api_standin import JSON, call
from scripted_engine import FakeSpec, FakeStatus

HOLD = object()  # in a script: the answer waits here until it is cancelled (a shutdown)

ALONE = Notice("only alpha is loaded: it answers alone")
DROPPED = Notice("the conversation is longer than a model's context: the 2 oldest messages were left out")
TOO_LONG = "the message takes 9000 tokens, more than model 'alpha' holds (2048); shorten it or raise n_ctx"
REFUSED = "model 'alpha': the chat template refused the conversation: roles must alternate"


def segment(index: int, text: str) -> SegmentChosen:
    return SegmentChosen(index=index, text=text, winner="alpha", proposers=("alpha",), candidates={}, scores={},
                         decision="solo", ends_answer=False, seconds=0.01)


def done(text: str, reason: str, error: str | None = None, *, prompt_tokens: int = 0,
         answer_tokens: int = 0) -> AnswerDone:
    return AnswerDone(text, reason, GenerationStats(mode="solo", answer_tokens=answer_tokens,
                                                    prompt_tokens=prompt_tokens), error)


class StandInEngine:
    """What the app uses of FusionEngine; `generate` replays `script` (events, and HOLD)."""

    def __init__(self, script: list):
        self.script = script
        self.mode = "cool"
        self.config = SimpleNamespace(fusion=SimpleNamespace(sampling=None))
        self.model_names = ["alpha"]
        self._status = {"alpha": FakeStatus(FakeSpec("alpha"), "loaded")}
        self.holding = threading.Event()  # set when the answer reaches HOLD

    def status(self, name: str) -> FakeStatus:
        return self._status[name]

    def forget_cached_text(self) -> None:
        pass

    def generate(self, messages, *, mode=None, max_tokens=None, stop=None, sampling=None, loop_guard=None,
                 cancel=None):
        text = ""
        for event in self.script:
            if event is HOLD:
                self.holding.set()
                cancel.wait(30)
                yield done(text, "stopped")  # as the engine ends a cancelled answer: the text so far
                return
            if isinstance(event, SegmentChosen):
                text += event.text
            yield event


async def post(app, body: dict, path: str = "/v1/chat/completions") -> tuple[int, bytes]:
    """One request through the ASGI app: (status, body)."""
    reply = await call(app, "POST", path, json.dumps(body).encode(), JSON)
    return reply.status, reply.body


def sse_payloads(body: bytes) -> list[str]:
    return [line[5:].strip() for line in body.decode().splitlines() if line.startswith("data:")]


def request(stream: bool = False, **fields) -> dict:
    return {"model": "coolfusion", "messages": [{"role": "user", "content": "hi"}], "stream": stream, **fields}


@pytest.fixture
def serve():
    """serve(script) -> the app over a stand-in engine; every worker is shut down after the test."""
    apps = []

    def make(script: list):
        engine = StandInEngine(script)
        app = create_app(engine, ServeSettings())
        apps.append(app)
        return app, engine

    yield make
    for app in apps:
        app.state.worker.shutdown()
        app.state.worker.join(5)


# --------------------------------------------------------------------------- failures before any text (issue 18.1)


FAILURES_AFTER_NOTICES = [
    pytest.param([ALONE, done("", "context_full", TOO_LONG)], 400, "context_length_exceeded", TOO_LONG,
                 id="too-long-one-model-loaded"),
    pytest.param([ALONE, DROPPED, done("", "context_full", TOO_LONG)], 400, "context_length_exceeded", TOO_LONG,
                 id="too-long-after-two-notices"),
    pytest.param([ALONE, done("", "error", REFUSED)], 400, "generation_failed", REFUSED, id="template-refusal"),
    pytest.param([ALONE, segment(0, ""), done("", "context_full", TOO_LONG)], 400, "context_length_exceeded",
                 TOO_LONG, id="after-an-empty-segment"),
    pytest.param([ALONE, done("", "error", "internal error: KeyError")], 500, None, "internal error: KeyError",
                 id="a-bug-stays-a-500"),
]


@pytest.mark.parametrize("script, status, code, message", FAILURES_AFTER_NOTICES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_failure_before_any_text_is_an_error_response_after_any_notices(serve, script, status, code,
                                                                               message, stream):
    app, _ = serve(script)
    got, body = await post(app, request(stream))
    assert got == status, body  # a stream too: the error comes before it opens with a 200
    error = json.loads(body)["error"]
    assert error["message"] == message and error["code"] == code
    assert error["type"] == ("invalid_request_error" if status == 400 else "server_error")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_notices_then_text_is_a_normal_answer_with_the_notices(serve, stream):
    app, _ = serve([ALONE, segment(0, ""), segment(1, "Hello"), segment(2, " there."), done("Hello there.", "eos")])
    got, body = await post(app, request(stream))
    assert got == 200
    if not stream:
        reply = json.loads(body)
        assert reply["choices"][0]["message"]["content"] == "Hello there."
        assert reply["coolfusion"]["notices"] == [ALONE.message]
        return
    payloads = sse_payloads(body)
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert payloads[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello there."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["coolfusion"]["notices"] == [ALONE.message]


async def test_an_answer_that_ends_empty_without_failing_is_a_200(serve):
    app, _ = serve([ALONE, done("", "eos")])
    got, body = await post(app, request())
    assert got == 200 and json.loads(body)["choices"][0]["message"]["content"] == ""


# --------------------------------------------------------------------------- answers cut by a shutdown (issue 18.13)


async def shut_down_when_held(app, engine) -> None:
    await asyncio.to_thread(engine.holding.wait, 30)
    app.state.worker.shutdown()


@pytest.mark.parametrize("script", [
    pytest.param([ALONE, segment(0, "Once upon"), HOLD], id="after-text"),
    pytest.param([ALONE, HOLD], id="before-text"),
])
async def test_a_whole_answer_cut_by_a_shutdown_is_a_503(serve, script):
    app, engine = serve(script)
    (got, body), _ = await asyncio.gather(post(app, request()), shut_down_when_held(app, engine))
    assert got == 503, body  # was: 200, the partial text and finish_reason "stop"
    error = json.loads(body)["error"]
    assert error["code"] == "shutting_down" and error["type"] == "server_error"


async def test_a_stream_cut_by_a_shutdown_ends_with_an_error_chunk_not_a_finish(serve):
    app, engine = serve([ALONE, segment(0, "Once"), segment(1, " upon"), HOLD])
    (got, body), _ = await asyncio.gather(post(app, request(True)), shut_down_when_held(app, engine))
    assert got == 200
    payloads = sse_payloads(body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[-1]["error"]["code"] == "shutting_down" and "choices" not in chunks[-1]
    assert not any(c["choices"][0]["finish_reason"] for c in chunks[:-1])
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == "Once upon"


async def test_a_stream_stopped_before_its_first_text_is_a_503_not_a_stream(serve):
    app, engine = serve([ALONE, HOLD])
    (got, body), _ = await asyncio.gather(post(app, request(True)), shut_down_when_held(app, engine))
    assert got == 503 and json.loads(body)["error"]["code"] == "shutting_down"


# --------------------------------------------------------------------------- usage (issue 18, minor)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_usage_counts_the_prompt_the_engine_read(serve, stream):
    """The engine's count of the prompt it read (old turns left out), not one of every message sent."""
    app, _ = serve([DROPPED, segment(0, "Hi."), done("Hi.", "eos", prompt_tokens=37, answer_tokens=2)])
    got, body = await post(app, request(stream, stream_options={"include_usage": True} if stream else None))
    assert got == 200
    usage = json.loads(body)["usage"] if not stream else json.loads(sse_payloads(body)[-2])["usage"]
    assert usage == {"prompt_tokens": 37, "completion_tokens": 2, "total_tokens": 39}
