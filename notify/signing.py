"""The APSDAI webhook signature (`X-Apsdai-Token`), Standard Webhooks signatures, and secret helpers.

`string_to_sign = timestamp_ms + "\\n" + secret`, HMAC-SHA256 keyed with the secret, Base64 of the
raw digest, then URL-encoded once (as `urllib.parse.quote_plus`). DingTalk's 加签 uses the same
algorithm, so its transport reuses `sign`.

Standard Webhooks (`webhook-signature`) keys its HMAC with the *decoded* bytes of a `whsec_` secret,
while the seed's token and `X-Apsdai-Signature-256` key theirs with the secret's text, `whsec_`
included. Both hold at once for one secret: each scheme reads the same string its own way.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time


def sign_base64(secret: str, timestamp_ms: int | str) -> str:
    """The Base64 signature before URL-encoding."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


# Base64 holds three characters that URL-encoding changes; quote_plus writes them so. A table
# does the same to the same text in a fraction of quote_plus's time (it runs once per delivery).
_URL_ENCODE_BASE64 = str.maketrans({"+": "%2B", "/": "%2F", "=": "%3D"})


def sign(secret: str, timestamp_ms: int | str) -> str:
    """The URL-encoded signature: the value of `X-Apsdai-Token` in signature mode
    (`quote_plus` of the Base64, to the character)."""
    return sign_base64(secret, timestamp_ms).translate(_URL_ENCODE_BASE64)


def body_signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    """One entry of X-Apsdai-Signature-256: `sha256=` + hex HMAC-SHA256 of `timestamp_ms + "." + body`
    under `secret`. Unlike the seed's token it covers the body (docs/webhooks.md)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


STANDARD_PREFIX = "whsec_"
# The Standard Webhooks spec: the secret is 24 to 64 random bytes.
STANDARD_MIN_BYTES, STANDARD_MAX_BYTES = 24, 64


def standard_key(secret: str | None) -> bytes | None:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + standard Base64 of 24–64 bytes), or
    None when `secret` is not one. Strict: the URL-safe alphabet (`-`, `_`), which older versions of
    this product generated, is refused rather than silently decoded to other bytes (the official
    libraries skip characters outside the standard alphabet, so such a key would verify nothing)."""
    if not secret or not secret.startswith(STANDARD_PREFIX):
        return None
    text = secret[len(STANDARD_PREFIX):]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if STANDARD_MIN_BYTES <= len(key) <= STANDARD_MAX_BYTES else None


def standard_signature(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> str:
    """One entry of `webhook-signature`: `v1,` + Base64 of HMAC-SHA256 of
    `message_id + "." + timestamp_s + "." + body` under the decoded key."""
    digest = hmac.new(key, f"{message_id}.{timestamp_s}.".encode("utf-8") + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def now_ms() -> int:
    return int(time.time() * 1000)


def generate_secret() -> str:
    """A strong random secret: `whsec_` + standard Base64 of 32 random bytes (256 bits), which is a
    Standard Webhooks secret as well as a secret for the seed's signature."""
    return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def mask(secret: str | None) -> str:
    """`whsec_abc…wxyz` → `••••••••wxyz`: enough to recognise a secret, not to use it."""
    if not secret:
        return ""
    tail = secret[-4:] if len(secret) >= 12 else ""
    return "••••••••" + tail
