"""What a web page in the user's browser could do to a server on this machine, stopped first.

Any page the user opens can send requests to 127.0.0.1; without these checks it
could use the models (or, with a key in a client's storage, more):

* `Host` (DNS rebinding): a page on evil.example whose name is then made to
  resolve to 127.0.0.1 talks to this server as if it were its own origin, with
  `Host: evil.example:8080`. A Host that is an IP address (a rebinding needs a
  name), `localhost`, the name the server was bound to, or an `--allow-host`
  name passes; any other gets a 403.
* `Origin`: browsers name the page on cross-origin requests. One that is not
  this server's own and not allowed by `--cors` gets a 403, preflight or not.
  Clients outside browsers (curl, the `openai` package) send none.
* `Content-Type`: a page may POST `text/plain` without a preflight; every POST
  here must be `application/json` (415 otherwise).

For an origin `--cors` allows, this answers its preflights (any request
header: the page is trusted, and the openai JS SDK sends `x-stainless-*`
headers beside Authorization and Content-Type) and marks every response for it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

ALLOWED_METHODS = "GET, POST"
PREFLIGHT_MAX_AGE = "600"


def host_name(host_header: str) -> str:
    """The name or address in a Host header, without its port, lower-case: `[::1]:8080` -> `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":")[0]
    return host.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class BrowserGuard:
    def __init__(self, app: ASGIApp, *, bound_host: str, allowed_hosts: tuple[str, ...] = (),
                 cors_origins: tuple[str, ...] = ()):
        self.app = app
        self.host_names = {"localhost", host_name(bound_host)} | {host_name(h) for h in allowed_hosts}
        self.any_host = "*" in allowed_hosts
        self.origins = {origin.rstrip("/").lower() for origin in cors_origins}
        self.any_origin = "*" in cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        try:
            self._check_host(headers.get("host"))
            origin = self._foreign_origin(headers)
            if origin is not None and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                return await self._preflight(origin, headers)(scope, receive, send)
            self._check_content_type(scope["method"], headers.get("content-type"))
        except ApiError as error:
            return await error_response(error)(scope, receive, send)
        if origin is None:
            return await self.app(scope, receive, send)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._mark(MutableHeaders(scope=message), origin)
            await send(message)

        await self.app(scope, receive, send_marked)

    def _check_host(self, host: str | None) -> None:
        if host is None or self.any_host:  # no Host: HTTP/1.0, not a browser
            return
        name = host_name(host)
        if name in self.host_names or _is_address(name):
            return
        raise ApiError(403, f"Host {host!r} is not this server's address; if you reach it by that name, "
                       f"start it with --allow-host {name}", code="host_not_allowed")

    def _foreign_origin(self, headers: dict[str, str]) -> str | None:
        """The request's Origin when it is another site's and --cors allows it; None when same-site or absent."""
        origin = headers.get("origin")
        if origin is None:
            return None
        if origin != "null" and urlsplit(origin).netloc.lower() == headers.get("host", "").lower():
            return None  # the server's own origin
        if self.any_origin or origin.rstrip("/").lower() in self.origins:
            return origin
        raise ApiError(403, f"requests from web pages at {origin} are refused; to allow that page, start the "
                       f"server with --cors {origin}", code="origin_not_allowed")

    @staticmethod
    def _check_content_type(method: str, content_type: str | None) -> None:
        if method != "POST":
            return
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise ApiError(415, f"send the body as JSON with 'Content-Type: application/json' "
                           f"(got {content_type or 'no Content-Type'})", code="unsupported_media_type")

    def _preflight(self, origin: str, headers: dict[str, str]) -> Response:
        response = Response(status_code=204)
        self._mark(response.headers, origin)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        requested = headers.get("access-control-request-headers")
        if requested:
            response.headers["Access-Control-Allow-Headers"] = requested
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    def _mark(self, headers: MutableHeaders, origin: str) -> None:
        headers["Access-Control-Allow-Origin"] = "*" if self.any_origin else origin
        headers["Access-Control-Expose-Headers"] = "Retry-After"
        headers.add_vary_header("Origin")
