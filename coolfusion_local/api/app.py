"""The ASGI app: `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/health`.

A request is validated, given a place in the worker's queue (or a 429), and
its answer is awaited: whole, or streamed as server-sent events in OpenAI's
chunk shape ending with `data: [DONE]`. Errors found before the first answer
text (a prompt longer than every context, a conversation a chat template
refuses), after however many notices, are proper 4xx responses: a stream
starts only once its answer's text does. An answer a shutdown cut short never
passes for a finished one: a 503, or a stream's last chunk is an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from ..engine import AnswerDone, AnswerReranked, Notice, SegmentChosen, SoloTextDelta
from ..engine.modes import mode_named
from ..fusion_engine import FusionEngine
from .browser import BrowserGuard
from .catalog import Catalog
from .errors import ApiError, answer_failure, error_body, error_response
from .guards import ApiKeyGuard, BodySizeCap, has_key
from .schemas import ChatCompletionRequest, CompletionRequest, _Generation
from .shapes import ResponseShape, answer_extra, finish_reason, segment_extra, usage
from .worker import END, Busy, EngineWorker, Job, ShuttingDown

log = logging.getLogger("coolfusion.serve")

DISCONNECT_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None = None
    max_waiting: int = 8  # requests waiting behind the one being answered
    max_body_bytes: int = 1_048_576
    cors_origins: tuple[str, ...] = ()
    host: str = "127.0.0.1"  # the bound address: a Host header naming it is this server
    allowed_hosts: tuple[str, ...] = ()  # more names this server is reached by (--allow-host)


class ClientGone(Exception):
    pass


def create_app(engine: FusionEngine, settings: ServeSettings) -> FastAPI:
    """The app, with its engine worker started; `app.state.worker.shutdown()` ends it."""
    app = FastAPI(title="coolfusion", docs_url=None, redoc_url=None, openapi_url=None)
    catalog = Catalog(engine)
    worker = EngineWorker(engine, settings.max_waiting)
    worker.start()
    app.state.worker = worker

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return error_response(error)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        return error_response(ApiError(error.status_code, f"{request.method} {request.url.path}: {error.detail}",
                                       code=code, headers=dict(error.headers or {})))

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> Response:
        log.exception("unhandled error in %s", request.url.path)
        return error_response(ApiError(500, f"internal error: {type(error).__name__}", type="server_error"))

    @app.get("/health")
    async def health(request: Request) -> dict:
        if settings.api_key and not has_key(request.headers.get("authorization", ""), settings.api_key):
            return {"status": "ok"}  # up or down only: the models and the queue are for key holders
        models = {name: engine.status(name).state for name in engine.model_names}
        return {"status": "ok", "models": models, **worker.state()}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return catalog.listing()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _answer(request, await _parse(request, ChatCompletionRequest), chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _answer(request, await _parse(request, CompletionRequest), chat=False)

    async def _answer(request: Request, body: _Generation, *, chat: bool) -> Response:
        body.refuse_unsupported()
        mode = catalog.mode_for(body.model)
        messages = body.engine_messages()
        default_sampling = getattr(engine.config.fusion, "sampling", None)  # models.toml's, where configured
        try:
            job = worker.submit(messages, mode=mode, max_tokens=body.answer_limit(), stop=body.stops(),
                                sampling=body.sampling(default_sampling), fresh_cache=not body.cache_prompt)
        except Busy as busy:
            raise ApiError(429, f"the server is busy: {worker.max_waiting} requests are already waiting; "
                           f"retry after {busy.retry_after}s", type="rate_limit_error",
                           code="rate_limit_exceeded", headers={"Retry-After": str(busy.retry_after)}) from None
        except ShuttingDown:
            raise _shutting_down() from None
        shape = ResponseShape(body.model, chat)
        streaming = False
        try:
            # Notices may come first (one model answering alone, old turns left out):
            # a failure after them is still one before any text, so a 4xx, not a 200.
            opening = await _events_until_text(worker, job, request)
            _raise_if_failed_before_text(opening[-1])
            if body.stream:
                streaming = True  # from here on the stream's own end cancels the job
                return EventSourceResponse(_stream(worker, job, opening, shape, mode, body.include_usage), sep="\n",
                                           ping=10, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            return JSONResponse(await _whole(worker, job, opening, shape, request))
        except ClientGone:
            return Response(status_code=499)  # nobody reads it: the client left
        finally:
            if not streaming:
                worker.withdraw(job)  # an answer nobody will read must not hold the engine

    return _guarded(app, settings)


def _guarded(app: FastAPI, settings: ServeSettings):
    """The app inside its guards: browsers' Host, Origin and CORS outermost (preflights need no key),
    then the size cap, then the key."""
    if settings.api_key:
        app.add_middleware(ApiKeyGuard, key=settings.api_key)
    app.add_middleware(BodySizeCap, limit=settings.max_body_bytes)
    app.add_middleware(BrowserGuard, bound_host=settings.host, allowed_hosts=settings.allowed_hosts,
                       cors_origins=settings.cors_origins)
    return app


async def _parse(request: Request, model: type[BaseModel]):
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise _validation_error(error) from None


def _validation_error(error: ValidationError) -> ApiError:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first['ctx'].get('error', '')}".rstrip(": "),
                        code="invalid_json")
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "model_type":
        return ApiError(400, "the request body must be a JSON object", code="invalid_type")
    if first["type"] == "missing":
        return ApiError(400, f"{where} is required", code="missing_field", param=where)
    given = json.dumps(first.get("input"))[:60] if "input" in first else ""
    return ApiError(400, f"{where}: {first['msg']}" + (f" (got {given})" if given else ""),
                    code="invalid_value", param=where)


def _shutting_down(partial: bool = False) -> ApiError:
    what = "the server is shutting down" + (": the answer was stopped before its end" if partial else "")
    return ApiError(503, what, type="server_error", code="shutting_down")


async def _next_event(worker: EngineWorker, job: Job, request: Request) -> object:
    """The job's next event; while waiting, a client that leaves withdraws the job (ClientGone)."""
    getting = asyncio.ensure_future(job.events.get())
    while True:
        done, _ = await asyncio.wait({getting}, timeout=DISCONNECT_POLL_SECONDS)
        if done:
            return getting.result()
        if await request.is_disconnected():
            getting.cancel()
            worker.withdraw(job)
            raise ClientGone()


