"""The APSDAI WebHook: a signed JSON POST, byte-for-byte the seed's headers and signature."""
from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l

from notify import guard, messages, signing
from notify.reasons import Reason, reason
from notify.channels.base import PERMANENT, SUCCESS, CannotPrepare, OutgoingRequest, Outcome, Transport

AUTH_SIGNATURE = "signature"
AUTH_PASSWORD = "password"
AUTH_MODES = (AUTH_SIGNATURE, AUTH_PASSWORD)
MAX_URL_LENGTH = 2048
# A receiver answers this to stop the retries of one delivery (docs/webhooks.md).
STOP_STATUS = 422


def encode_body(envelope: dict) -> bytes:
    """Compact UTF-8 JSON; Chinese product names travel as characters, not \\u escapes.

    The data goes as it was stored, whatever its depth (past Python's recursion limit it is
    written without recursion, to the same bytes). Lone surrogates, which UTF-8 cannot carry,
    become U+FFFD. NaN and Infinity are not JSON, and a receiver's parser would refuse the body
    on every retry: `CannotPrepare` says so instead."""
    try:
        text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        text = None
    except ValueError:
        raise CannotPrepare(_not_json()) from None
    if text is None:
        try:
            text = dumps_without_recursion(envelope)
        except ValueError:
            raise CannotPrepare(_not_json()) from None
    return messages.utf8(text)


def _not_json() -> Reason:
    return reason("data_not_json")


class _Token(str):
    """Punctuation already written out, on `dumps_without_recursion`'s stack beside values."""


