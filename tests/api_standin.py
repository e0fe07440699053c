"""The API app around a scripted stand-in engine, called as a server would call it (raw ASGI).

For what the HTTP side does (queue, guards, refusals) only: the stand-in fuses
nothing, so no test using it says anything about answers; those tests run a
real server with the real models (test_serve.py).
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from scripted_engine import ScriptedEngine
from serve_helpers import Reply

from coolfusion_local.api import ServeSettings, create_app

HOST = "127.0.0.1:8080"
JSON = {"content-type": "application/json"}


class StandInEngine(ScriptedEngine):
    """A ScriptedEngine with the one config value the app reads, its models loaded."""

    def __init__(self, **options):
        super().__init__(**options)
        self.config = SimpleNamespace(fusion=SimpleNamespace(sampling=None))
        for _ in self.load():
            pass


def chat_bytes(content: str = "hi", **fields) -> bytes:
    return json.dumps({"model": "coolfusion", "messages": [{"role": "user", "content": content}], **fields}).encode()


async def call(app, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, *,
               leave: bool = False) -> Reply:
    """One request; `leave`: the client disconnects once its body is sent (as a closed socket reads)."""
    headers = {"host": HOST, **(headers or {})}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
             "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000)}
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if leave:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # a client that stays: nothing more to read

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    reply_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return Reply(start["status"], reply_headers, b"".join(m.get("body", b"") for m in sent[1:]))


def app_with(engine: StandInEngine | None = None, **settings):
    engine = engine or StandInEngine()
    return create_app(engine, ServeSettings(**settings))
