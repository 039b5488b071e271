"""Outbound HTTP for every transport: pooled keep-alive connections, explicit timeouts, no
redirects, a capped response read, and failures described in words a merchant understands.

Built on urllib3 directly (requests is built on it too): a delivery is one POST with headers we
set ourselves, so requests' sessions, cookies and hooks would only add CPU time per delivery.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3
from flask_babel import gettext as _
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, LocationParseError, NameResolutionError,
                                NewConnectionError, ProtocolError, ReadTimeoutError, SSLError)

_local = threading.local()

# What is kept of a response in the attempt row; the rest is read (to reuse the connection) and dropped.
EXCERPT_BYTES = 2048


def pool() -> urllib3.PoolManager:
    """One pool manager per thread: connections to each receiver are kept alive between deliveries."""
    manager = getattr(_local, "pool", None)
    if manager is None:
        # Environment proxies are ignored on purpose: a proxy must not silently reroute webhooks.
        manager = urllib3.PoolManager(num_pools=64, maxsize=2, retries=False)
        _local.pool = manager
    return manager


@dataclass
class HttpResult:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    duration_ms: int = 0
    error: str | None = None  # set when no HTTP response came back
    retry_after: float | None = None


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: urllib3 wraps the socket error a layer or two deep."""
    seen = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if not isinstance(nxt, BaseException):
            break
        current = nxt
    return current


def _describe(exc: Exception, url: str, connect_timeout: float, read_timeout: float) -> str:
    """A sentence for the merchant, in the merchant's language (it is stored with the attempt)."""
    host = urlsplit(url).netloc
    root = _root(exc)
    # The socket-level cause first: urllib3's NewConnectionError is also a ConnectTimeoutError.
    if isinstance(root, ConnectionRefusedError):
        return _("Connection refused by %(host)s: is the receiver running and listening on that port?", host=host)
    if isinstance(exc, NameResolutionError) or isinstance(root, (NameResolutionError, socket.gaierror)):
        return _("DNS lookup failed: the host name in %(host)s could not be resolved", host=host)
    if isinstance(exc, SSLError) or isinstance(root, ssl.SSLError):
        return _("TLS error talking to %(host)s: %(error)s", host=host, error=root)
    if isinstance(exc, ReadTimeoutError):
        return _("%(host)s accepted the connection but did not answer within %(seconds)s s", host=host,
                 seconds=f"{read_timeout:g}")
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return _("Timed out connecting to %(host)s after %(seconds)s s", host=host, seconds=f"{connect_timeout:g}")
    if isinstance(root, (ConnectionResetError, BrokenPipeError)) or isinstance(exc, ProtocolError):
        return _("%(host)s closed the connection before answering", host=host)
    if isinstance(exc, NewConnectionError):
        return _("Could not connect to %(host)s: %(error)s", host=host, error=root)
    if isinstance(exc, LocationParseError):
        return _("The URL is not valid: %(error)s", error=exc)
    return f"{type(exc).__name__}: {exc}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def post(url: str, headers: dict, body: bytes, *, connect_timeout: float, read_timeout: float,
         max_bytes: int) -> HttpResult:
    """POST once. Never raises for network trouble: the failure is described in `HttpResult.error`."""
    started = time.perf_counter()
    try:
        response = pool().urlopen("POST", url, body=body, headers=headers, redirect=False, retries=False,
                                  timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                                  preload_content=False)
        try:
            raw = response.read(max_bytes)
            # A receiver that sends more than we read loses its connection instead of sending the
            # rest into a pooled connection.
            if response.read(1):
                response.close()
        finally:
            response.release_conn()
        return HttpResult(
            status=response.status,
            headers=dict(response.headers),
            body=raw[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
            duration_ms=int((time.perf_counter() - started) * 1000),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    except (HTTPError, OSError) as exc:
        return HttpResult(error=_describe(exc, url, connect_timeout, read_timeout),
                          duration_ms=int((time.perf_counter() - started) * 1000))
