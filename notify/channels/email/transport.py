"""Email through the mail server of Settings › General (notify/shop_settings.py), CHANNELS.md section 4.

The SMTP connection is built per send from the effective settings (what the merchant saved, or
the `MAIL_*` variables), not from Flask-Mail's state, which reads the app config once at start.
Every message has a plain-text and an HTML part from this folder (`email.txt`, `email.html`). The SMTP session has
a timeout (smtplib has none by default, and a dead server would hold a sender thread forever).
A refused recipient, a refused sender and failed authentication are permanent (the merchant must
change a setting); a server that cannot be reached, or answers 4xx, is tried again later.
"""
from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import time

from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template
from flask_babel import lazy_gettext as _l
from flask_mail import Message

from notify import messages, shop_settings
from notify.reasons import Reason, reason
from notify.shop_settings import SSL, STARTTLS, MailServer
from notify.channels.base import PERMANENT, SUCCESS, TRANSIENT, OutgoingRequest, Outcome, Transport

MAX_RECIPIENTS = 20
# This folder's templates, as the template loader names them (notify.channels.init_app).
TEMPLATES = "channels/email/"
# Lines of a digest an email lists at most (notify.digests.CAP, all that one digest gathers), and
# the most bytes of its HTML part: Gmail clips a message whose HTML is over 102 KB behind "View
# entire message". A row is the order number and the amount (about 60 bytes; a product heads its
# rows), so a thousand of them fit. What does not fit follows in the next digest.
DIGEST_LINES = 1000
DIGEST_HTML_MAX_BYTES = 100_000
# UTF-8 bytes per encoded word of a header: 52 characters of Base64, a line of at most 73 with
# `Subject: ` and the word's own markers, so no line needs folding again.
_WORD_BYTES = 39


def encode_header(text: str) -> str:
    """`text` as a header value that every reader decodes back to `text`, to the character:
    plain when it is short printable ASCII, else RFC 2047 encoded words (UTF-8, Base64, cut on
    character boundaries), one per line of a folded header. Flask-Mail's own encoding leaves a
    long ASCII word unencoded beside encoded ones, and Python's folding then cuts an encoded word
    in two (an order number of 70 characters garbled the subject). Encoding it all also keeps
    `=?…?=` in the data from being decoded as if the product had written it. `text` is one line
    (`Summary.subject`): a line break here would start a header of the data's choosing."""
    if text.isascii() and text.isprintable() and len(text) <= 60 and "=?" not in text:
        return text
    words, chunk, size = [], [], 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > _WORD_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(word.encode('utf-8')).decode('ascii')}?=" for word in words)


def connect(server: MailServer) -> smtplib.SMTP:
    """An SMTP session with `server`: connected (with its timeout), TLS as configured, logged in
    when a user and a password are set. Raises what smtplib raises."""
    if server.security == SSL:
        host = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout,
                                context=ssl.create_default_context())
    else:
        host = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    try:
        if server.security == STARTTLS:
            host.starttls(context=ssl.create_default_context())
        if server.username and server.password:
            host.login(server.username, server.password)
    except BaseException:
        host.close()
        raise
    return host


def server_description() -> str:
    """Which SMTP server is in use, for the page: never the password."""
    return shop_settings.effective().mail.describe()


