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

from notify import guard
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, LocationParseError, NameResolutionError,
                                NewConnectionError, ProtocolError, ReadTimeoutError, SSLError)

_local = threading.local()

# What is kept of a response in the attempt row; the rest is read (to reuse the connection) and dropped.
EXCERPT_BYTES = 2048


MAX_POOLS = 64


def _pool(scheme: str, address: str, port: int, hostname: str) -> urllib3.HTTPConnectionPool:
    """A keep-alive pool per (thread, checked address, host name). The connection goes to the
    address the guard checked; TLS still verifies the certificate against the host name (SNI)."""
    pools = getattr(_local, "pools", None)
    if pools is None:
        pools = _local.pools = {}
    key = (scheme, address, port, hostname)
    found = pools.get(key)
    if found is None:
        if len(pools) >= MAX_POOLS:  # forget the oldest
            pools.pop(next(iter(pools))).close()
        if scheme == "https":
            found = urllib3.HTTPSConnectionPool(address, port, maxsize=2, retries=False, server_hostname=hostname,
                                                assert_hostname=hostname)
        else:
            found = urllib3.HTTPConnectionPool(address, port, maxsize=2, retries=False)
        pools[key] = found
    return found


@dataclass
class HttpResult:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    duration_ms: int = 0
    error: str | None = None  # set when no HTTP response came back
    retry_after: float | None = None
    refused: bool = False  # the outbound guard refused the target: nothing was sent


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
         max_bytes: int, allow_private: bool = False) -> HttpResult:
    """POST once, to the address the outbound guard checked (notify.guard). No redirects, a capped
    response read, and the whole exchange bounded by connect + read timeout. Never raises for
    network trouble: the failure is described in `HttpResult.error`."""
    started = time.perf_counter()
    deadline = time.monotonic() + connect_timeout + read_timeout
    try:
        parts = urlsplit(url)
        scheme, hostname = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        return HttpResult(error=_("The URL is not valid: %(error)s", error=exc))
    target = guard.resolve(hostname, port, allow_private)
    if target.address is None:
        return HttpResult(error=target.problem, refused=target.refused,
                          duration_ms=int((time.perf_counter() - started) * 1000))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    try:
        response = _pool(scheme, target.address, port, hostname).urlopen(
            "POST", path, body=body, headers={**headers, "Host": host_header}, redirect=False, retries=False,
            assert_same_host=False, timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            preload_content=False)
        try:
            raw = _read_capped(response, max_bytes, deadline)
        finally:
            response.release_conn()
        if raw is None:
            return HttpResult(error=_("%(host)s did not finish answering within %(seconds)s s", host=host_header,
                                      seconds=f"{connect_timeout + read_timeout:g}"),
                              duration_ms=int((time.perf_counter() - started) * 1000))
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


def _read_capped(response, max_bytes: int, deadline: float) -> bytes | None:
    """At most `max_bytes` of the body, before `deadline`; None when the receiver is too slow (its
    connection is closed). A receiver that sends more than we read loses its connection instead of
    sending the rest into a pooled connection."""
    chunks, size = [], 0
    while size < max_bytes:
        if time.monotonic() > deadline:
            response.close()
            return None
        chunk = response.read1(min(16384, max_bytes - size))  # what has arrived, not a full 16 KiB
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if response.read(1):
        response.close()
    return b"".join(chunks)
