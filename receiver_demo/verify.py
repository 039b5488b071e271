"""Verify the X-Apsdai-Token of an APSDAI webhook, and its body signature. Standard library only; no Flask.

Signature mode: string_to_sign = timestamp_ms + "\\n" + secret (timestamp_ms = X-Apsdai-Timestamp),
digest = HMAC-SHA256(key=secret, msg=string_to_sign), both UTF-8; token = quote_plus(base64(digest)).
The timestamp must lie within ±tolerance of now (stale AND future) and the token is compared in
constant time. Password mode: the token is the configured password itself, compared in constant time.
Test vector: timestamp 1700000000000, secret "SECtest" -> aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D

The token does not cover the body. merchant-notify also sends X-Apsdai-Signature-256:
"sha256=" + hex(HMAC-SHA256(key=secret, msg=timestamp_ms + "." + raw body bytes)), several
comma-separated while the sender rotates its secret; when the header is present, one of them must
match. During a rotation, give the receiver both secrets (`previous_secret`): either is accepted.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote_plus

MODES = ("signature", "password")
# 1-15 digits: epoch ms until the year 33658. The cap keeps int() away from huge digit strings.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str = ""  # empty when ok; never contains the secret or the expected token


def signature_base64(secret: str, timestamp_ms: int | str) -> str:
    """The Base64 HMAC before URL-encoding (useful to compare with other implementations)."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def compute_signature(secret: str, timestamp_ms: int | str) -> str:
    """The expected X-Apsdai-Token in signature mode: the Base64 HMAC, URL-encoded once."""
    return quote_plus(signature_base64(secret, timestamp_ms))


def body_signature(secret: str, timestamp_ms: int | str, body: bytes) -> str:
    """The expected value of one X-Apsdai-Signature-256 entry: sha256=<hex>."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _same(a: str, b: str) -> bool:
    # compare_digest refuses non-ASCII str, and a header may contain anything: compare bytes.
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def verify_headers(headers: Mapping[str, str], *, mode: str, secret: str, tolerance_s: int = 300,
                   now_ms: int | None = None, body: bytes | None = None,
                   previous_secret: str = "") -> Verification:
    """Check the X-Apsdai-* headers of one request. `headers` may be any mapping, in any casing.
    With `body` (the raw bytes received), X-Apsdai-Signature-256 is checked too when it is present.
    `previous_secret`, during a rotation: the old secret, accepted as well as `secret`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not secret:
        # An empty password would otherwise match an empty token.
        return Verification(False, "no secret configured on the receiver")
    secrets = [s for s in (secret, previous_secret) if s]
    lowered = {str(k).lower(): v for k, v in headers.items()}
    token = lowered.get("x-apsdai-token") or ""
    timestamp = lowered.get("x-apsdai-timestamp")
    if not token:
        return Verification(False, "missing X-Apsdai-Token header")

    if mode == "password":
        # The timestamp is not signed in this mode, so its age proves nothing: only the format is
        # checked (a malformed value means a broken sender), and no clock-skew rejections happen.
        if timestamp is not None and not _TIMESTAMP_RE.fullmatch(timestamp):
            return Verification(False, "X-Apsdai-Timestamp is not epoch milliseconds (digits only)")
        if not any(_same(token, s) for s in secrets):
            return Verification(False, "password does not match")
        return _verify_body(lowered, secrets, timestamp, body)

    if not timestamp:
        return Verification(False, "missing X-Apsdai-Timestamp header")
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return Verification(False, "X-Apsdai-Timestamp is not epoch milliseconds (digits only)")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    skew_ms = now - int(timestamp)
    if abs(skew_ms) > tolerance_s * 1000:
        seconds = -(-abs(skew_ms) // 1000)  # round up, so 300.2 s never reads as "300 s"
        direction = "old" if skew_ms > 0 else "in the future"
        return Verification(False, f"timestamp is {seconds} s {direction} (tolerance {tolerance_s} s)")
    if not any(_same(token, compute_signature(s, timestamp)) for s in secrets):
        return Verification(False, "signature does not match: check the secret")
    return _verify_body(lowered, secrets, timestamp, body)


def _verify_body(lowered: Mapping[str, str], secrets: list[str], timestamp: str | None,
                 body: bytes | None) -> Verification:
    header = lowered.get("x-apsdai-signature-256")
    if header is None or body is None:
        return Verification(True)  # the seed's senders do not sign the body
    if not timestamp or not _TIMESTAMP_RE.fullmatch(timestamp):
        return Verification(False, "X-Apsdai-Signature-256 needs X-Apsdai-Timestamp")
    sent = [part.strip() for part in header.split(",")]
    expected = [body_signature(s, timestamp, body) for s in secrets]
    if not any(_same(a, b) for a in sent for b in expected):
        return Verification(False, "body signature does not match: the body was altered, or check the secret")
    return Verification(True)