# email-validator explains in English only: each kind of its messages (matched by how they start)
# becomes one of ours, translated. Unknown ones get the general sentence.
_ADDRESS_PROBLEMS = (
    (("An email address must have an @-sign",), _l("there is no @")),
    (("There must be something before the @-sign",), _l("there is nothing before the @")),
    (("There must be something after the @-sign",), _l("there is nothing after the @")),
    (("The part after the @-sign is not valid. It should have a period",
      "The part after the @-sign is not valid. It is not within a valid top-level domain"),
     _l("the part after the @ must be a domain with a dot, like example.com")),
    (("The part after the @-sign is a special-use or reserved name",),
     _l("the domain after the @ is reserved and cannot receive email")),
    (("An email address cannot have two periods in a row", "An email address cannot start with a period",
      "An email address cannot have a period immediately before the @-sign", "An email address cannot end with a period",
      "An email address cannot have a period and a hyphen next to each other", "After the @-sign, periods cannot",
      "The part after the @-sign cannot start with a period", "An email address cannot have a hyphen"),
     _l("a dot or a hyphen is out of place (two in a row, or at the start or end of a part)")),
    (("The email address is too long",), _l("it is too long")),
    (("A display name and angle brackets", "An open angle bracket", "The display name"),
     _l("write the address alone, without a name or < >")),
    (("The email address contains", "The part after the @-sign contains", "Internationalized characters before",
      "The email address is not valid ASCII", "The email address has the"),
     _l("it contains a character that cannot be in an address")),
    (("Quoting the part before", "Extra character(s) found after close quote", "There can't be anything after"),
     _l("it has quotes or text around the address")),
)


def address_problem(exc: EmailNotValidError) -> str:
    """email-validator's reason, in the merchant's words and language."""
    message = str(exc)
    for starts, explanation in _ADDRESS_PROBLEMS:
        if message.startswith(starts):
            return str(explanation)
    return str(_l("it is not an email address"))


def clean_recipients(raw) -> tuple[list[str], list[str]]:
    """(normalised addresses, problems) from a list or from text separated by commas, spaces or lines."""
    if isinstance(raw, str):
        raw = raw.replace(";", ",").replace("\n", ",").split(",")
    found, problems = [], []
    for item in raw or []:
        text = str(item).strip()
        if not text:
            continue
        try:
            address = validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.append(str(_l("%(address)s: %(problem)s", address=text, problem=address_problem(exc))))
            continue
        if address not in found:
            found.append(address)
    return found, problems


