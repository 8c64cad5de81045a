"""The HTTP API and web page in front of Triton.

Routes: ``POST /v1/ask`` (answers through Triton), ``POST /v1/feedback`` and
``GET /v1/feedback/export`` (durable thumbs up/down), ``GET /healthz`` (process alive),
``GET /readyz`` (Triton ready, model loaded), ``GET /metrics`` (Prometheus), ``GET /`` (the page).

Every error is JSON ``{"error": ..., "field": ...}``: bad input is 4xx naming the field; Triton down
or not ready is 503 with ``Retry-After``; the database down is 503 too. Nothing a client sends
produces a 500.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from mlops.serving.body_limit import BodySizeLimit
from mlops.serving.docs_html import render
from mlops.serving.feedback import FeedbackStore, StoreUnavailable
from mlops.serving.gateway import TritonFailed, TritonGateway, TritonUnavailable
from mlops.serving.prometheus import ApiMetrics, MetricsMiddleware
from mlops.serving.schemas import Answer, AskRequest, AskResponse, ErrorBody, FeedbackCreated, FeedbackRequest

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "index.html"
RETRY_AFTER_S = 5
# The page runs its own script and style only: documentation HTML, sanitised as it is, can run nothing.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


class ApiConfig(BaseModel):
    triton_url: str = Field(description="host:port of Triton's HTTP endpoint")
    model_name: str
    database_url: str
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    triton_timeout_s: float = Field(10.0, gt=0)


def _error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=message, field=field).model_dump(), status_code=status, headers=headers)


def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problem = exc.errors()[0]
    if problem["type"] == "json_invalid":
        return _error(400, f"the request body is not valid JSON: {problem.get('ctx', {}).get('error', problem['msg'])}", "body")
    location = [str(part) for part in problem["loc"] if part != "body"]
    field = ".".join(location) or "body"
    return _error(422, f"{field}: {problem['msg']}", field)


def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail), "body" if exc.status_code == 413 else None, headers=exc.headers)


def _answer(found: dict) -> Answer:
    """One answer of Triton's reply for the client: its documentation rendered, the highlight marked (a version
    exported before the answer view sends no docstring, and so no html)."""
    highlight = found.get("highlight")
    span = (highlight["start"], highlight["end"]) if highlight else None
    html, example = render(found["docstring"], span, found.get("docs_url")) if found.get("docstring") is not None else (None, None)
    return Answer.model_validate({**found, "html": html, "example": example})


def create_app(config: ApiConfig) -> FastAPI:
    metrics = ApiMetrics()
    gateway = TritonGateway(config.triton_url, config.model_name, timeout_s=config.triton_timeout_s)
    store = FeedbackStore(config.database_url)  # fails here, before serving, on a bad DATABASE_URL
    page = PAGE.read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()
            store.close()

    app = FastAPI(title="Transformers QA", version="1", lifespan=lifespan,
                  exception_handlers={RequestValidationError: _validation_error, HTTPException: _http_error})
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: it also sees the 413s
    app.state.store = store
    app.state.metrics = metrics

    def unavailable(e: TritonUnavailable) -> JSONResponse:
        metrics.triton_errors.labels("unavailable").inc()
        return _error(503, str(e), headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.post("/v1/ask", response_model=AskResponse, responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    async def ask(body: AskRequest):
        started = time.perf_counter()
        try:
            reply, version = await gateway.ask(body.question, body.top_k)
        except TritonUnavailable as e:
            return unavailable(e)
        except TritonFailed as e:
            metrics.triton_errors.labels("failed").inc()
            return _error(502, str(e))
        elapsed = time.perf_counter() - started
        metrics.answered(version, elapsed, reply["abstained"])
        return AskResponse(answers=[_answer(a) for a in reply["answers"]], abstained=reply["abstained"], reason=reply["reason"],
                           model_version=version, latency_ms=round(elapsed * 1000, 2))

    @app.post("/v1/feedback", status_code=201, response_model=FeedbackCreated, responses={422: {"model": ErrorBody}})
    def feedback(body: FeedbackRequest):
        # A plain def: FastAPI runs it in its thread pool, so the blocking commit never stalls /v1/ask.
        try:
            row_id = store.add(**body.model_dump())
        except StoreUnavailable as e:
            return _error(503, str(e), headers={"Retry-After": str(RETRY_AFTER_S)})
        metrics.feedback.labels(body.rating, body.model_version).inc()
        return FeedbackCreated(id=row_id)

    @app.get("/v1/feedback/export", response_class=StreamingResponse)
    def export_feedback():
        rows = store.export()
        try:
            first = next(rows, None)  # touch the database before the 200 goes out
        except StoreUnavailable as e:
            return _error(503, str(e), headers={"Retry-After": str(RETRY_AFTER_S)})

        def lines() -> Iterator[str]:
            if first is not None:
                yield json.dumps(first) + "\n"
                yield from (json.dumps(row) + "\n" for row in rows)

        return StreamingResponse(lines(), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": 'attachment; filename="feedback.jsonl"'})

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        ready, reason = await gateway.ready()
        if ready:
            return {"ready": True, "model": config.model_name}
        return JSONResponse({"ready": False, "error": reason}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app
