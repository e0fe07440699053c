"""What stands before the routes: the API key and the request size cap (pure ASGI).

The key is compared in constant time and never logged or echoed. `/health`
answers without a key, as llama.cpp's server does: then it says only whether
the server is up (the route checks the key itself with `has_key`).
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

OPEN_PATHS = {"/health"}


def has_key(authorization: str | bytes, key: str) -> bool:
    """Whether an Authorization header carries `key` (constant-time)."""
    given = authorization.encode() if isinstance(authorization, str) else authorization
    return hmac.compare_digest(given, f"Bearer {key}".encode())


class ApiKeyGuard:
    def __init__(self, app: ASGIApp, key: str):
        self.app = app
        self._key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if not has_key(dict(scope["headers"]).get(b"authorization", b""), self._key):
            error = ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            return await error_response(error)(scope, receive, send)
        await self.app(scope, receive, send)


class BodySizeCap:
    """Refuse bodies over `limit` bytes with a 413, whether Content-Length says so or not.

    The body is read here (up to the limit) and replayed to the app, so a
    chunked upload cannot go past the cap either; after the body, `receive`
    goes straight to the server again, so disconnects are still seen.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            body += message.get("body", b"")
            if len(body) > self.limit:
                return await self._refuse(scope, receive, send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(413, f"the request body is larger than {self.limit} bytes", code="request_too_large")
        await error_response(error)(scope, receive, send)
