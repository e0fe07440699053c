"""JSON over HTTP to an OpenAI-compatible server: one POST or GET, one clear line when it fails.

The standard library is enough for one request at a time (the fusion loop
waits for every answer before it goes on), so no HTTP package is added. One
keep-alive connection per server saves the TCP handshake on the dozens of
small requests a fused answer makes.

The API key is read from the environment variable the user named
(`api_key_env`) and only ever sent in the Authorization header: every error
message names the variable, never its value.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse

from ...errors import CoolfusionError


class RemoteError(CoolfusionError):
    """A served model failed: the message is one line naming the member and the server.

    `model` (CoolfusionError's) is the member's name, once a RemoteModel method let the error out.
    """


class ServerUnreachable(RemoteError):
    """No connection, a timeout, or a connection closed mid-answer."""


class HttpStatusError(RemoteError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class CompletionsClient:
    """Requests to one server's OpenAI-compatible API, with time spent in them counted."""

    def __init__(self, name: str, url: str, *, timeout_s: float = 60.0, api_key_env: str | None = None):
        self.name = name
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RemoteError(f"model {name!r}: url {url!r} is not an http:// or https:// address")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._base_path = parsed.path.rstrip("/")  # e.g. "/v1"
        self.timeout_s = timeout_s
        self.api_key_env = api_key_env
        self._api_key = None
        if api_key_env:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise RemoteError(
                    f"model {name!r}: api_key_env names {api_key_env}, which is not set; export it first"
                )
        self._connection: http.client.HTTPConnection | None = None
        self.requests = 0
        self.seconds = 0.0  # wall time inside requests (network + the server's compute)

    # ------------------------------------------------------------------ paths

    def api_path(self, endpoint: str) -> str:
        """`endpoint` under the configured base (".../v1" + "/completions")."""
        return self._base_path + endpoint

    def root_path(self, endpoint: str) -> str:
        """`endpoint` at the server's root: tokenize endpoints live beside /v1, not under it."""
        base = self._base_path
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base + endpoint

    # ------------------------------------------------------------------ requests

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout_s)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def post(self, path: str, body: dict, *, what: str) -> dict:
        return self._request("POST", path, json.dumps(body).encode("utf-8"), what=what)

    def get(self, path: str, *, what: str) -> dict:
        return self._request("GET", path, None, what=what)

    def _request(self, method: str, path: str, payload: bytes | None, *, what: str) -> dict:
        """One request; retried once only when a kept-alive connection had gone stale."""
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        where = f"model {self.name!r} ({self.url})"
        started = time.perf_counter()
        try:
            for attempt in (1, 2):
                fresh = self._connection is None
                connection = self._connect()
                try:
                    connection.request(method, path, body=payload, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self.close()
                    if fresh or attempt == 2:
                        raise
        except socket.timeout:
            self.close()
            raise ServerUnreachable(f"{where}: no answer to {what} within timeout_s = {self.timeout_s:g} s") from None
        except ConnectionRefusedError:
            self.close()
            raise ServerUnreachable(f"{where}: connection refused; is the server running?") from None
        except (http.client.HTTPException, OSError) as error:
            self.close()
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise ServerUnreachable(f"{where}: {what} failed: {reason}") from None
        finally:
            self.seconds += time.perf_counter() - started
            self.requests += 1
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        status = response.status
        if status in (401, 403):
            key = (
                f"check the key in {self.api_key_env}"
                if self.api_key_env
                else "the server wants an API key: name its environment variable with api_key_env"
            )
            raise HttpStatusError(f"{where}: the server refused the API key (HTTP {status}); {key}", status)
        if status >= 400:
            raise HttpStatusError(f"{where}: {what} failed with HTTP {status}: {_error_detail(data)}", status)
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RemoteError(f"{where}: {what} returned no valid JSON ({len(data)} bytes); "
                              "is this an OpenAI-compatible server?") from None
        if not isinstance(document, dict):
            raise RemoteError(f"{where}: {what} returned JSON that is not an object")
        return document


def _error_detail(data: bytes) -> str:
    """The server's own error message, in one short line."""
    text = data.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        error = document.get("error", document.get("detail", document.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            text = error if isinstance(error, str) else json.dumps(error)
    text = " ".join(text.split())
    return text[:200] + ("..." if len(text) > 200 else "") if text else "no details"
