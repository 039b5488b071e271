"""One worker process against the threaded pool, alone: the figure issue 14 part 4 tracks, in about
40 seconds instead of the whole `make bench`.

    .venv/bin/python -m bench.quick_throughput [N] [DATABASE_URL]

N deliveries (3,000) a run, three runs of each; SQLite in a temporary folder unless a database URL
is given (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test). Settings such as
DELIVERY_PER_ENDPOINT_CONCURRENCY come from the environment, which the worker inherits.
"""
from __future__ import annotations

import sys

from bench import baselines
from bench.common import Receiver, RedisServer, median
from bench.product import worker_runs


def main(n: int, database_url: str | None, reps: int = 3) -> None:
    with RedisServer() as redis, Receiver(workers=2, threads=1) as receiver:
        url = receiver.url
        baselines.raw_requests(url, 200)  # warm-up
        pool = [baselines.threaded_pool(url, n) for _ in range(reps)]
        print("urllib3 pool, 16 threads:", [round(rate) for rate, _ in pool], "/s; CPU ms a delivery",
              [round(cpu, 2) for _, cpu in pool])
        runs, cpu = worker_runs(redis.url, url, database_url, 1, n, reps)
        ratio = median(runs) / median(rate for rate, _ in pool)
        cpu_ratio = median(cpu) / median(c for _, c in pool)
        print("one worker process:", [round(rate) for rate in runs], "/s; CPU ms a delivery",
              [round(c, 2) for c in cpu], f"; {ratio:.2f}x the pool's rate at {cpu_ratio:.2f}x its CPU a request")


if __name__ == "__main__":  # the pool runs in a spawned process, which imports this module again
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000, sys.argv[2] if len(sys.argv) > 2 else None)
