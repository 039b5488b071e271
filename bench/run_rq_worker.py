"""Burst RQ worker driven by the benchmark: python -m bench.run_rq_worker QUEUE REDIS_URL default|simple

Protocol: after imports and set-up it prints "ready" on stdout, then blocks until a
line arrives on stdin, so the parent can exclude interpreter start-up from the timing.
It then drains QUEUE in burst mode (exits when the queue is empty) and exits 0.

bench.tasks (hence requests) is imported before forking, giving the forking Worker its
best case; BENCH_RQ_PRELOAD=0 skips that, like a plain `rq worker` (each work horse
then imports requests itself: about 5 jobs/s instead of 25-40 on this machine).
"""
import os
import sys

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.serializers import JSONSerializer

if os.environ.get("BENCH_RQ_PRELOAD", "1") == "1":
    import bench.tasks  # noqa: F401


def main():
    queue_name, redis_url, kind = sys.argv[1:4]
    worker_cls = {"default": Worker, "simple": SimpleWorker}[kind]
    conn = Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=conn, serializer=JSONSerializer)
    worker = worker_cls([queue], connection=conn, serializer=JSONSerializer)
    print("ready", flush=True)
    sys.stdin.readline()
    # WARNING level: per-job INFO lines would measure the log sink, not the queue.
    worker.work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
