"""Periodic jobs, enqueued on RQ by `flask scheduler`.

Each task runs once per time slot (`interval` seconds) however many schedulers run: the first
scheduler to set the slot's key in Redis enqueues it. RQ's own cron scheduler is not used because
it enqueues with the pickle serializer, and the workers here read JSON only.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from notify import queue
from notify.queue import get_queue, get_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    name: str
    func: str
    interval: int


def tasks(config) -> list[Task]:
    return [Task("sweep", "notify.jobs.sweep", max(1, int(config["SWEEP_INTERVAL"]))),
            # Checks every minute whether the daily report is due (shop/report.py).
            Task("daily_report", "shop.report.daily_report_job", 60),
            Task("prune", "notify.retention.prune_job", 3600)]


def run_due(config, now: float | None = None) -> list[str]:
    """Enqueue every task whose current slot nobody has taken yet. Returns the job ids enqueued."""
    now = time.time() if now is None else now
    enqueued = []
    try:
        connection = get_redis()
        for task in tasks(config):
            slot = int(now // task.interval)
            key = queue.key(f"periodic:{task.name}:{slot}")
            if connection.set(key, "1", nx=True, ex=task.interval * 2):
                job_id = f"periodic-{task.name}-{slot}"
                get_queue().enqueue(task.func, job_id=job_id, result_ttl=task.interval * 2,
                                    failure_ttl=24 * 3600, job_timeout=max(60, task.interval))
                enqueued.append(job_id)
    except redis.RedisError as exc:
        # Redis restarting must not kill the scheduler; the next slot tries again.
        log.warning("scheduler could not reach Redis: %s", exc)
    return enqueued
