"""The web application: ``create_app(settings)`` builds it; ``tongban serve`` runs it under uvicorn.

Every route parses its input, makes one engine call (or one read-side query) and renders; the rules live
in the engine. Errors: the engine's typed refusals and the web's own become JSON
``{"error": code, "message": …, "details": …}`` under ``/api`` and a page elsewhere, with the right
status: 404 not found (or not yours), 409 not allowed now / changed meanwhile, 422 bad input, 401/403,
413 too large, 429 too many log-ins, 503 with ``Retry-After`` when the database is busy or down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.engine import Engine
from orchestrator.engine.errors import Busy, Conflict, InvalidData, NotAllowed, NotFound, TongbanError
from orchestrator.settings import Settings, load_settings, make_engine

from .deps import LoginNeeded, Services, WebError
from .security import Signer, secret_key
from .templating import setup_templates

HERE = Path(__file__).resolve().parent
log = logging.getLogger("tongban.web")

STATUS = {NotFound: 404, NotAllowed: 409, Conflict: 409, InvalidData: 422, Busy: 503}


def create_app(settings: Settings | None = None, *, engine: Engine | None = None, scheduler: bool = False) -> FastAPI:
    """The app on the settings' database (or ``engine``'s). ``scheduler``: run the embedded scheduler
    (automatic steps, timers, notices) in this process, as the single-machine `tongban serve` does."""
    settings = settings or load_settings()
    engine = engine or make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        running = None
        if scheduler:
            from flows.embedded import start_scheduler

            running = start_scheduler(settings, engine=engine)
        try:
            yield
        finally:
            if running is not None:
                running.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="通办 Tongban API",
        version="1",
        description="Cross-department 一件事 cases: submit, accept, work the tasks, follow the case. See docs/api.md.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        swagger_ui_parameters={"defaultModelsExpandDepth": 0},
    )
    signer = Signer(secret_key(settings))
    templates = setup_templates(HERE / "templates", signer)
    app.state.services = Services(settings, engine, signer, templates)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _errors(app, templates)

    from .api import router as api_router
    from .pages import router as pages_router

    app.include_router(api_router)
    app.include_router(pages_router)

    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _wants_fragment(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _answer(
    request: Request,
    templates: Jinja2Templates,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict | None = None,
) -> Response:
    if _is_api(request):
        return JSONResponse({"error": code, "message": message, "details": details}, status, headers=headers)
    if _wants_fragment(request):  # htmx swaps it into the page's message area
        response = templates.TemplateResponse(
            request,
            "_error_fragment.html",
            {"status": status, "message": message, "details": details},
            status_code=200,
            headers=headers,
        )
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "code": code, "message": message, "details": details},
        status,
        headers=headers,
    )


def _errors(app: FastAPI, templates: Jinja2Templates) -> None:
    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, _exc: LoginNeeded) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if _wants_fragment(request):
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return _answer(request, templates, exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(TongbanError)
    async def engine_error(request: Request, exc: TongbanError) -> Response:
        status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 500)
        headers = None
        if isinstance(exc, Busy):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if status == 500:
            log.error("engine failure on %s %s: %s", request.method, request.url.path, exc)
        details = exc.problems if isinstance(exc, InvalidData) else None
        return _answer(request, templates, status, exc.code, exc.message, details, headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")),
                "problem": e.get("msg"),
            }
            for e in exc.errors()
        ]
        text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return _answer(request, templates, 422, "invalid_data", f"请求有误: {text}", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "页面不存在", 405: "不支持此请求方法"}
        return _answer(
            request,
            templates,
            exc.status_code,
            "http_" + str(exc.status_code),
            str(exc.detail)
            if exc.detail and exc.status_code not in messages
            else messages.get(exc.status_code, str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        from orchestrator.engine.unit import database_error

        typed = database_error(exc)  # a raw driver error that escaped: busy or down → 503
        if isinstance(typed, Busy):
            return _answer(request, templates, 503, "busy", typed.message, None, {"Retry-After": "1"})
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _answer(request, templates, 500, "internal", "服务器内部错误，已记录，请联系系统管理员")


class BodyLimit:
    """413 for a request body over ``limit`` bytes, whether it says its length or streams it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._too_large(scope, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        response = JSONResponse(
            {"error": "too_large", "message": f"the request body is larger than {self.limit} bytes", "details": None},
            413,
        )
        await response(scope, None, send)  # type: ignore[arg-type]


class _TooLarge(Exception):
    pass
