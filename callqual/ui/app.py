"""The UI's FastAPI application: settings in, store connection per request, routers out.

``create_app`` is the only constructor; the CLI builds the settings (and, for a capture,
fills a temporary store first), tests pass an engine over a store they filled.
"""

import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from callqual.ui import security
from callqual.ui.rendering import make_templates
from callqual.ui.routes import api, exports, live, login, pages
from callqual.ui.settings import UiSettings
from callqual.ui.store_access import open_store


def create_app(settings: UiSettings, engine: Engine | None = None) -> FastAPI:
    """The app over ``engine``, or over a store it opens from the settings (and closes at shutdown)."""
    owned = engine is None
    store = engine if engine is not None else open_store(settings.store_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            store.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="callqual UI",
        summary="Calls, alerts and SIP messages from the call store",
        docs_url=None,  # Swagger UI loads its script from a CDN; the schema is at /api/openapi.json
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = store
    app.state.templates = make_templates()
    #: Bad requests by kind, reported on /healthz
    app.state.errors = Counter()
    #: Set when the server stops: live feeds end (see server.py)
    app.state.stopping = threading.Event()
    app.mount("/static", StaticFiles(directory=str(files("callqual.ui") / "static")), name="static")
    # Exports before pages: /calls/{id}.pcap must not be read as a call whose id ends in .pcap
    for module in (login, exports, live, api, pages):
        app.include_router(module.router)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        """A bad filter value is a 400 naming the field (counted), never a traceback."""
        app.state.errors["bad_request"] += 1
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "bad request", "errors": problems}, status_code=400)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        denied = _denied(settings, request)
        response = denied if denied is not None else await call_next(request)
        response.headers.setdefault("Content-Security-Policy", security.CONTENT_SECURITY_POLICY)
        for name, value in security.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


def _denied(settings: UiSettings, request: Request) -> Response | None:
    """None when the request may proceed; else 401 for the API, the login form for pages."""
    token = settings.token
    path = request.url.path
    if token is None or security.is_open(path):
        return None
    offered = security.bearer(request.headers.get("authorization"))
    if offered is not None and security.token_matches(token, offered):
        return None
    if security.session_matches(token, request.cookies.get(security.SESSION_COOKIE)):
        return None
    if path.startswith("/api/"):
        return JSONResponse(
            {"detail": "bearer token required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    return RedirectResponse(security.login_redirect(path), status_code=303)