class EmailTransport(Transport):
    kind = "email"
    label = _l("Email")
    # No limit of the server's, but one for the merchant's inbox: while a burst lasts, order
    # events go alone while fewer than 5 messages went in the last minute, then as digests at most
    # one a minute (docs/decisions.md). Counted per channel, not per mail account.
    folds = True
    fold_budget = (5, 60.0)
    digest_spacing = 60.0

    def __init__(self, channel, settings):
        super().__init__(channel, settings)
        # Read in the app context the drain runs in; `send` runs in a sender thread without one.
        # One transport serves one drain's batch, so a change of settings applies to the next.
        self.server = shop_settings.effective().mail
        self.suppress = current_app.config["MAIL_SUPPRESS_SEND"]

    @classmethod
    def describe(cls, config: dict) -> str:
        return ", ".join(config.get("recipients") or [])

    @classmethod
    def normalize(cls, config: dict) -> dict:
        return dict(config, recipients=clean_recipients(config.get("recipients"))[0])

    @classmethod
    def validate(cls, config: dict, secret: str | None) -> dict[str, str]:
        recipients, problems = clean_recipients(config.get("recipients"))
        if problems:
            return {"recipients": str(_l("Not a valid email address: %(problems)s", problems="; ".join(problems)))}
        if not recipients:
            return {"recipients": str(_l("Enter at least one email address."))}
        if len(recipients) > MAX_RECIPIENTS:
            return {"recipients": str(_l("At most %(n)d addresses.", n=MAX_RECIPIENTS))}
        return {}

    def prepare(self, event, delivery, timestamp_ms: int) -> OutgoingRequest:
        with messages.merchant_locale():
            summary = messages.summarize(event.hook, event.data, is_test=event.is_test)
            text, html = messages.render(TEMPLATES + "email.txt", summary), messages.render(TEMPLATES + "email.html", summary)
        recipients = list(self.channel.config.get("recipients") or [])
        message = Message(subject=encode_header(summary.subject), recipients=recipients, body=text, html=html,
                          sender=self.server.sender,
                          extra_headers={"X-Apsdai-Event": event.hook, "X-Apsdai-Delivery": delivery.id})
        headers = {"From": message.sender, "To": ", ".join(recipients), "Subject": summary.subject,
                   "X-Apsdai-Event": event.hook, "X-Apsdai-Delivery": delivery.id}
        # What is shown is the text part; what is sent is the whole MIME message.
        return OutgoingRequest("SMTP", self.server.describe(), headers, messages.utf8(text), dict(headers),
                               payload=message.as_bytes())

    def rate_key(self) -> str:
        return f"email-channel:{self.channel.id}"

    def fit_digest(self, digest):
        with messages.merchant_locale():
            return messages.fit_digest(
                digest, lambda d: len(messages.render_digest(TEMPLATES + "digest.html", d).encode("utf-8")),
                DIGEST_HTML_MAX_BYTES, DIGEST_LINES)

    def prepare_digest(self, digest, timestamp_ms: int) -> OutgoingRequest:
        if not digest.fitted:
            digest = self.fit_digest(digest)
        with messages.merchant_locale():
            text = messages.render_digest(TEMPLATES + "digest.txt", digest)
            html = messages.render_digest(TEMPLATES + "digest.html", digest)
        recipients = list(self.channel.config.get("recipients") or [])
        message = Message(subject=encode_header(digest.subject), recipients=recipients, body=text, html=html,
                          sender=self.server.sender, extra_headers={"X-Apsdai-Digest": digest.id})
        headers = {"From": message.sender, "To": ", ".join(recipients), "Subject": digest.subject,
                   "X-Apsdai-Digest": digest.id}
        return OutgoingRequest("SMTP", self.server.describe(), headers, messages.utf8(text), dict(headers),
                               payload=message.as_bytes())

    def send(self, request: OutgoingRequest) -> Outcome:
        started = time.perf_counter()
        outcome = self._send(request)
        outcome.duration_ms = int((time.perf_counter() - started) * 1000)
        return outcome

    def _send(self, request: OutgoingRequest) -> Outcome:
        recipients = [r.strip() for r in request.headers["To"].split(",")]
        if self.suppress:
            return Outcome(kind=SUCCESS, response_body="not sent: MAIL_SUPPRESS_SEND is on")
        return deliver(self.server, request.headers["From"], recipients, request.payload)


def deliver(server: MailServer, sender: str, recipients: list[str], payload: bytes) -> Outcome:
    """Send one message in one SMTP session and say how it went: the error is a reason
    (notify.reasons) with the fix, put into words when it is shown; the server's reply is a
    parameter, shown as it came. Never raises for what the server or the network does."""
    try:
        refused = _sendmail(server, sender, recipients, payload)
    except smtplib.SMTPRecipientsRefused as exc:
        return Outcome(kind=PERMANENT, status=_first_code(exc.recipients), response_body=_replies(exc.recipients),
                       error=reason("smtp_recipients", replies=_replies(exc.recipients)))
    except smtplib.SMTPAuthenticationError as exc:
        return Outcome(kind=PERMANENT, status=exc.smtp_code, response_body=_reply(exc),
                       error=reason("smtp_login", reply=_reply(exc)))
    except smtplib.SMTPSenderRefused as exc:
        kind = PERMANENT if exc.smtp_code >= 500 else TRANSIENT
        return Outcome(kind=kind, status=exc.smtp_code, response_body=_reply(exc),
                       error=reason("smtp_sender", sender=str(exc.sender), reply=_reply(exc)))
    except smtplib.SMTPResponseException as exc:
        kind = PERMANENT if exc.smtp_code >= 500 else TRANSIENT
        return Outcome(kind=kind, status=exc.smtp_code, response_body=_reply(exc),
                       error=reason("smtp_answer", reply=_reply(exc)))
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome(kind=PERMANENT, error=reason("smtp_unsupported", server=server.describe(), error=str(exc)))
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(kind=TRANSIENT, error=_connection_problem(exc, server))
    body = "250 accepted"
    if refused:
        # The server's replies, not our words: kept in English like the rest of the reply.
        body += "; refused: " + _replies(refused)
    return Outcome(kind=SUCCESS, status=250, response_body=body, error=None)


