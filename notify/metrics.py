"""Prometheus metrics: what an operator watches (see README "Metrics").

Counters and the duration histogram are counted by the worker processes as they record attempts.
With PROMETHEUS_MULTIPROC_DIR set (`make run` sets it), every process on the machine writes them
there and the admin's `/metrics` adds them up; a worker on another machine serves its own with
`flask --app app worker --metrics-port PORT`. The queue and backlog gauges are read from Redis
and the database when `/metrics` is scraped.
"""
from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

ATTEMPTS = Counter("merchant_notify_attempts_total", "Delivery attempts, by channel kind and outcome "
                   "(success, transient, permanent).", ["channel_kind", "outcome"])
FINISHED = Counter("merchant_notify_deliveries_finished_total", "Deliveries that reached a final state, by channel "
                   "kind and status (delivered, failed, dead, cancelled).", ["channel_kind", "status"])
DIGESTS = Counter("merchant_notify_digests_total", "Digest messages sent (several waiting events in one message), "
                  "by channel kind.", ["channel_kind"])
FOLDED = Counter("merchant_notify_folded_deliveries_total", "Deliveries sent in a digest, by channel kind.",
                 ["channel_kind"])
DURATION = Histogram("merchant_notify_attempt_duration_seconds", "How long one attempt took, from sending to the "
                     "answer or the error.", ["channel_kind"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


class BacklogCollector:
    """Gauges read at scrape time; needs an app context."""

    def collect(self):
        from sqlalchemy import func

        from extensions import db
        from models import Delivery, DeliveryStatus
        from models.base import utcnow
        from notify import queue

        now = utcnow()
        active = GaugeMetricFamily("merchant_notify_active_deliveries", "Deliveries not yet final, by status.",
                                   labels=["status"])
        counts = dict(db.session.execute(
            db.select(Delivery.status, func.count()).where(Delivery.status.in_(DeliveryStatus.ACTIVE))
            .group_by(Delivery.status)).all())
        for status in DeliveryStatus.ACTIVE:
            active.add_metric([status], counts.get(status, 0))
        yield active
        oldest = db.session.scalar(
            db.select(func.min(Delivery.next_attempt_at))
            .where(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
                   Delivery.next_attempt_at <= now))
        db.session.rollback()
        yield GaugeMetricFamily("merchant_notify_oldest_due_delivery_seconds",
                                "How long the longest-waiting due delivery has been due (0 when none is).",
                                value=(now - oldest).total_seconds() if oldest else 0.0)
        yield GaugeMetricFamily("merchant_notify_queue_ready", "Deliveries waiting in Redis, due or scheduled.",
                                value=queue.ready_count())
        yield GaugeMetricFamily("merchant_notify_queue_due", "Deliveries waiting in Redis that are due now.",
                                value=queue.due_count(time.time()))
        yield GaugeMetricFamily("merchant_notify_rq_jobs_queued", "Drain and periodic jobs waiting in RQ.",
                                value=len(queue.get_queue()))


def record_attempt(channel_kind: str, outcome: str, duration_ms: int, final_status: str | None) -> None:
    ATTEMPTS.labels(channel_kind, outcome).inc()
    DURATION.labels(channel_kind).observe(duration_ms / 1000)
    if final_status:
        FINISHED.labels(channel_kind, final_status).inc()


def record_attempts(attempts: list[tuple[str, str, int, str | None]]) -> None:
    """`record_attempt` for a batch of (channel kind, outcome, duration ms, final status): each
    counter is added to once per label set, not once per attempt (with PROMETHEUS_MULTIPROC_DIR
    every addition is a locked write to a shared file)."""
    tried: dict[tuple[str, str], int] = {}
    finished: dict[tuple[str, str], int] = {}
    durations: dict[str, list[int]] = {}
    for channel_kind, outcome, duration_ms, final_status in attempts:
        tried[channel_kind, outcome] = tried.get((channel_kind, outcome), 0) + 1
        durations.setdefault(channel_kind, []).append(duration_ms)
        if final_status:
            finished[channel_kind, final_status] = finished.get((channel_kind, final_status), 0) + 1
    for labels, count in tried.items():
        ATTEMPTS.labels(*labels).inc(count)
    for channel_kind, values in durations.items():
        histogram = DURATION.labels(channel_kind)
        for duration_ms in values:
            histogram.observe(duration_ms / 1000)
    for labels, count in finished.items():
        FINISHED.labels(*labels).inc(count)


def render() -> bytes:
    """The text exposition for `/metrics`: this machine's processes' counters and the backlog gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (ATTEMPTS, FINISHED, DIGESTS, FOLDED, DURATION):
            registry.register(metric)
    registry.register(BacklogCollector())
    return generate_latest(registry)
