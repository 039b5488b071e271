"""Outbound HTTP for every transport: pooled keep-alive connections, explicit timeouts, no
redirects, a capped response read, and failures described as reasons a merchant understands
(notify.reasons: stored as codes, put into words in the reader's language).

Built on urllib3 directly (requests is built on it too): a delivery is one POST with headers we
set ourselves, so requests' sessions, cookies and hooks would only add CPU time per delivery.

One exchange never outlasts connect + read timeout, whatever the receiver does: the DNS lookup
is abandoned after the connect timeout, every socket read waits at most for the time left (a
receiver trickling one byte at a time cannot stretch it), and the TLS handshake is bounded by the
connect timeout as a whole. So a send cannot outlive the claim's lease (DELIVERY_LEASE_SECONDS
exceeds both timeouts, config.py).
"""
from __future__ import annotations

import io
import ipaddress
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from notify import guard
from notify.reasons import Reason, reason
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, LocationParseError, NameResolutionError,
                                NewConnectionError, ProtocolError, ReadTimeoutError, SSLError)

_local = threading.local()

# What is kept of a response in the attempt row; the rest is read (to reuse the connection) and dropped.
EXCERPT_BYTES = 2048


MAX_POOLS = 64
# Threads for DNS lookups, which the system resolver cannot time out: a lookup still going after
# the connect timeout is left to finish here while the send gives up.
RESOLVER_THREADS = 8
_resolver: ThreadPoolExecutor | None = None
_resolver_lock = threading.Lock()


class _DeadlineSocket:
    """A connected socket whose every read waits at most until the exchange's deadline (and at
    most the read timeout): what http.client reads the status, the headers and the body through."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock, self._deadline = sock, deadline
        self._read_timeout = sock.gettimeout()

    def settimeout(self, value):
        self._read_timeout = value
        self._sock.settimeout(value)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the exchange's deadline passed")
        self._sock.settimeout(left if self._read_timeout is None else min(left, self._read_timeout))
        return self._sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_):
        # As socket.makefile does, with this object (not the bare socket) under the buffer.
        self._sock._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"), io.DEFAULT_BUFFER_SIZE)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _DeadlineConnection(HTTPConnection):
    """Reads the response through a `_DeadlineSocket` when the thread's exchange has a deadline."""

    def getresponse(self):
        deadline = getattr(_local, "deadline", None)
        real = self.sock
        if deadline is None or real is None:
            return super().getresponse()
        self.sock = _DeadlineSocket(real, deadline)
        try:
            return super().getresponse()
        finally:
            if self.sock is not None:  # None: http.client closed it (the receiver said Connection: close)
                self.sock = real


class _DeadlineTLSConnection(_DeadlineConnection, HTTPSConnection):
    """The same for TLS. The handshake needs nothing more: Python's ssl module bounds the whole
    handshake by the socket's timeout, the connect timeout here."""


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineConnection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineTLSConnection


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
            found = _TLSPool(address, port, maxsize=2, retries=False, server_hostname=hostname,
                             assert_hostname=hostname)
        else:
            found = _Pool(address, port, maxsize=2, retries=False)
        pools[key] = found
    return found


@dataclass
class HttpResult:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    duration_ms: int = 0
    error: Reason | None = None  # set when no HTTP response came back
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


def _without_target(text: str, url: str) -> str:
    """`text` (an exception's words) without the target's path and query: a robot's credential
    lives there (DingTalk's access_token, WeCom's key, Feishu's hook token), and a reason's text is
    stored with the attempt and shown on pages that mask it everywhere else."""
    parts = urlsplit(url)
    for secret in (f"{parts.path}?{parts.query}" if parts.query else "", parts.query, parts.path):
        if len(secret) > 1 and secret in text:
            text = text.replace(secret, "/…")
    return text


def _describe(exc: Exception, url: str, connect_timeout: float, read_timeout: float) -> Reason:
    """Why no answer came, with what to check (notify.reasons: put into words when shown)."""
    host = urlsplit(url).netloc
    root = _root(exc)
    # The socket-level cause first: urllib3's NewConnectionError is also a ConnectTimeoutError.
    if isinstance(root, ConnectionRefusedError):
        return reason("connection_refused", host=host)
    if isinstance(exc, NameResolutionError) or isinstance(root, (NameResolutionError, socket.gaierror)):
        return reason("dns_failed", host=urlsplit(url).hostname or host)
    if isinstance(exc, SSLError) or isinstance(root, ssl.SSLError):
        return reason("tls_failed", host=host, error=_without_target(str(root), url))
    if isinstance(exc, ReadTimeoutError):
        return reason("read_timeout", host=host, seconds=f"{read_timeout:g}")
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return reason("connect_timeout", host=host, seconds=f"{connect_timeout:g}")
    if isinstance(root, (ConnectionResetError, BrokenPipeError)) or isinstance(exc, ProtocolError):
        return reason("connection_closed", host=host)
    if isinstance(exc, NewConnectionError):
        return reason("connect_failed", host=host, error=_without_target(str(root), url))
    if isinstance(exc, LocationParseError):
        return reason("bad_url", error=_without_target(str(exc), url))
    return reason("network_error", host=host, error=_without_target(f"{type(exc).__name__}: {exc}", url))


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


