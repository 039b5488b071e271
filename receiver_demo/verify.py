"""Verify the X-Apsdai-Token of an APSDAI webhook. Standard library only; no Flask.

Signature mode: string_to_sign = timestamp_ms + "\\n" + secret (timestamp_ms = X-Apsdai-Timestamp),
digest = HMAC-SHA256(key=secret, msg=string_to_sign), both UTF-8; token = quote_plus(base64(digest)).
The timestamp must lie within ±tolerance of now (stale AND future) and the token is compared in
constant time. Password mode: the token is the configured password itself, compared in constant time.
Test vector: timestamp 1700000000000, secret "SECtest" -> aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D
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


def _same(a: str, b: str) -> bool:
    # compare_digest refuses non-ASCII str, and a header may contain anything: compare bytes.
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def verify_headers(headers: Mapping[str, str], *, mode: str, secret: str, tolerance_s: int = 300,
                   now_ms: int | None = None) -> Verification:
    """Check the X-Apsdai-* headers of one request. `headers` may be any mapping, in any casing."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not secret:
        # An empty password would otherwise match an empty token.
        return Verification(False, "no secret configured on the receiver")
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
        if not _same(token, secret):
            return Verification(False, "password does not match")
        return Verification(True)

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
    if not _same(token, compute_signature(secret, timestamp)):
        return Verification(False, "signature does not match: check the secret")
    return Verification(True)
