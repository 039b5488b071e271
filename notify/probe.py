"""The signature check: does a WebHook's receiver refuse a request that is not signed with its secret?

`request_check` marks the channel's check pending and enqueues `check_signatures` on the shared
queue, so a worker sends the probe, as it sends Test deliveries: through the outbound guard and the
operator's timeouts (`Transport.post`), never from the web process. The probe is the request a
delivery of the Test sample of `order_pay_hook` would be (`"test": true` in the body, its own
delivery id in `X-Apsdai-Delivery` and `webhook-id`), with every credential made from a random
secret (`WebhookTransport.prepare_forgery`).

Any answer but a 2xx means the receiver refused it: the check *passes*. A 2xx means it accepted a
forgery: the check is *flagged*, and so is the channel (`forgery_accepted_at`) until a later check
passes. No answer (refused connection, timeout, a target the guard refuses) proves nothing: the
check is *unknown* and an earlier flag stays. The probe is not a delivery: it is recorded on the
channel alone (no Delivery or Attempt row), so it neither counts in the delivery history and
dashboard nor touches the channel's *needs attention* or run of failures.
"""
from __future__ import annotations

import json
import logging

from flask import current_app
from sqlalchemy import update

from extensions import db
from models import Channel, Event
from models.base import new_id, utcnow
from notify import hooks, queue, reasons
from notify.jobs import in_app_context
from notify.signing import now_ms
from notify.channels import DeliverySettings
from notify.channels.webhook.transport import WebhookTransport

log = logging.getLogger(__name__)

PENDING, PASSED, FLAGGED, UNKNOWN = "pending", "passed", "flagged", "unknown"
PROBE_HOOK = "order_pay_hook"


class _Probe:
    """What `prepare` reads of a delivery: its id."""

    def __init__(self, probe_id: str):
        self.id = probe_id


def request_check(channel: Channel) -> str:
    """Start a signature check of a WebHook: mark it pending and enqueue the job. Commits; returns
    the probe's id. A check asked for while another is pending replaces it (the older one's result
    is dropped when it comes)."""
    probe_id = new_id("dlv")
    channel.signature_check_id, channel.signature_check_status = probe_id, PENDING
    channel.signature_check_at, channel.signature_check_detail = utcnow(), None
    db.session.commit()
    queue.get_queue().enqueue("notify.probe.check_signatures", channel.id, probe_id,
                              job_id=f"probe-{probe_id}", result_ttl=0, failure_ttl=queue.FAILURE_TTL,
                              job_timeout=queue.JOB_TIMEOUT)
    return probe_id


def build_probe(channel: Channel, probe_id: str, timestamp_ms: int):
    """The forged request for `channel`: the Test sample of PROBE_HOOK, signed with a wrong secret."""
    event = Event(id=new_id("evt"), hook=PROBE_HOOK, data=hooks.get(PROBE_HOOK).sample, source="test",
                  is_test=True, created_at=utcnow())
    transport = WebhookTransport(channel, DeliverySettings.from_config(current_app.config))
    return transport, transport.prepare_forgery(event, _Probe(probe_id), timestamp_ms)


def verdict(status: int | None, error) -> tuple[str, str]:
    """(state, detail) for what the receiver answered the probe. Without an answer, the detail is
    the failure's reason as data (its code and parameters, JSON), put into words when shown
    (`Channel.shown_signature_check_detail`); a plain text stays as it is."""
    if status is None:
        stored = reasons.as_json(error)
        return UNKNOWN, (json.dumps(stored, ensure_ascii=False) if stored else reasons.english(error) or "")
    return (FLAGGED if 200 <= status < 300 else PASSED), f"HTTP {status}"


@in_app_context
def check_signatures(channel_id: int, probe_id: str) -> str:
    """The RQ job: send the probe and record the verdict, unless the channel is gone, is no
    WebHook, or a newer check replaced this one."""
    channel = db.session.get(Channel, channel_id)
    if channel is None or channel.kind != WebhookTransport.kind or channel.signature_check_id != probe_id:
        return "superseded"
    transport, request = build_probe(channel, probe_id, now_ms())
    db.session.rollback()  # no transaction held open while the receiver answers
    result, _outcome = transport.post(request)
    state, detail = verdict(result.status, result.error)
    now = utcnow()
    values = dict(signature_check_status=state, signature_check_at=now, signature_check_detail=detail[:2000])
    if state == PASSED:
        values["forgery_accepted_at"] = None
    elif state == FLAGGED:
        values["forgery_accepted_at"] = now
    # Conditional on the probe id: a check asked for meanwhile owns the row's check fields now.
    db.session.execute(update(Channel).where(Channel.id == channel_id, Channel.signature_check_id == probe_id)
                       .values(**values))
    db.session.commit()
    log.info("signature check of channel %s: %s (%s)", channel_id, state, detail)
    return state