@lru_cache(maxsize=256)
def _literal(hostname: str, port: int, allow_private: bool) -> guard.Resolved:
    """The guard's verdict on a literal address: no lookup to wait for, and the same every time
    (the verdict is immutable), so it is worked out once, not on every send."""
    return guard.resolve(hostname, port, allow_private)


@lru_cache(maxsize=1024)
def _is_literal(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def _split(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host name, port, path with query, Host header) of a target URL; ValueError when it
    is not one. Cached: a worker sends to the same few URLs again and again."""
    parts = urlsplit(url)
    scheme, hostname = parts.scheme.lower(), parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, hostname, port, path, parts.netloc.rpartition("@")[2]


def _resolve(hostname: str, port: int, allow_private: bool, timeout: float) -> guard.Resolved:
    """The guard's checked address for `hostname`, or a lookup failure once `timeout` has passed."""
    if _is_literal(hostname):
        return _literal(hostname, port, allow_private)
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="resolve")
    future = _resolver.submit(guard.resolve, hostname, port, allow_private)
    try:
        return future.result(timeout=max(0.0, timeout))
    except FutureTimeout:
        future.cancel()
        return guard.Resolved(None, reason("dns_timeout", host=hostname, seconds=f"{timeout:g}"))


def post(url: str, headers: dict, body: bytes, *, connect_timeout: float, read_timeout: float,
         max_bytes: int, allow_private: bool = False) -> HttpResult:
    """POST once, to the address the outbound guard checked (notify.guard). No redirects, a capped
    response read, and the whole exchange (DNS lookup included) bounded by connect + read timeout.
    Never raises for network trouble: the failure is described in `HttpResult.error`."""
    started = time.perf_counter()
    deadline = time.monotonic() + connect_timeout + read_timeout
    try:
        scheme, hostname, port, path, host_header = _split(url)
    except ValueError as exc:
        return HttpResult(error=reason("bad_url", error=_without_target(str(exc), url)))
    target = _resolve(hostname, port, allow_private, connect_timeout)
    if target.address is None:
        return HttpResult(error=target.problem, refused=target.refused,
                          duration_ms=int((time.perf_counter() - started) * 1000))
    too_slow = reason("too_slow", host=host_header, seconds=f"{connect_timeout + read_timeout:g}")
    _local.deadline = deadline
    try:
        left = max(0.001, deadline - time.monotonic())
        response = _pool(scheme, target.address, port, hostname).urlopen(
            "POST", path, body=body, headers={**headers, "Host": host_header}, redirect=False, retries=False,
            assert_same_host=False, timeout=urllib3.Timeout(connect=min(connect_timeout, left), read=read_timeout),
            preload_content=False)
        try:
            raw = _read_capped(response, max_bytes, deadline)
        finally:
            response.release_conn()
        if raw is None:
            return HttpResult(error=too_slow, duration_ms=int((time.perf_counter() - started) * 1000))
        return HttpResult(
            status=response.status,
            headers=dict(response.headers),
            body=raw[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
            duration_ms=int((time.perf_counter() - started) * 1000),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    except (HTTPError, OSError) as exc:
        # Past the deadline, whatever broke (a read cut short, a handshake shut down) broke because of it.
        error = too_slow if time.monotonic() >= deadline else _describe(exc, url, connect_timeout, read_timeout)
        return HttpResult(error=error, duration_ms=int((time.perf_counter() - started) * 1000))
    finally:
        _local.deadline = None


def _read_capped(response, max_bytes: int, deadline: float) -> bytes | None:
    """At most `max_bytes` of the body, before `deadline`; None when the receiver is too slow (its
    connection is closed). A receiver that sends more than we read loses its connection instead of
    sending the rest into a pooled connection."""
    chunks, size = [], 0
    while size < max_bytes:
        if time.monotonic() > deadline:
            response.close()
            return None
        # What has arrived, not a full 16 KiB; each read waits at most for the time left (_DeadlineSocket).
        chunk = response.read1(min(16384, max_bytes - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if response.read(1):
        response.close()
    return b"".join(chunks)
