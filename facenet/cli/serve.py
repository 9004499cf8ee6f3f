"""facenet serve: the JSON API and web page (FastAPI + uvicorn)."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import click

from ..errors import FaceNetError
from . import UserError, model_option
from .conventions import FiniteRange, warn_uncalibrated
from .gallery import index_option, index_uri_option

log = logging.getLogger(__name__)


#: Bind addresses meaning "every interface": not a name clients use in their Host header.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _served_hosts(host: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The Host names the server answers besides the loopback ones: its bind address (unless
    a wildcard) and every --allowed-host."""
    return tuple(allowed) + (() if host in WILDCARD_HOSTS else (host,))


@click.command()
@click.option(
    "--gallery",
    "-g",
    "gallery_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Gallery file (SQLite); created empty if missing. Without it: no gallery endpoints.",
)
@model_option
@index_option
@index_uri_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--api-key",
    envvar="FACENET_API_KEY",
    default=None,
    help="Require header X-API-Key for gallery changes (env FACENET_API_KEY).",
)
@click.option(
    "--api-key-all",
    is_flag=True,
    help="Require the key for everything but a bare liveness check (health answers only "
    "its status without the key).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow browser calls from this origin (repeatable; default: CORS off).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this Host name, e.g. the LAN name or a proxy's public "
    "name (repeatable; loopback names and --host are always allowed; '*': any).",
)
@click.option(
    "--max-upload-mb", default=10.0, show_default=True, type=FiniteRange(min=0, min_open=True)
)
@click.option(
    "--max-pixels",
    default=40_000_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest image decoded (width x height).",
)
@click.option(
    "--max-request-pixels",
    default=100_000_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most pixels of all photos of one request together.",
)
@click.option(
    "--max-side",
    default=2400,
    show_default=True,
    type=click.IntRange(min=160),
    help="Larger photos are decoded downscaled to this longer side.",
)
@click.option(
    "--max-faces",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most faces embedded per photo (the largest; answers say when the cap was hit).",
)
@click.option("--max-files", default=50, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--threads",
    "workers",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests handled at once; detection runs for one per core at a time, their embedder "
    "calls are merged (one process: the model is loaded once).",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=FiniteRange(min=0, min_open=True),
    help="Seconds a request body may go without a byte arriving (then 408).",
)
def serve(
    gallery_path,
    model_path,
    index,
    index_uri,
    host,
    port,
    api_key,
    api_key_all,
    cors_origins,
    allowed_hosts,
    max_upload_mb,
    max_pixels,
    max_request_pixels,
    max_side,
    max_faces,
    max_files,
    workers,
    body_timeout,
):
    """Serve the face-recognition API (/api/v1) and web page (/) over HTTP."""
    try:
        import uvicorn  # noqa: F401 (checked here: a missing extra is one line, before any work)

        from ..server import Settings
    except ImportError as exc:
        raise UserError(
            f"the server needs its extra: pip install 'facenet-keras[server]' ({exc})"
        ) from None
    try:
        settings = Settings(
            api_key=api_key,
            api_key_all=api_key_all,
            cors_origins=tuple(cors_origins),
            allowed_hosts=_served_hosts(host, allowed_hosts),
            max_upload_mb=max_upload_mb,
            max_pixels=max_pixels,
            max_request_pixels=max_request_pixels,
            max_side=max_side,
            max_faces=max_faces,
            max_files=max_files,
            workers=workers,
            body_timeout=body_timeout,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    listening = _listening_socket(host, port)
    _warn_about_exposure(host, api_key, allowed_hosts)  # once it does listen there
    try:
        _serve(listening, _model_and_gallery(model_path, gallery_path, index, index_uri), settings)
    finally:
        listening.close()


def _serve(listening: socket.socket, model_and_gallery, settings) -> None:
    """Run the app on the bound socket until Ctrl-C; the gallery is closed after."""
    import uvicorn

    from ..server import create_app

    model, gallery = model_and_gallery
    try:
        app = create_app(model, gallery, settings)
        host, port = listening.getsockname()[:2]
        click.echo(f"facenet: serving {model!r} on http://{host}:{port}/", err=True)
        warn_uncalibrated(model)  # clients see it too: `calibrated` in health, model, verify
        config = uvicorn.Config(app, log_level="info", access_log=False)
        _stopped_cleanly()(config).run(sockets=[listening])
    finally:
        if gallery is not None:
            gallery.close()


def _stopped_cleanly():
    """uvicorn's server class, made to take SIGINT (Ctrl-C) and SIGTERM as a stop: after its
    graceful shutdown `facenet serve` exits 0, where uvicorn raises the signal again (Ctrl-C
    became exit status 130 and the batch commands' "resume" line, SIGTERM a death by signal,
    143). A made class: uvicorn is imported only when serving."""
    import uvicorn

    class StoppedCleanly(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self._captured_signals.clear()  # handled: the server has shut down

    return StoppedCleanly


def _listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads: a busy port or an unknown host is a
    one-line error with exit status 2, not uvicorn's exit 3 after the server announced itself."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _warn_about_exposure(host: str, api_key, allowed_hosts) -> None:
    """On stderr: a server others can reach without an API key, or without a host name."""
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(
            f"warning: listening on {host} without --api-key: anyone who can reach it can change "
            "the gallery",
            err=True,
        )
    if host in WILDCARD_HOSTS and not allowed_hosts:
        click.echo(
            f"note: listening on {host}; other machines must reach it by a name given with "
            "--allowed-host (requests for other Host names are refused)",
            err=True,
        )


def _recorded_model(gallery) -> str | None:
    """The model the gallery records (a bundled model's name or a file), if it is still there."""
    from ..catalog import resolve

    if not gallery.model_path:
        return None
    try:
        found = resolve(gallery.model_path)[0].is_file()
    except FaceNetError:  # a name no longer in the catalog
        return None
    return gallery.model_path if found else None


def _model_and_gallery(model_path, gallery_path, index=None, index_uri=None):
    """The model (by default the one the gallery records) and the gallery, created empty when
    `gallery_path` does not exist yet (with the `index` backend at `index_uri`); None without
    `gallery_path`."""
    from ..api import FaceNet
    from ..gallery import Gallery
    from ..gallery.index import DEFAULT_BACKEND

    gallery = None
    if gallery_path and Path(gallery_path).exists():
        gallery = Gallery.open(gallery_path, index=index, uri=index_uri)
        if model_path is None:
            model_path = _recorded_model(gallery)
    try:
        model = FaceNet.load(model_path)
        if gallery is None and gallery_path:
            gallery = Gallery.create(
                gallery_path, model, model_path or "", index=index or DEFAULT_BACKEND, uri=index_uri
            )
            click.echo(f"created an empty gallery at {gallery_path}", err=True)
    except (FaceNetError, ValueError):
        if gallery is not None:
            gallery.close()
        raise
    return model, gallery
