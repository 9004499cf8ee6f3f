"""What an operator can set on the server (the `facenet serve` flags map one to one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: Image formats accepted from clients, recognised by content (Pillow's decoders), never by name.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
#: The most files the form parser (Starlette's) takes in one request: `max_files` cannot be more.
PARSER_MAX_FILES = 1000


@dataclass(frozen=True)
class Settings:
    """Server limits and access control.

    api_key: when set, requests that change the gallery need header `X-API-Key: <key>`.
    api_key_all: also require the key for every other `/api/v1` endpoint, the schema and the
        docs; `health` then answers only `{"status": "ok"}` without it.
    cors_origins: browser origins allowed to call the API from other sites (none: CORS off).
    allowed_hosts: Host header names served besides the loopback names (127.0.0.1, localhost,
        ::1); "*" serves any (only behind a proxy that checks Host itself).
    max_upload_mb: the largest request body, all photos of the request together.
    max_pixels: the largest image (width x height) decoded; larger ones are refused unread.
    max_request_pixels: the most pixels of all photos of one request together, read from
        their headers before any is decoded.
    max_side: photos whose longer side is larger are decoded downscaled to this (JPEG at a
        reduced scale, without ever holding the full size); boxes stay in the photo's pixels.
    max_faces: the most faces embedded per photo (the most prominent); answers say when the
        cap was hit.
    max_files: the most photos in one request (enrol, cluster), at most `PARSER_MAX_FILES`.
    workers: requests handled at once (decoded and run through the model); detection runs for
        one of them per core at a time, their embedder calls are merged (`batching.py`).
    thumbnail_size: side in pixels of the face thumbnails (cut from the crops the gallery keeps).
    body_timeout: seconds a request body may go without a byte arriving before the request is
        refused (408): a stalled upload would otherwise hold its connection for good.
    """

    api_key: str | None = None
    api_key_all: bool = False
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    max_upload_mb: float = 10.0
    max_pixels: int = 40_000_000
    max_request_pixels: int = 100_000_000
    max_side: int = 2400
    max_faces: int = 100
    max_files: int = 50
    workers: int = 8
    thumbnail_size: int = 112
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.api_key_all and not self.api_key:
            raise ValueError("api_key_all needs an api_key")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty")
        if self.api_key is not None and not _sendable(self.api_key):
            raise ValueError(
                "api_key must be printable ASCII without spaces around it: clients send it as "
                "an HTTP header (X-API-Key)"
            )
        limits = (self.max_upload_mb, self.max_pixels, self.max_request_pixels, self.max_files)
        if min(limits) <= 0 or self.max_faces < 1:
            raise ValueError(
                "max_upload_mb, max_pixels, max_request_pixels, max_files and max_faces must "
                "be positive"
            )
        if self.max_files > PARSER_MAX_FILES:
            raise ValueError(f"max_files must be at most {PARSER_MAX_FILES}; got {self.max_files}")
        if self.max_side < 160:
            raise ValueError(f"max_side must be at least 160; got {self.max_side}")
        if not 0 < self.body_timeout < float("inf"):
            raise ValueError(f"body_timeout must be a positive number; got {self.body_timeout}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1; got {self.workers}")
        object.__setattr__(self, "cors_origins", tuple(map(_origin, self.cors_origins)))
        object.__setattr__(self, "allowed_hosts", tuple(map(_host, self.allowed_hosts)))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _sendable(key: str) -> bool:
    """Whether every client can send `key` as a header value and the server reads it back the
    same: ASCII (non-ASCII bytes are read as Latin-1), printable, no spaces HTTP would strip."""
    return key.isascii() and key.isprintable() and key == key.strip()


def _origin(value: str) -> str:
    """`value` as browsers send an Origin (`scheme://host[:port]`, lower case), else ValueError:
    anything else ('*', a bare host name, a URL with a path) would match no request."""
    parts = urlsplit(value.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"cors_origins: {value!r} is not an origin (scheme://host[:port], e.g. "
            "https://app.example)"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _host(value: str) -> str:
    """`value` if it can be a request's Host name ('*', or a name or address, with a port or
    not), else ValueError: a URL or a path would allow a name no request has."""
    if value != "*" and (not value.strip() or any(c in value for c in "/@ \t")):
        raise ValueError(
            f"allowed_hosts: {value!r} is not a host name (e.g. faces.lan, or * for any)"
        )
    return value
