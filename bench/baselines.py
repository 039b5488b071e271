"""Baseline senders. Each posts n ~1 KB deliveries to url + "/hook" and returns deliveries/s.

Timing is wall time from the first send to the last answer. Process start-up and
imports are excluded: helper processes are started first, report ready, and are
then released together (Barrier, or a line on stdin for the RQ worker).
Failures (non-2xx, connection errors) raise RuntimeError instead of returning a figure.
"""
import multiprocessing
import subprocess
import tempfile
import time
import uuid
from urllib.parse import urlsplit

import requests

from bench.common import PROJECT_DIR, PYTHON, _stop, headers_for, make_body


def _raw_worker(url, start, count, barrier, results):
    """Child of raw_requests: keep-alive Session loop over deliveries [start, start+count)."""
    session = requests.Session()
    failures = 0
    barrier.wait()
    try:
        for i in range(start, start + count):
            resp = session.post(url, data=make_body(i), headers=headers_for(i), timeout=10)
            resp.content  # read the whole answer, as a real sender would
            failures += resp.status_code != 200
    except Exception as exc:  # always report, so the parent never waits on a dead child
        results.put(f"{type(exc).__name__}: {exc}")
        return
    results.put(failures)


def raw_requests(url, n, processes=1):
    """Total deliveries/s of `processes` processes, each a keep-alive requests.Session loop.

    n is split among the processes; divide the result by `processes` for a per-process figure.
    """
    # spawn, not fork: children start from a clean interpreter like real sender processes.
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    shares = [n // processes + (k < n % processes) for k in range(processes)]
    procs = [ctx.Process(target=_raw_worker,
                         args=(url + "/hook", sum(shares[:k]), shares[k], barrier, results))
             for k in range(processes)]
    try:
        for p in procs:
            p.start()
        barrier.wait(timeout=60)  # all children imported and ready
        t0 = time.perf_counter()
        outcomes = [results.get(timeout=300) for _ in procs]
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
    errors = [o for o in outcomes if isinstance(o, str)]
    if errors:
        raise RuntimeError(f"raw_requests: {errors[0]}")
    if sum(outcomes):
        raise RuntimeError(f"raw_requests: {sum(outcomes)}/{n} deliveries not answered 200")
    return n / elapsed


def apprise_json(url, n):
    """Deliveries/s of one Apprise object with a json:// URL, reused for n notify() calls.

    Apprise's JSON notifier wraps our body in its own envelope and opens a new
    connection per call (requests.request, no session); that is what is measured.
    """
    import apprise

    parts = urlsplit(url)
    # "+Name=value" query args become extra HTTP headers in Apprise.
    target = (f"json://{parts.hostname}:{parts.port}/hook"
              "?+X-Apsdai-Token=bench-token-7f3c2a91&+X-Apsdai-Event=order_pay_hook")
    apobj = apprise.Apprise()
    if not apobj.add(target) or len(apobj) != 1:
        raise RuntimeError(f"apprise rejected URL {target}")
    failures = 0
    t0 = time.perf_counter()
    for i in range(n):
        # notify() returns False when the receiver did not answer 2xx or was unreachable.
        failures += not apobj.notify(body=make_body(i).decode(), title="order_pay_hook")
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"apprise_json: {failures}/{n} notifications failed")
    return n / elapsed


def plain_rq(url, n, redis_url, worker="default"):
    """Deliveries/s of one burst RQ worker draining n pre-enqueued post_once jobs.

    worker="default": rq.Worker (forks a work horse per job); "simple": rq.SimpleWorker.
    Timed from releasing the already-started worker until n jobs are finished.
    """
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    from bench.tasks import post_once

    conn = Redis.from_url(redis_url)
    queue = Queue(f"bench-{uuid.uuid4().hex[:12]}", connection=conn, serializer=JSONSerializer)
    hook = url + "/hook"
    for chunk in range(0, n, 500):  # enqueue in pipelined batches; not part of the timing
        queue.enqueue_many([Queue.prepare_data(post_once, (hook, i))
                            for i in range(chunk, min(n, chunk + 500))])
    finished, failed = queue.finished_job_registry, queue.failed_job_registry
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([PYTHON, "-m", "bench.run_rq_worker", queue.name, redis_url, worker],
                            cwd=PROJECT_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=log, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("RQ worker failed to start: " + _tail(log))
        t0 = time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        deadline = t0 + 60 + n  # generous: >= 1 job/s
        while True:
            # cleanup=False: count only, no registry maintenance between polls.
            done = finished.get_job_count(cleanup=False)
            bad = failed.get_job_count(cleanup=False)
            if done + bad >= n:
                elapsed = time.perf_counter() - t0
                break
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"RQ worker stopped after {done} ok/{bad} failed of {n} "
                                   f"(exit={proc.poll()}): " + _tail(log))
            time.sleep(0.005)
        proc.wait(30)  # burst mode: exits once the queue is empty
    finally:
        _stop(proc)
        log.close()
        queue.delete(delete_jobs=True)
        conn.close()
    if bad:
        raise RuntimeError(f"plain_rq: {bad}/{n} jobs failed")
    return n / elapsed


def _tail(fileobj, size=2000):
    fileobj.seek(0)
    return fileobj.read().decode(errors="replace")[-size:]
