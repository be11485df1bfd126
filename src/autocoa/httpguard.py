"""What both local servers check before a request reaches an endpoint: the Host header, the
content type, and an optional API key. Shared by the retrieval server and the agent server.

Why: a web page the user visits can send "simple" cross-origin requests (``text/plain`` POSTs
need no CORS preflight) to a server on 127.0.0.1, and with DNS rebinding read the answers. A
Host allow-list (loopback names by default) stops rebinding, JSON-only bodies stop simple
requests, and an API key (``--api-key`` or ``AUTOCOA_API_KEY``) stops everyone else.

Why our own, not Starlette's ``TrustedHostMiddleware`` and ``fastapi.security``: the stock host
check answers a plain-text 400, and the stock key schemes are per-route dependencies answering
``{"detail": ...}``; each server here must answer every refusal in its own error shape (the agent
server's is OpenAI's), from one place that also leaves ``/health`` open. The content-type rule
has no stock equivalent. The three checks are the 30 lines of :func:`check_request`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # as Host headers name them
LOOPBACK_BIND = frozenset({"127.0.0.1", "localhost", "::1"})  # as a bind address names them
OPEN_PATHS = ("/health",)  # answered without the API key (no data in them)
BODY_METHODS = ("POST", "PUT", "PATCH")


def host_name(host_header: str) -> str:
    """The host of a Host header, without its port.

    >>> host_name("127.0.0.1:8000"), host_name("[::1]:8000"), host_name("LocalHost"), host_name("[::1]")
    ('127.0.0.1', '[::1]', 'localhost', '[::1]')
    """
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def check_request(
    method: str,
    path: str,
    headers: Any,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    api_key: str | None = None,
) -> tuple[int, str, str] | None:
    """``(status, message, code)`` for a request the server must refuse, else None.

    ``headers`` is any case-insensitive mapping (Starlette's ``request.headers``).

    >>> ok = {"host": "127.0.0.1:8000", "content-type": "application/json"}
    >>> check_request("POST", "/retrieve", ok) is None
    True
    >>> check_request("POST", "/retrieve", {**ok, "host": "evil.example:8000"})[:2]
    (400, 'Host header evil.example:8000 is not allowed (allowed: 127.0.0.1, localhost, [::1]; see --allow-host)')
    >>> check_request("POST", "/retrieve", {**ok, "content-type": "text/plain"})[0]
    415
    >>> check_request("POST", "/retrieve", ok, api_key="k")[0], check_request("GET", "/health", ok, api_key="k")
    (401, None)
    >>> check_request("POST", "/retrieve", {**ok, "authorization": "Bearer k"}, api_key="k") is None
    True
    """
    host = headers.get("host")
    allowed = {h.lower() for h in allowed_hosts}
    if "*" not in allowed and (not host or host_name(host) not in allowed):
        return (
            400,
            f"Host header {host or '(none)'} is not allowed (allowed: {', '.join(allowed_hosts)}; see --allow-host)",
            "host_not_allowed",
        )
    if method.upper() in BODY_METHODS:
        ctype = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            return 415, f"Content-Type {ctype or '(none)'}: send application/json", "unsupported_media_type"
    if api_key and path not in OPEN_PATHS:
        auth = headers.get("authorization") or ""
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else (headers.get("x-api-key") or "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            return 401, "missing or wrong API key (Authorization: Bearer KEY)", "invalid_api_key"
    return None


def install(
    app: Any,
    error: Callable[[int, str, str], Any],
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    api_key: str | None = None,
) -> None:
    """Check every request of the FastAPI ``app`` with :func:`check_request`; refusals are
    answered with ``error(status, message, code)`` (each server's own error shape)."""

    @app.middleware("http")
    async def guard(request, call_next):
        problem = check_request(request.method, request.url.path, request.headers, allowed_hosts, api_key)
        if problem is not None:
            return error(*problem)
        return await call_next(request)
