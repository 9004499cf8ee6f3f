"""Refuse requests from where they should not come: a foreign Host header (DNS rebinding) and a
cross-site browser request that would change something (CSRF).

Why: without an API key, anything that can make the user's browser send a request could enrol
a stranger's photo under a known name; a page on another origin can submit a plain HTML form
to 127.0.0.1, and a DNS name rebound to 127.0.0.1 reads the API with the attacker's Host.
The third layer, a header that HTML forms cannot send on gallery changes, is in
`routes.write_access`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

#: Host names a loopback server is always reached by.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Methods that can change something (GET, HEAD and OPTIONS never do here).
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": "80", "https": "443"}


def host_name(host: str) -> str:
    """The name part of a Host header: 'Example.com:80' -> 'example.com', '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _netloc(scheme: str, netloc: str) -> str:
    """host[:port] without the scheme's default port, lower case."""
    netloc = netloc.lower()
    default = DEFAULT_PORTS.get(scheme)
    if default and netloc.endswith(f":{default}"):
        netloc = netloc[: -len(default) - 1]
    return netloc


def same_origin(origin: str, host: str, trusted: frozenset[str]) -> bool:
    """Whether a browser `Origin` (or a Referer's origin) is this server's own: its host[:port]
    is the request's Host, or it is one of the `trusted` (CORS) origins. 'null' never is."""
    if origin.rstrip("/") in trusted:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        return False
    scheme = parts.scheme
    return _netloc(scheme, parts.netloc) == _netloc(scheme, host.strip())


def error_response(status: int, code: str, message: str, headers=None) -> JSONResponse:
    """The API's error body, `{"error": {"code", "message"}}`, shared by every refusal (here,
    in `app.py`'s handlers and middleware)."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class RequestGuardMiddleware:
    """400 `host_not_allowed` for a Host header outside `allowed_hosts` (plus the loopback
    names; '*' allows any), and 403 `cross_origin` for an unsafe method whose Origin (or, when
    absent, Referer) is another site. Requests without either header (curl, scripts) pass."""

    def __init__(self, app, allowed_hosts: tuple[str, ...], trusted_origins: tuple[str, ...]):
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.hosts = frozenset(host_name(h) for h in (*LOOPBACK_HOSTS, *allowed_hosts))
        self.trusted = frozenset(o.rstrip("/") for o in trusted_origins)
        self.error = error_response

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.hosts:
            response = self.error(
                400,
                "host_not_allowed",
                f"host {host[:100]!r} is not served here (start the server with "
                "--allowed-host NAME to allow it)",
            )
            return await response(scope, receive, send)
        if scope["method"] in UNSAFE_METHODS:
            origin = headers.get("origin") or _referer_origin(headers.get("referer"))
            if origin is not None and not same_origin(origin, host, self.trusted):
                response = self.error(
                    403,
                    "cross_origin",
                    f"requests from {origin[:100]!r} may not change or use this server "
                    "(only its own page, or an origin given with --cors-origin)",
                )
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _referer_origin(referer: str | None) -> str | None:
    if not referer:
        return None
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
