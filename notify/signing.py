"""The APSDAI webhook signature (`X-Apsdai-Token`) and secret helpers.

`string_to_sign = timestamp_ms + "\\n" + secret`, HMAC-SHA256 keyed with the secret, Base64 of the
raw digest, then URL-encoded once (as `urllib.parse.quote_plus`). DingTalk's 加签 uses the same
algorithm, so its transport reuses `sign`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote_plus


def sign_base64(secret: str, timestamp_ms: int | str) -> str:
    """The Base64 signature before URL-encoding."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(secret: str, timestamp_ms: int | str) -> str:
    """The URL-encoded signature: the value of `X-Apsdai-Token` in signature mode."""
    return quote_plus(sign_base64(secret, timestamp_ms))


def body_signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    """One entry of X-Apsdai-Signature-256: `sha256=` + hex HMAC-SHA256 of `timestamp_ms + "." + body`
    under `secret`. Unlike the seed's token it covers the body (docs/webhooks.md)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def now_ms() -> int:
    return int(time.time() * 1000)


def generate_secret() -> str:
    """A strong random secret (256 bits), URL-safe so it pastes cleanly into any config file."""
    return "whsec_" + secrets.token_urlsafe(32)


def mask(secret: str | None) -> str:
    """`whsec_abc…wxyz` → `••••••••wxyz`: enough to recognise a secret, not to use it."""
    if not secret:
        return ""
    tail = secret[-4:] if len(secret) >= 12 else ""
    return "••••••••" + tail
