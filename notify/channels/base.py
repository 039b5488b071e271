"""The contract every channel kind implements: build the request, send it, classify the outcome;
and `Kind`, what the rest of the product knows of a kind (notify/channels/__init__.py lists them).

A transport never raises for a failed delivery: `send` returns an `Outcome` whose `kind` says
whether it worked (`success`), may work later (`transient`, retried with back-off) or cannot work
until the merchant changes something (`permanent`, no more retries, the channel needs attention).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from notify import http, signing
from notify.reasons import Reason

if TYPE_CHECKING:
    from models import Channel, Delivery, Event

SUCCESS, TRANSIENT, PERMANENT = "success", "transient", "permanent"


class CannotPrepare(Exception):
    """`prepare()` cannot build a request from this event's data, and never will: retrying cannot
    help. The drain records the delivery as a permanent failure with `reason` (notify.reasons),
    put into words when it is shown."""

    def __init__(self, reason: Reason):
        super().__init__(reason.english() if isinstance(reason, Reason) else reason)
        self.reason = reason


@dataclass
class DeliverySettings:
    """The operator's limits for outbound requests, read from the app config by the job."""
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    response_max_bytes: int = 64 * 1024
    allow_private: bool = False  # ALLOW_PRIVATE_TARGETS (notify.guard)

    @classmethod
    def from_config(cls, config) -> "DeliverySettings":
        return cls(connect_timeout=config["DELIVERY_CONNECT_TIMEOUT"],
                   read_timeout=config["DELIVERY_READ_TIMEOUT"],
                   response_max_bytes=config["DELIVERY_RESPONSE_MAX_BYTES"],
                   allow_private=config["ALLOW_PRIVATE_TARGETS"])


@dataclass
class OutgoingRequest:
    method: str
    url: str
    headers: dict
    body: bytes
    # The same headers with credentials replaced: this is what gets stored and shown.
    masked_headers: dict = field(default_factory=dict)
    # The URL as stored and shown, when the real one holds a credential (a robot's token).
    masked_url: str | None = None
    # What goes on the wire when it is not `body` (an email's MIME message; `body` is its text).
    payload: bytes | None = None
    # Headers that are credentials for as long as the receiver accepts their timestamp (body
    # signatures). Stored attempts keep them, being stale by the time anyone reads them; a
    # command signed now masks them too (`masked_curl`).
    replayable_headers: tuple[str, ...] = ()

    @property
    def shown_url(self) -> str:
        return self.masked_url or self.url

    def body_text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def curl(self) -> str | None:
        """A shell command that sends exactly this request (credentials included); None when it is
        not an HTTP request."""
        return self._curl(self.url, self.headers)

    def masked_curl(self) -> str | None:
        """The same command with every credential masked (`••••`): the token or password, the
        robot's key in the URL, and signatures that a receiver would still accept."""
        headers = dict(self.masked_headers)
        for name in self.replayable_headers:
            if name in headers:
                headers[name] = signing.mask(headers[name])
        return self._curl(self.shown_url, headers)

    def _curl(self, url: str, headers: dict) -> str | None:
        if not url.startswith(("http://", "https://")):
            return None
        parts = ["curl", "-sS", "-i", "-X", self.method, url]
        for name, value in headers.items():
            parts += ["-H", f"{name}: {value}"]
        parts += ["--data-binary", self.body_text()]
        return " ".join(shlex.quote(p) for p in parts)


@dataclass
class Outcome:
    kind: str
    # Why it failed: a `notify.reasons.Reason`, stored as its code and put into words when shown
    # (a plain string is stored as text, as rows from before codes).
    error: Reason | str | None = None
    status: int | None = None
    response_headers: dict | None = None
    response_body: str | None = None
    duration_ms: int = 0
    # Seconds the service asked us to wait before trying again (Retry-After, rate-limit codes).
    retry_after: float | None = None
    # For a permanent failure: whether the channel needs the merchant's attention (False when the
    # receiver refused this one delivery on purpose), and whether the endpoint is gone for good
    # (the channel is disabled).
    needs_attention: bool = True
    gone: bool = False

    @property
    def ok(self) -> bool:
        return self.kind == SUCCESS