def _brings_text(event: object) -> bool:
    """Whether the answer has begun with this event (or ended: AnswerDone, END)."""
    if isinstance(event, (SegmentChosen, SoloTextDelta)):
        return bool(event.text)
    return event is END or isinstance(event, (AnswerDone, AnswerReranked))


async def _events_until_text(worker: EngineWorker, job: Job, request: Request) -> list[object]:
    """The events up to the first that brings text or ends the answer: the response's status depends on it."""
    events = [await _next_event(worker, job, request)]
    while not _brings_text(events[-1]):
        events.append(await _next_event(worker, job, request))
    return events


def _raise_if_failed_before_text(event: object) -> None:
    """The 4xx/5xx of an answer that ended before any text; nothing for one that began (or ended well)."""
    if event is END:
        raise _shutting_down()  # skipped before it started: only a shutdown does that
    if not isinstance(event, AnswerDone) or event.text:
        return
    if event.stop_reason == "stopped":
        raise _shutting_down()  # only a shutdown stops an answer whose client is still there
    if event.stop_reason == "context_full":
        raise ApiError(400, event.error or "the prompt does not fit any model's context",
                       code="context_length_exceeded", param="messages")
    if event.stop_reason == "error":
        error = answer_failure(event.error, event.failed_model)
        if error.startswith("internal error"):
            raise ApiError(500, error, type="server_error")
        raise ApiError(400, error, code="generation_failed")


@dataclass
class _Outcome:
    """What an answer's events add up to, beside the text chunks a stream sends as they come."""

    segments: list[dict] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    reranked: AnswerReranked | None = None
    done: AnswerDone | None = None

    def take(self, event: object) -> None:
        if isinstance(event, SegmentChosen):
            self.segments.append({"text": event.text, **segment_extra(event)})
        elif isinstance(event, Notice):
            self.notices.append(event.message)
        elif isinstance(event, AnswerReranked):
            self.reranked = event
        elif isinstance(event, AnswerDone):
            self.done = event

    def failure(self) -> ApiError | None:
        if self.done is None:  # the server is shutting down and skipped this answer
            return _shutting_down()
        if self.done.stop_reason == "stopped":  # cut by a shutdown: it must not pass for a whole answer
            return _shutting_down(partial=True)
        if self.done.stop_reason == "error":
            return ApiError(500, answer_failure(self.done.error, self.done.failed_model), type="server_error")
        return None

    def extra(self) -> dict:
        return {**answer_extra(self.done, self.reranked), "notices": self.notices}


async def _whole(worker: EngineWorker, job: Job, opening: list[object], shape: ResponseShape,
                 request: Request) -> dict:
    outcome = _Outcome()
    for event in opening:
        outcome.take(event)
    event = opening[-1]
    while event is not END:
        event = await _next_event(worker, job, request)
        outcome.take(event)
    failure = outcome.failure()
    if failure is not None:
        raise failure
    done = outcome.done
    extra = {**outcome.extra(), "segments": outcome.segments}
    return shape.whole(done.text, finish_reason(done.stop_reason), _usage(done), extra)


def _usage(done: AnswerDone) -> dict:
    """Both counts in the lead's tokens, of the prompt as the lead read it (old turns left out to fit are not in it)."""
    return usage(done.stats.prompt_tokens, done.stats.answer_tokens)


async def _stream(worker: EngineWorker, job: Job, opening: list[object], shape: ResponseShape, mode: str,
                  include_usage: bool):
    """SSE data lines: a role chunk, one chunk per segment, a finish chunk, [DONE].

    Cool+R's answer is known only once every answer is written and reranked,
    so that mode sends the chosen answer in one chunk at the end. An answer
    that fails or is stopped by a shutdown once the stream is open ends with
    an error chunk instead of a finish chunk.
    """
    whole_at_end = mode_named(mode).whole_at_end
    outcome = _Outcome()
    try:
        if shape.chat:
            yield json.dumps(shape.chunk(None, first=True))
        waiting = list(opening)
        event = waiting.pop(0)
        while event is not END:
            if isinstance(event, SegmentChosen) and event.text and not whole_at_end:
                yield json.dumps(shape.chunk(event.text, extra=segment_extra(event)), ensure_ascii=False)
            outcome.take(event)
            event = waiting.pop(0) if waiting else await job.events.get()
        failure, done = outcome.failure(), outcome.done
        if failure is not None:
            yield json.dumps(_error_body(failure))
        else:
            if whole_at_end and done.text:
                yield json.dumps(shape.chunk(done.text), ensure_ascii=False)
            yield json.dumps(shape.chunk(None, finish_reason(done.stop_reason), outcome.extra()))
            if include_usage:
                yield json.dumps(shape.usage_chunk(_usage(done)))
        yield "[DONE]"
    finally:
        worker.withdraw(job)  # the client left mid-stream (or the answer is over: then it changes nothing)


def _error_body(error: ApiError) -> dict:
    return error_body(error.message, error.type, error.code, error.param)
