"""What group robots (DingTalk, WeCom, Feishu) have in common: a webhook URL that holds the
credential (in its query, or Feishu's in its path), JSON messages rendered from templates
(`robot.md` beside this file, or the kind's own), @mentions chosen per group of events, an answer
that is HTTP 200 even for failures (a code in the JSON decides), and a limit per robot (20 messages
a minute unless the kind says otherwise), kept across all workers by `notify.ratelimit`.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from flask_babel import lazy_gettext as _l

from notify import hooks, messages, signing
from notify.reasons import Reason, reason
from notify.channels.base import PERMANENT, SUCCESS, TRANSIENT, OutgoingRequest, Outcome, Transport
from notify.channels.webhook.transport import url_problem

# A mainland China mobile (11 digits, 13x-19x), or an international one with its country code
# (E.164: + and 8-15 digits; DingTalk writes them +852-…, so one hyphen after the code is allowed).
MOBILE = re.compile(r"^(?:1[3-9][0-9]{9}|\+(?=(?:[0-9]-?){8,15}$)[1-9][0-9]{0,2}-?[0-9]+)$")
# A WeCom/DingTalk user id: 1-64 letters, digits and _ - @ ., starting with a letter or digit.
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MAX_MENTIONS = 20


def encode(message: dict) -> bytes:
    """Compact UTF-8 JSON, Chinese as characters: what the robots' size limits count. Lone
    surrogates (which the settings could still hold) are replaced rather than fail the encoding."""
    return messages.utf8(json.dumps(message, ensure_ascii=False, separators=(",", ":")))


def _split(value) -> list[str]:
    """A list of mentions from a list or from text separated by commas, spaces or line breaks."""
    if isinstance(value, str):
        value = re.split(r"[\s,;，；]+", value)
    return [str(v).strip() for v in (value or []) if str(v).strip()]


class RobotTransport(Transport):
    # The query parameter of the webhook URL that is the robot's credential.
    credential_param: str
    # Example URL shown in errors and placeholders.
    example_url: str
    # The service's own host: another one is asked about (`unexpected_host`). A service with
    # several (Feishu and Lark) lists them all in `official_hosts`.
    official_host: str
    official_hosts: tuple[str, ...] = ()
    rate_limits = ((20, 60.0),)
    # The most bytes of the encoded JSON message the service takes (`fit_digest`).
    max_body_bytes: int
    # `send` is `post` and reading the service's JSON answer into codes: nothing reads the app.
    send_needs_app = False
    # Order events waiting for a slot are folded into digests (notify.digests).
    folds = True
    # Which mention kinds this service supports: "all", "mobiles", "user_ids".
    mention_kinds: tuple[str, ...] = ("all", "mobiles")
    # errcode → (kind, the reason's code in notify.reasons, seconds to wait before retrying)
    errors: dict[int, tuple[str, str, float | None]] = {}
    # Codes that mean the robot is gone for good (the channel is disabled), and permanent codes
    # that refuse one message only (not the channel's fault: it does not need attention).
    gone_codes: frozenset[int] = frozenset()
    message_codes: frozenset[int] = frozenset()
    # The reason that wraps an explanation with the service's code and message (notify.reasons).
    answer_reason = "robot_errcode"

    # -- settings ----------------------------------------------------------------------------
    @classmethod
    def credential(cls, url: str) -> str:
        return (parse_qs(urlsplit(url or "").query).get(cls.credential_param) or [""])[0]

    @classmethod
    def mask_url(cls, url: str) -> str:
        """The URL with its credential masked: how it is shown, logged and exported."""
        token = cls.credential(url)
        return url.replace(f"{cls.credential_param}={token}", f"{cls.credential_param}={signing.mask(token)}") \
            if token else url

    @classmethod
    def describe(cls, config: dict) -> str:
        return cls.mask_url(config.get("url", ""))

    @classmethod
    def target_credential(cls, config: dict) -> str | None:
        return cls.credential(config.get("url") or "") or None

    @classmethod
    def public_config(cls, config: dict) -> dict:
        return dict(config, url=cls.mask_url(config.get("url", "")))

    @classmethod
    def mentions_for(cls, config: dict, group: str) -> dict:
        """`{"all": bool, "mobiles": [...], "user_ids": [...]}` for events of `group`."""
        found = (config.get("mentions") or {}).get(group) or {}
        return {"all": bool(found.get("all")), "mobiles": list(found.get("mobiles") or []),
                "user_ids": list(found.get("user_ids") or [])}

    def mentions(self, event) -> dict:
        """Whom this event's message mentions: as configured for its group of events, except in a
        Test, which mentions nobody unless the merchant ticked "Also @mention as configured"
        (`Event.test_mentions`): a Test to a robot set to @all would otherwise ping the whole group."""
        if event.is_test and not event.test_mentions:
            return {"all": False, "mobiles": [], "user_ids": []}
        return self.mentions_for(self.channel.config, hooks.get(event.hook).group)

    @classmethod
    def no_credential(cls) -> str:
        """What the URL field says when the URL holds no credential."""
        return str(_l("The URL has no %(param)s: copy the whole webhook URL from the robot's settings, "
                      "e.g. %(example)s", param=cls.credential_param, example=cls.example_url))

    @classmethod
    def validate(cls, config: dict, secret: str | None) -> dict[str, str]:
        errors = {}
        url = (config.get("url") or "").strip()
        problem = url_problem(url)
        token = cls.credential(url)
        if problem:
            errors["url"] = problem
        elif not token:
            errors["url"] = cls.no_credential()
        elif not re.fullmatch(r"[A-Za-z0-9_-]{8,128}", token):
            errors["url"] = str(_l("The %(param)s in the URL does not look right: copy the whole webhook URL again.",
                                   param=cls.credential_param))
        mentions = config.get("mentions") or {}
        if not isinstance(mentions, dict) or set(mentions) - set(hooks.GROUP_LABELS):
            errors["mentions"] = str(_l("Mentions must be given per group of events: order, inventory, statistics."))
            return errors
        for group, chosen in mentions.items():
            if not isinstance(chosen, dict):
                errors[f"mentions_{group}"] = str(_l("Mentions must be an object."))
                continue
            mobiles, user_ids = _split(chosen.get("mobiles")), _split(chosen.get("user_ids"))
            # Mobiles' problems under `mentions_<group>`, user ids' under `mentions_<group>_user_ids`,
            # so the form shows each next to its own field and neither hides the other.
            bad = [m for m in mobiles if not MOBILE.match(m)]
            if mobiles and "mobiles" not in cls.mention_kinds:
                errors[f"mentions_{group}"] = str(_l("This service mentions people by user id only."))
            elif bad:
                errors[f"mentions_{group}"] = str(_l(
                    "Not a mobile number: %(values)s. Use 11 digits for a mainland China mobile (13800000000), "
                    "or + and the country code (+85261234567).", values=", ".join(bad)))
            elif len(mobiles) + len(user_ids) > MAX_MENTIONS:
                errors[f"mentions_{group}"] = str(_l("Mention at most %(n)d people.", n=MAX_MENTIONS))
            bad = [u for u in user_ids if not USER_ID.match(u)]
            if user_ids and "user_ids" not in cls.mention_kinds:
                errors[f"mentions_{group}_user_ids"] = str(_l("This service mentions people by mobile number only."))
            elif bad:
                errors[f"mentions_{group}_user_ids"] = str(_l(
                    "Not a user id: %(values)s. A user id has letters, digits and _ - @ . only, and starts with a "
                    "letter or a digit.", values=", ".join(bad)))
        return errors

    @classmethod
    def hosts(cls) -> tuple[str, ...]:
        """The service's own hosts."""
        return cls.official_hosts or (cls.official_host,)

    @classmethod
    def unexpected_host(cls, url: str) -> str | None:
        """The URL's host when it is not one of the service's own (`hosts()`), else None. Not an
        error: gateways and proxies exist, and the tests' fake services listen on loopback; the
        admin asks the merchant to confirm such an address (robot_form.RobotForm)."""
        host = (urlsplit((url or "").strip()).hostname or "").rstrip(".").lower()
        return host if host and host not in cls.hosts() else None

    @classmethod
    def normalize(cls, config: dict) -> dict:
        """Mentions as lists, and only for the groups that mention someone."""
        raw = config.get("mentions") or {}
        cleaned = {}
        for group in hooks.GROUP_LABELS:
            chosen = raw.get(group) or {}
            item = {"all": bool(chosen.get("all")),
                    "mobiles": _split(chosen.get("mobiles")) if "mobiles" in cls.mention_kinds else [],
                    "user_ids": _split(chosen.get("user_ids")) if "user_ids" in cls.mention_kinds else []}
            if item["all"] or item["mobiles"] or item["user_ids"]:
                cleaned[group] = item
        return dict(config, url=(config.get("url") or "").strip(), mentions=cleaned)

    def rate_key(self) -> str:
        return self.credential(self.channel.config.get("url", ""))

    # -- sending -----------------------------------------------------------------------------
    def summary(self, event) -> messages.Summary:
        with messages.merchant_locale():
            return messages.summarize(event.hook, event.data, is_test=event.is_test)

    def build(self, event) -> dict:
        """The JSON message for this event."""
        raise NotImplementedError

    def signed_fields(self, timestamp_ms: int) -> dict:
        """Fields that sign the body, placed before the message (Feishu's); none by default."""
        return {}

    def answer(self, answer) -> tuple[int, str]:
        """(code, message) from the service's JSON answer; raises KeyError, TypeError or ValueError
        when it is not the service's usual shape."""
        return int(answer["errcode"]), str(answer.get("errmsg", ""))

    def request_url(self, timestamp_ms: int) -> str:
        return self.channel.config.get("url", "")

    def build_digest(self, digest) -> dict:
        """The JSON message for a `notify.messages.Digest` fitted by `fit_digest`."""
        raise NotImplementedError

    def fit_digest(self, digest):
        """As many order lines as keep the encoded message within `max_body_bytes` (a kind whose
        limit is on part of the message, as WeCom's, says so itself)."""
        with messages.merchant_locale():
            return messages.fit_digest(digest, lambda d: len(encode(self.build_digest(d))), self.max_body_bytes)

    def prepare(self, event, delivery, timestamp_ms: int) -> OutgoingRequest:
        return self._request(self.build(event), timestamp_ms)

    def prepare_digest(self, digest, timestamp_ms: int) -> OutgoingRequest:
        if not digest.fitted:
            digest = self.fit_digest(digest)
        return self._request(self.build_digest(digest), timestamp_ms)

    def _request(self, message: dict, timestamp_ms: int) -> OutgoingRequest:
        body = encode({**self.signed_fields(timestamp_ms), **message})
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "merchant-notify"}
        url = self.request_url(timestamp_ms)
        return OutgoingRequest("POST", url, headers, body, dict(headers), masked_url=self.mask_url(url))

    def send(self, request: OutgoingRequest) -> Outcome:
        result, outcome = self.post(request)
        if result.status is None:
            return outcome
        service = reason("service", kind=self.kind)
        if result.status != 200:
            if result.status in (404, 410):
                outcome.kind = PERMANENT
                outcome.gone = result.status == 410  # Gone: disabled, as a WebHook's 410
                outcome.error = reason("robot_no_robot", service=service, status=result.status)
            else:
                outcome.error = reason("robot_status", service=service, status=result.status)
            return outcome
        try:
            code, message = self.answer(json.loads(result.body))
        except (ValueError, TypeError, KeyError):
            outcome.error = reason("robot_not_json", service=service)
            return outcome
        if code == 0:
            outcome.kind = SUCCESS
            return outcome
        outcome.kind, explanation, outcome.retry_after = self.classify(code, message)
        outcome.gone = code in self.gone_codes
        outcome.needs_attention = code not in self.message_codes
        # errmsg is the service's own words: a parameter, shown as it came.
        outcome.error = reason(self.answer_reason, explanation=explanation, service=service, errcode=code,
                               errmsg=message)
        return outcome

    def classify(self, code: int, message: str) -> tuple[str, Reason, float | None]:
        """(kind, explanation, seconds to wait) for a non-zero errcode."""
        kind, explanation, wait = self.errors.get(code, (TRANSIENT, None, None))
        return kind, reason(explanation) if explanation else reason("robot_refused", service=reason(
            "service", kind=self.kind)), wait

    # -- building messages -------------------------------------------------------------------
    def fit(self, text: str, max_bytes: int) -> str:
        """`text` within `max_bytes` UTF-8 bytes, shortened with a note rather than rejected by the service."""
        with messages.merchant_locale():
            note = "\n\n" + str(_l("… (shortened: the message was too long for %(service)s)", service=self.label))
        return messages.truncate_utf8(text, max_bytes, note)

    def shrink(self, make, content: str, max_bytes: int) -> dict:
        """`make(content)`, with `content` shortened until the encoded message is within `max_bytes`."""
        message = make(content)
        excess = len(encode(message)) - max_bytes
        budget = len(content.encode("utf-8"))
        while excess > 0 and budget > 0:
            # JSON escapes make the encoded size grow faster than the text: cut a little more.
            budget -= excess + 64
            message = make(self.fit(content, budget))
            excess = len(encode(message)) - max_bytes
        return message
