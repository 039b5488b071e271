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
    import os

    session = requests.Session()
    failures = 0
    barrier.wait()
    before = os.times()
    try:
        for i in range(start, start + count):
            resp = session.post(url, data=make_body(i), headers=headers_for(i), timeout=10)
            resp.content  # read the whole answer, as a real sender would
            failures += resp.status_code != 200
    except Exception as exc:  # always report, so the parent never waits on a dead child
        results.put(f"{type(exc).__name__}: {exc}")
        return
    after = os.times()
    results.put((failures, (after.user - before.user) + (after.system - before.system)))


def raw_requests(url, n, processes=1, cpu: list | None = None):
    """Total deliveries/s of `processes` processes, each a keep-alive requests.Session loop.

    n is split among the processes; divide the result by `processes` for a per-process figure.
    When `cpu` is a list, the run's CPU milliseconds a delivery (user + system, all processes) are
    appended to it.
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
    failures = sum(o[0] for o in outcomes)
    if failures:
        raise RuntimeError(f"raw_requests: {failures}/{n} deliveries not answered 200")
    if cpu is not None:
        cpu.append(sum(o[1] for o in outcomes) * 1000 / n)
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


def _signed_request(i: int, secret: str = "whsec_bench_secret_0123456789") -> tuple[bytes, dict]:
    """Delivery number i as the product sends it: the ~1 KB JSON body, the seed's headers, the
    timestamp token and the body signature (notify.signing), computed per request as the product does."""
    from notify import signing

    body = make_body(i)
    timestamp_ms = signing.now_ms()
    headers = dict(headers_for(i), **{"X-Apsdai-Timestamp": str(timestamp_ms),
                                      "X-Apsdai-Token": signing.sign(secret, timestamp_ms),
                                      "X-Apsdai-Signature-256": signing.body_signature(secret, timestamp_ms, body)})
    return body, headers


def _pool_worker(url, n, threads, barrier, results):
    """Child of threaded_pool: `threads` threads share one urllib3 PoolManager and n deliveries."""
    import os
    import threading

    import urllib3

    pool = urllib3.PoolManager(maxsize=threads, retries=False, timeout=urllib3.Timeout(connect=5, read=10))
    counter = iter(range(n))
    lock = threading.Lock()
    failures = []

    def run():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                body, headers = _signed_request(i)
                resp = pool.urlopen("POST", url, body=body, headers=headers, redirect=False)
                if resp.status != 200:
                    failures.append(resp.status)
            except Exception as exc:  # always report, so the parent never waits on a dead child
                failures.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=run) for _ in range(threads)]
    barrier.wait()
    before = os.times()
    t0 = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - t0
    after = os.times()
    results.put((elapsed, (after.user - before.user) + (after.system - before.system), failures[:3], len(failures)))


def threaded_pool(url, n, threads=16) -> tuple[float, float]:
    """(deliveries/s, CPU ms a delivery) of one process sending n signed deliveries from `threads`
    threads through one urllib3 PoolManager: what one Python process can send, the strongest
    honest baseline for one worker process. Nothing is recorded."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    proc = ctx.Process(target=_pool_worker, args=(url + "/hook", n, threads, barrier, results))
    try:
        proc.start()
        barrier.wait(timeout=60)
        elapsed, cpu, sample, failures = results.get(timeout=300)
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if failures:
        raise RuntimeError(f"threaded_pool: {failures}/{n} deliveries failed, e.g. {sample}")
    return n / elapsed, cpu * 1000 / n


def receiver_capacity(url, seconds=5, connections=16) -> float:
    """Requests/s the receiver answers under wrk (a C load generator, 2 threads) posting the same
    ~1 KB bodies: the ceiling no sender on this machine can pass. None when wrk is missing."""
    import os
    import re
    import shutil

    if not shutil.which("wrk"):
        return None
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as body:
        body.write(make_body(0))
        body.flush()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "-s", os.path.join(PROJECT_DIR, "bench", "post_hook.lua"),
             url + "/hook"], env=dict(os.environ, BENCH_BODY_FILE=body.name), capture_output=True, text=True,
            check=True).stdout
    fields = dict(re.findall(r"(\w+)=([\d.]+)", out.split("RESULT", 1)[1]))
    if int(fields["errors"]):
        raise RuntimeError(f"receiver_capacity: {fields['errors']} errors under wrk")
    return int(fields["requests"]) / float(fields["seconds"])