def _sendmail(server: MailServer, sender: str, recipients: list[str], payload: bytes) -> dict:
    """One SMTP session: connect (with a timeout), log in if configured, send, quit. Returns the
    refused recipients, as smtplib does; raises what smtplib raises."""
    host = connect(server)
    try:
        return host.sendmail(sender, recipients, payload)
    finally:
        _close(host)


def _close(host: smtplib.SMTP) -> None:
    """QUIT politely; a server that hangs up first has still accepted what it acknowledged."""
    try:
        host.quit()
    except (smtplib.SMTPException, OSError):
        host.close()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    message = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {message}"


def _replies(recipients: dict) -> str:
    parts = []
    for address, (code, message) in recipients.items():
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        parts.append(f"{address}: {code} {text}")
    return "; ".join(parts)


def _first_code(recipients: dict) -> int | None:
    return next((code for code, _ in recipients.values()), None)


def _connection_problem(exc: BaseException, server: MailServer) -> Reason:
    where = server.describe()
    if isinstance(exc, ConnectionRefusedError):
        return reason("smtp_refused", server=where)
    # smtplib reports a silent server as "Connection unexpectedly closed: timed out".
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in str(exc):
        return reason("smtp_timeout", server=where, seconds=f"{server.timeout:g}")
    if isinstance(exc, socket.gaierror):
        return reason("smtp_dns", server=where)
    if isinstance(exc, ssl.SSLError):
        return reason("smtp_tls", server=where, error=str(exc))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return reason("smtp_closed", server=where)
    return reason("smtp_failed", server=where, error=f"{type(exc).__name__}: {exc}")


def notice(recipients: list[str], template: str, **context) -> Message:
    """A message about the product itself (not an event): `<template>` in this folder, whose
    first line is the subject, in the merchant's language, from the configured sender."""
    settings = shop_settings.effective()
    with messages.merchant_locale():
        text = render_template(TEMPLATES + template, shop=settings.shop_name, **context).strip()
    subject, _, body = text.partition("\n")
    return Message(subject=encode_header(" ".join(subject.split())), recipients=recipients,
                   body=body.strip() + "\n", sender=settings.mail.sender)


def send_notice(recipients: list[str], template: str, **context) -> None:
    """Email the merchant about the product itself. Raises when the server refuses."""
    message = notice(recipients, template, **context)
    if current_app.config["MAIL_SUPPRESS_SEND"]:
        return
    _sendmail(shop_settings.effective().mail, message.sender, recipients, message.as_bytes())


def tell_merchant(template: str, *, exclude: int | None = None, **context) -> int:
    """Email the merchant about the product itself (`template`: a notice in this folder), through
    the recipients of every enabled email channel but `exclude`. Returns how many were told (0:
    no email channel to tell). Raises when the server refuses."""
    from extensions import db
    from models import Channel

    recipients = sorted({address for other in db.session.scalars(
        db.select(Channel).where(Channel.kind == EmailTransport.kind, Channel.enabled.is_(True), Channel.id != exclude))
        for address in other.config.get("recipients") or []})
    if recipients:
        send_notice(recipients, template, **context)
    return len(recipients)


def send_test_email(to: str) -> Outcome:
    """Send the test email of Settings › General to `to` through the effective mail server, now,
    and say how it went (the explanation in the current locale: the page's)."""
    server = shop_settings.effective().mail
    message = notice([to], "test_email.txt", server=server.describe())
    if current_app.config["MAIL_SUPPRESS_SEND"]:
        return Outcome(kind=SUCCESS, response_body="not sent: MAIL_SUPPRESS_SEND is on")
    started = time.perf_counter()
    outcome = deliver(server, message.sender, [to], message.as_bytes())
    outcome.duration_ms = int((time.perf_counter() - started) * 1000)
    return outcome