class Transport:
    """Base class: one subclass per channel kind, registered in `notify.channels.REGISTRY`."""

    kind: ClassVar[str]
    label: ClassVar[object]
    # ((messages, seconds), …): at most that many messages in any window of that length to one
    # `rate_key()`, across all workers, for every window (notify.ratelimit). Empty: no limit.
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ()
    # The older form, one window: read when set, so a kind declaring `rate_limit = (n, w)` still works.
    rate_limit: ClassVar[tuple[int, float] | None] = None
    # Whether waiting events may be folded into one digest message when the limit is under
    # pressure (notify.digests). A WebHook never folds: each event is its own signed request.
    folds: ClassVar[bool] = False
    # For a kind that folds, when a single message still goes on its own: while fewer than
    # `fold_budget` = (n, seconds) messages went in that window (None: half the first limit), and
    # digests at least `digest_spacing` seconds after the previous message (None: window / limit).
    fold_budget: ClassVar[tuple[int, float] | None] = None
    digest_spacing: ClassVar[float | None] = None
    # Whether `send` runs inside an app context (config, templates, the mail extension). A kind whose
    # send is only `post` (settings read when the transport was built, reasons as codes) says False:
    # entering a context costs a sender thread about a tenth of a millisecond on every delivery.
    send_needs_app: ClassVar[bool] = True

    def __init__(self, channel: "Channel", settings: DeliverySettings):
        self.channel = channel
        self.settings = settings

    def prepare(self, event: "Event", delivery: "Delivery", timestamp_ms: int) -> OutgoingRequest:
        """The request for this delivery. Never raises because of the event's data, except
        `CannotPrepare` when no request can carry it (a WebHook body that is not JSON)."""
        raise NotImplementedError

    def send(self, request: OutgoingRequest) -> Outcome:
        raise NotImplementedError

    def post(self, request: OutgoingRequest) -> tuple[http.HttpResult, Outcome]:
        """POST the request within the operator's limits: the raw result, and an outcome that is
        transient until the kind's own rule says otherwise."""
        s = self.settings
        result = http.post(request.url, request.headers, request.body, connect_timeout=s.connect_timeout,
                           read_timeout=s.read_timeout, max_bytes=s.response_max_bytes, allow_private=s.allow_private)
        # A target the outbound guard refuses will not become acceptable by retrying.
        return result, Outcome(kind=PERMANENT if result.refused else TRANSIENT, status=result.status,
                               response_headers=result.headers or None,
                               response_body=result.body if result.status is not None else None,
                               duration_ms=result.duration_ms, error=result.error)

    def rate_key(self) -> str:
        """What the service's rate limit counts by (a robot's credential)."""
        raise NotImplementedError

    @classmethod
    def limits(cls) -> tuple[tuple[int, float], ...]:
        """The kind's rate-limit windows: `rate_limit` when a kind still sets it, else `rate_limits`."""
        return (tuple(cls.rate_limit),) if cls.rate_limit else tuple(cls.rate_limits)

    @property
    def paced(self) -> bool:
        """Whether sending to this kind goes through the limiter (it has a limit, or folds)."""
        return self.folds or bool(self.limits())

    def fit_digest(self, digest):
        """The message of a `notify.messages.Digest` that fits the service's size limit, listing
        as many of the events gathered as fit (`messages.fit_digest`): what it carries
        (`Digest.carried`) is what it lists and the events that must go now even unlisted ("and N
        more"); the others wait for the next digest. Only kinds with `folds` implement it."""
        raise NotImplementedError

    def prepare_digest(self, digest, timestamp_ms: int) -> OutgoingRequest:
        """One request carrying a `notify.messages.Digest` as `fit_digest` fitted it (a digest not
        fitted yet is fitted first): its headline per hook, its lines, "and N more" with a link to
        the deliveries it carries, and how many follow in the next message. Only kinds with
        `folds` implement it."""
        raise NotImplementedError

    @classmethod
    def describe(cls, config: dict) -> str:
        """How the merchant recognises a channel of this kind (its URL, its recipients), with no
        credential in it: shown on pages and copied to each delivery."""
        return config.get("url", "")

    @classmethod
    def target_credential(cls, config: dict) -> str | None:
        """The credential the target itself holds (a robot's token in its URL), or None for kinds
        whose target holds none. It is what tells two channels of this kind apart: their shown
        target is masked (notify.settings_io matches on a fingerprint of it)."""
        return None

    @classmethod
    def public_config(cls, config: dict) -> dict:
        """The settings with any credential masked (an export without secrets)."""
        return dict(config)

    @classmethod
    def normalize(cls, config: dict) -> dict:
        """Valid settings as they are stored (lists split, blanks dropped)."""
        return dict(config)

    @classmethod
    def validate(cls, config: dict, secret: str | None) -> dict[str, str]:
        """Field name → message for every problem in this kind's settings; empty when valid."""
        raise NotImplementedError


def _no_context(*args) -> dict:
    return {}


@dataclass(frozen=True)
class Kind:
    """One channel kind as the product sees it, declared in its folder (`notify/channels/<kind>/`)
    and listed once in the registry: the admin, the settings file, the jobs and the CLI reach a
    kind only through this, so adding one touches its folder and the registry's list.

    Templates are named from the folder (`channels/<kind>/…`, served by `notify.channels.init_app`):
    `fields.html` (its settings fields, required), `method.html` (its card's description on the
    notifications page, required), and optionally `aside.html` (cards beside its settings, under
    Test) and `manage.html` (actions at the top of the settings' last card)."""

    transport: type[Transport]
    # The settings form (a forms.ChannelForm subclass): what the page shows and how it makes `config`.
    form: type
    # The URL segment of its pages: /settings/notifications/<path>/new, …/<path>/<id>.
    path: str
    # Whether a Test can @mention as configured (robots): the Test form then offers the checkbox.
    mentions: bool = False
    # Extra template values for the notifications page's card: f(channels of this kind, last attempt by id).
    method_context: Callable[[list, dict], dict[str, Any]] = _no_context
    # Extra template values for its settings page: f().
    form_context: Callable[[], dict[str, Any]] = _no_context
    # Its reason codes → English msgids (notify.reasons), joined to `notify.reasons.TEXTS`.
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.transport.kind

    @property
    def label(self):
        return self.transport.label

    def template(self, name: str) -> str:
        return f"channels/{self.name}/{name}"
