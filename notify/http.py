"""Outbound HTTP for every transport: pooled keep-alive sessions, explicit timeouts, no redirects,
a capped response read, and failures described in words a merchant understands."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import requests
from urllib3.exceptions import NameResolutionError

_local = threading.local()

# What is kept of a response in the attempt row; the rest is read (to reuse the connection) and dropped.
EXCERPT_BYTES = 2048


def session() -> requests.Session:
    """One session per thread: connections to each receiver are kept alive between deliveries."""
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False  # a proxy from the environment must not silently reroute webhooks
        _local.session = s
    return s


@dataclass
class HttpResult:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    duration_ms: int = 0
    error: str | None = None  # set when no HTTP response came back
    retry_after: float | None = None


def _describe(exc: Exception, url: str, connect_timeout: float, read_timeout: float) -> str:
    host = requests.utils.urlparse(url).netloc
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"Timed out connecting to {host} after {connect_timeout:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{host} accepted the connection but did not answer within {read_timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        reason = exc.args[0] if exc.args else exc
        return f"TLS error talking to {host}: {_root(reason)}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        root = _root(exc)
        if isinstance(root, NameResolutionError) or isinstance(root, socket.gaierror):
            return f"DNS lookup failed: the host name in {host} could not be resolved"
        if isinstance(root, ConnectionRefusedError):
            return f"Connection refused by {host}: is the receiver running and listening on that port?"
        if isinstance(root, (ConnectionResetError, BrokenPipeError)):
            return f"{host} closed the connection before answering"
        if isinstance(root, ssl.SSLError):
            return f"TLS error talking to {host}: {root}"
        return f"Could not connect to {host}: {root}"
    if isinstance(exc, requests.exceptions.InvalidURL):
        return f"The URL is not valid: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: urllib3 wraps the socket error a few layers deep."""
    seen = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        if not isinstance(nxt, BaseException):
            break
        current = nxt
    return current


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

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
        with session().post(url, data=body, headers=headers, allow_redirects=False, stream=True,
                            timeout=(connect_timeout, read_timeout)) as response:
            raw = b""
            for chunk in response.iter_content(8192):
                raw += chunk
                if len(raw) >= max_bytes:
                    break
            return HttpResult(
                status=response.status_code,
                headers=dict(response.headers),
                body=raw[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
                duration_ms=int((time.perf_counter() - started) * 1000),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
    except requests.exceptions.RequestException as exc:
        return HttpResult(error=_describe(exc, url, connect_timeout, read_timeout),
                          duration_ms=int((time.perf_counter() - started) * 1000))
