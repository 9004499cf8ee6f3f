"""The FastAPI application: `create_app(model, gallery, settings)`.

Errors all leave in one JSON shape, `{"error": {"code": ..., "message": ...}}`, whatever raised
them (a route, request validation, an unknown URL, an oversized body).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import GalleryError, ImageError, LibraryNotFoundError, NoFaceError
from .guard import RequestGuardMiddleware, error_response
from .memory import IdleTrim, configure_malloc
from .service import ApiError, Service
from .settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class BodyTooLarge(HTTPException):
    """Raised while reading a request body that passes the upload limit."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body too large (the limit is {limit / 2**20:g} MB)")


class BodyTimeout(HTTPException):
    """Raised when a request body stops arriving for longer than the server waits."""

    def __init__(self, seconds: float):
        super().__init__(408, f"the request body stopped arriving (nothing for {seconds:g} s)")


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes: by Content-Length before reading anything, and
    while reading (chunked uploads), so an oversized upload is never held in full; and bodies
    that stop arriving for `timeout` seconds (408), so a stalled client holds nothing for good."""

    def __init__(self, app, limit: int, timeout: float):
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                response = error_response(400, "bad_request", "invalid Content-Length header")
                return await response(scope, receive, send)
            if int(length) > self.limit:
                exc = BodyTooLarge(self.limit)
                response = error_response(413, "payload_too_large", exc.detail)
                return await response(scope, receive, send)
        received, complete = 0, False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # after the body: a wait for the client's disconnect, unbounded
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


class SecurityHeadersMiddleware:
    """nosniff, no-referrer and no framing on every response; the page's Content-Security-Policy
    on the page and everything under /static (an HTML file there is the page too)."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    PAGE_HEADERS = [(b"content-security-policy", PAGE_CSP.encode())]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        path = scope.get("path", "")
        wanted = self.HEADERS
        if path == "/" or path.startswith("/static/"):
            wanted = [*wanted, *self.PAGE_HEADERS]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in wanted if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(model, gallery=None, settings: Settings | None = None) -> FastAPI:
    """The web service over one loaded model and an optional open gallery.

    model: a `facenet.FaceNet`; gallery: a `facenet.gallery.Gallery` made with that model (or
    None: the gallery endpoints answer 404 `no_gallery`). The caller keeps ownership of both and
    closes the gallery after the server stops. It sets the process's malloc mmap threshold
    (see `memory`), so that memory returns to the system after large requests.
    """
    from . import library, migration, routes

    settings = settings or Settings()
    configure_malloc()  # process-wide: large blocks go back to the system when freed
    locked = settings.api_key_all  # the schema and docs need the key too
    app = FastAPI(
        title="facenet",
        summary="Face recognition: embed, verify, identify and cluster faces; manage a gallery.",
        version="1",
        openapi_url=None if locked else f"{API_PREFIX}/openapi.json",
        docs_url=None if locked else f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.service = Service(model, gallery, settings)
    app.state.settings = settings
    app.state.inference = ThreadPoolExecutor(settings.workers, thread_name_prefix="facenet-infer")
    app.state.admission = asyncio.Semaphore(settings.workers)  # requests reading photos at once
    app.state.idle_trim = IdleTrim()
    app.include_router(routes.router, prefix=API_PREFIX)
    app.include_router(migration.router, prefix=API_PREFIX)
    app.include_router(library.router, prefix=API_PREFIX)
    _install_error_handlers(app)
    if locked:
        _install_locked_docs(app, routes.read_access)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    app.add_middleware(RequestGuardMiddleware, settings.allowed_hosts, settings.cors_origins)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "X-Requested-With"],
        )
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_upload_bytes, timeout=settings.body_timeout
    )
    return app


def _install_locked_docs(app: FastAPI, read_access) -> None:
    """The schema and the interactive docs behind the API key (--api-key-all)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    guarded = [Depends(read_access)]

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False, dependencies=guarded)
    async def docs():
        return get_swagger_ui_html(openapi_url=f"{API_PREFIX}/openapi.json", title="facenet")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and str(exc.detail).startswith("Too many files"):
            # the form parser's own cap (settings.PARSER_MAX_FILES), met before --max-files
            limit = request.app.state.settings.max_files
            message = f"too many photos; the limit is {limit} a request"
            return error_response(413, "too_many_files", message)
        code = getattr(exc, "code", None) or HTTP_CODES.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
            problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg"))
        return error_response(422, "validation_error", "; ".join(problems) or "invalid request")

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        return error_response(415, "not_an_image", str(exc))

    @app.exception_handler(NoFaceError)
    async def no_face(request: Request, exc: NoFaceError) -> JSONResponse:
        return error_response(422, "no_face", str(exc))

    @app.exception_handler(LibraryNotFoundError)
    async def library_not_found(request: Request, exc: LibraryNotFoundError) -> JSONResponse:
        return error_response(404, f"{exc.kind}_not_found", str(exc))

    @app.exception_handler(GalleryError)
    async def gallery_error(request: Request, exc: GalleryError) -> JSONResponse:
        return error_response(400, "gallery_error", str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error (see the server log)")
