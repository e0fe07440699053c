"""Errors as OpenAI sends them: `{"error": {"message", "type", "code", "param"}}`.

Clients (the `openai` package, Open WebUI, editors) show `message` to the
user, so it is one line written for them, like every CoolfusionError.
"""

from __future__ import annotations

import logging
import re

from starlette.responses import JSONResponse

log = logging.getLogger("coolfusion.serve")

# Any URL: a served member's address may carry credentials (userinfo, query).
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_body(message: str, type: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, error.type, error.code, error.param),
        status_code=error.status,
        headers=error.headers,
    )


def answer_failure(error: str | None, failed_model: str | None) -> str:
    """What a client is told about a failed answer (AnswerDone.error): nothing of a served member's upstream.

    A served member's error names its server's URL (which may hold
    credentials) and repeats the server's own words: that goes to the
    server log, the client gets the member's name. Any other error keeps
    its text, with URLs left out.
    """
    error = error or "the answer failed"
    if failed_model:
        log.warning("answer failed: %s", error)
        return f"the served model {failed_model!r} failed; the server's log has the details"
    return _URL.sub("<url>", error)