def _key(key) -> str:
    # The keys json.dumps accepts, written as it writes them.
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, (int, float)):
        return _scalar(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _scalar(value) -> str:
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)  # ValueError past the interpreter's digit limit, as json.dumps
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"out of range float value: {value!r}")
        return float.__repr__(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps_without_recursion(value) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`, to the
    character, with an explicit stack instead of recursion: for data nested deeper than the
    interpreter's recursion limit allows json to write."""
    out: list[str] = []
    stack: list = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Token:
            out.append(item)
        elif isinstance(item, dict):
            parts: list = [_Token("{")]
            for index, (key, member) in enumerate(item.items()):
                parts += [_Token(("," if index else "") + encode_basestring(_key(key)) + ":"), member]
            parts.append(_Token("}"))
            stack.extend(reversed(parts))
        elif isinstance(item, (list, tuple)):
            parts = [_Token("[")]
            for index, member in enumerate(item):
                if index:
                    parts.append(_Token(","))
                parts.append(member)
            parts.append(_Token("]"))
            stack.extend(reversed(parts))
        else:
            out.append(_scalar(item))
    return "".join(out)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a WebHook target, or None. Shared by the form, the import and the API."""
    url = (url or "").strip()
    if not url:
        return str(_l("Enter the URL that should receive the WebHook."))
    if len(url) > MAX_URL_LENGTH:
        return str(_l("The URL is longer than %(n)d characters.", n=MAX_URL_LENGTH))
    if any(ch.isspace() for ch in url):
        return str(_l("The URL must not contain spaces."))
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        return str(_l("This is not a valid URL, e.g. https://example.com/hooks/apsdai"))
    if not parts.scheme or not parts.netloc:
        return str(_l("This is not a valid URL, e.g. https://example.com/hooks/apsdai"))
    if parts.scheme.lower() not in ("http", "https"):
        return str(_l("Only http:// and https:// URLs are supported, not %(scheme)s://.", scheme=parts.scheme))
    if not parts.hostname:
        return str(_l("The URL has no host name."))
    if parts.username or parts.password:
        return str(_l("Put credentials in the secret, not in the URL."))
    allow_private = current_app.config["ALLOW_PRIVATE_TARGETS"] if has_app_context() else False
    return guard.check_on_save(parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80), allow_private)


def standard_headers(signers: list[str], delivery_id: str, timestamp_ms: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers: `webhook-id` is the delivery id (the same on every retry),
    `webhook-timestamp` the attempt's time in seconds (the same moment as X-Apsdai-Timestamp), and
    `webhook-signature` one `v1,` entry per secret that is a Standard Webhooks secret (two during a
    rotation whose old secret is one too). Raises `CannotPrepare` when none is: validation keeps
    that from happening to a saved channel."""
    timestamp_s = timestamp_ms // 1000
    keys = [key for key in (signing.standard_key(s) for s in signers) if key]
    if not keys:
        with messages.merchant_locale():
            raise CannotPrepare(str(_l("Standard Webhooks is on, but the secret is not a whsec_ secret: "
                                       "generate a new one on the WebHook's page.")))
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": " ".join(signing.standard_signature(k, delivery_id, timestamp_s, body) for k in keys),
    }


class WebhookTransport(Transport):
    kind = "webhook"
    label = _l("WebHook")
    send_needs_app = False  # a signed POST: nothing in `send` reads the app

    def prepare(self, event, delivery, timestamp_ms: int) -> OutgoingRequest:
        secret = self.channel.secret or ""
        rotating = self.channel.rotating()
        # During a rotation the seed's token keeps the old secret (receivers that know only it
        # keep working); the body signatures carry both, the new one first.
        token_secret = self.channel.previous_secret if rotating else secret
        signers = [secret, self.channel.previous_secret] if rotating else [secret]
        return self._build(event, delivery, timestamp_ms, token_secret, signers)

    def prepare_forgery(self, event, delivery, timestamp_ms: int) -> OutgoingRequest:
        """The request `prepare` would build, but with every credential made from a fresh random
        secret that no receiver knows: the signature check's probe (notify.probe). Nothing else
        tells it apart from a real delivery, so a receiver cannot accept real requests only."""
        wrong = signing.generate_secret()
        return self._build(event, delivery, timestamp_ms, wrong, [wrong])

    def _build(self, event, delivery, timestamp_ms: int, token_secret: str, signers: list[str]) -> OutgoingRequest:
        config = self.channel.config or {}
        if config.get("auth_mode") == AUTH_PASSWORD:
            token = token_secret
        else:
            token = signing.sign(token_secret, timestamp_ms)
        body = encode_body(event.envelope())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "apsdai-hook",
            "X-Apsdai-Token": token,
            "X-Apsdai-Timestamp": str(timestamp_ms),
            "X-Apsdai-Event": event.hook,
            "X-Apsdai-Delivery": delivery.id,
            "X-Apsdai-Signature-256": ", ".join(signing.body_signature(s, timestamp_ms, body) for s in signers),
        }
        replayable = ("X-Apsdai-Signature-256",)
        if config.get("standard_webhooks"):
            headers.update(standard_headers(signers, delivery.id, timestamp_ms, body))
            replayable += ("webhook-signature",)
        masked = dict(headers, **{"X-Apsdai-Token": signing.mask(token)})
        return OutgoingRequest("POST", config.get("url", ""), headers, body, masked, replayable_headers=replayable)

    def send(self, request: OutgoingRequest) -> Outcome:
        result, outcome = self.post(request)
        if result.status is None:
            return outcome
        if 200 <= result.status < 300:
            outcome.kind = SUCCESS
        elif result.status == 410:
            # Gone: the receiver says this endpoint no longer exists. Retrying cannot help.
            outcome.kind, outcome.gone = PERMANENT, True
            outcome.error = reason("webhook_gone")
        elif result.status == STOP_STATUS:
            # The receiver refuses this delivery on purpose: no retries, the endpoint is fine.
            outcome.kind, outcome.needs_attention = PERMANENT, False
            outcome.error = reason("webhook_refused", status=STOP_STATUS)
        elif 300 <= result.status < 400:
            location = result.headers.get("Location", "")
            outcome.error = reason("webhook_redirect", status=result.status, location=location or "?")
        else:
            # 401/403: most often a receiver with another secret; its answer is kept beside this.
            outcome.error = reason("webhook_unauthorized" if result.status in (401, 403) else "webhook_status",
                                   status=result.status)
            if result.status in (429, 503):
                outcome.retry_after = result.retry_after
        return outcome

    @classmethod
    def normalize(cls, config: dict) -> dict:
        """The flag is always stored, so a settings file shows it either way."""
        return dict(config, standard_webhooks=bool(config.get("standard_webhooks", False)))

    @classmethod
    def validate(cls, config: dict, secret: str | None) -> dict[str, str]:
        errors = {}
        problem = url_problem(config.get("url", ""))
        if problem:
            errors["url"] = problem
        mode = config.get("auth_mode")
        standard = config.get("standard_webhooks", False)
        if not isinstance(standard, bool):
            errors["standard_webhooks"] = str(_l("Standard Webhooks is either true or false."))
        elif standard and mode == AUTH_PASSWORD:
            # The password travels in every request: it must not also be the key of its signatures.
            errors["standard_webhooks"] = str(_l("Standard Webhooks signs each request with the secret, which "
                                                 "password mode sends as-is in every request: choose signature "
                                                 "mode."))
        if mode not in AUTH_MODES:
            errors["auth_mode"] = str(_l("Choose password or signature."))
        elif not (secret or "").strip():
            errors["secret"] = (str(_l("A signature needs a secret: type one or press Generate."))
                                if mode == AUTH_SIGNATURE else str(_l("Enter the password to send.")))
        elif len(secret) > 512:
            errors["secret"] = str(_l("The secret is longer than 512 characters."))
        elif any(ch in secret for ch in "\r\n"):
            errors["secret"] = str(_l("The secret must not contain line breaks."))
        elif mode == AUTH_PASSWORD and not _fits_a_header(secret):
            errors["secret"] = str(_l("The password travels in an HTTP header, which carries only Latin-1 "
                                      "characters: use letters, digits and punctuation (no Chinese characters "
                                      "or emoji)."))
        elif standard is True and signing.standard_key(secret) is None:
            errors["secret"] = str(_l(
                "Standard Webhooks needs a secret of the form whsec_ followed by the standard Base64 of 24 to 64 "
                "random bytes (secrets generated before this version use another alphabet). Press Generate and "
                "give your receiver the new secret, or first rotate the secret with a window, so that receivers "
                "knowing only the old one keep working meanwhile."))
        return errors


def _fits_a_header(value: str) -> bool:
    """Whether `value` can travel as an HTTP header value (http.client writes them as Latin-1)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
