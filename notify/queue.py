"""Redis and the RQ queue. The database is the source of truth; Redis only carries work."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import redis
from flask import current_app
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

# Enough for the slowest transport (connect + read timeouts, SMTP) with room to record the attempt.
JOB_TIMEOUT = 120
# A failed job is kept a day so the operator can read its traceback in `rq info` / Redis.
FAILURE_TTL = 24 * 3600
ACTIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}


def redis_url(app=None) -> str:
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if url:
        return url
    from notify import embedded_redis

    return embedded_redis.ensure_running(Path(app.instance_path) / "redis")


def get_redis(app=None) -> redis.Redis:
    """The app's Redis client, created on first use (never at import time)."""
    app = app or current_app
    client = app.extensions.get("merchant_notify.redis")
    if client is None:
        client = redis.Redis.from_url(redis_url(app), socket_connect_timeout=2, socket_timeout=10,
                                      health_check_interval=30)
        app.extensions["merchant_notify.redis"] = client
    return client


def get_queue(app=None) -> Queue:
    app = app or current_app
    return Queue(app.config["RQ_QUEUE"], connection=get_redis(app), serializer=JSONSerializer,
                 default_timeout=JOB_TIMEOUT)


def enqueue_deliveries(items: list[tuple[str, str]], at: datetime | None = None) -> None:
    """Enqueue `deliver(delivery_id)` for each `(delivery_id, job_id)`, now or at `at` (naive UTC).

    Raises `redis.RedisError` when Redis is unreachable; callers that have already committed the
    deliveries log it and rely on the sweeper.
    """
    if not items:
        return
    queue = get_queue()
    if at is None:
        datas = [Queue.prepare_data("notify.jobs.deliver", args=(delivery_id,), job_id=job_id, result_ttl=0,
                                    failure_ttl=FAILURE_TTL, timeout=JOB_TIMEOUT)
                 for delivery_id, job_id in items]
        queue.enqueue_many(datas)
        return
    when = at.replace(tzinfo=timezone.utc)
    for delivery_id, job_id in items:
        queue.enqueue_at(when, "notify.jobs.deliver", delivery_id, job_id=job_id, result_ttl=0,
                         failure_ttl=FAILURE_TTL, job_timeout=JOB_TIMEOUT)


def jobs_missing(job_ids: list[str]) -> set[str]:
    """The ids among `job_ids` that have no live job in Redis (never made, lost, finished or failed)."""
    if not job_ids:
        return set()
    queue = get_queue()
    jobs = Job.fetch_many(job_ids, connection=queue.connection, serializer=JSONSerializer)
    missing = set()
    for job_id, job in zip(job_ids, jobs):
        if job is None or job.get_status(refresh=False) not in ACTIVE_JOB_STATES:
            missing.add(job_id)
    return missing
