"""Errors as OpenAI sends them: `{"error": {"message", "type", "code", "param"}}`.

Clients (the `openai` package, Open WebUI, editors) show `message` to the
user, so it is one line written for them, like every CoolfusionError.
"""

from __future__ import annotations

from starlette.responses import JSONResponse


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
