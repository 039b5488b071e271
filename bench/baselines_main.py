"""Run every baseline against one local receiver and print a Markdown table.

python -m bench.baselines_main [--n N] [--reps R] [--n-simple-rq N] [--n-forking-rq N]

One redis-server and one receiver (2 sync gunicorn workers) serve all runs; each
baseline runs R times and the table shows the median deliveries/s and its ratio to
the single-process raw requests loop. Takes roughly 1-1.5 minutes with the defaults.
"""
import argparse
import functools

from bench import baselines
from bench.common import Receiver, RedisServer, format_table, median, repeat


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="deliveries per run, raw/apprise")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-simple-rq", type=int, default=1000)
    ap.add_argument("--n-forking-rq", type=int, default=200)
    args = ap.parse_args(argv)

    with RedisServer() as redis, Receiver(workers=2, threads=1) as receiver:
        url = receiver.url
        cases = [  # (label, processes, n, callable)
            ("raw requests.Session loop", 1, args.n,
             functools.partial(baselines.raw_requests, url, args.n, 1)),
            ("raw requests.Session loop", 2, args.n,
             functools.partial(baselines.raw_requests, url, args.n, 2)),
            ("Apprise json:// reused", 1, args.n,
             functools.partial(baselines.apprise_json, url, args.n)),
            ("RQ SimpleWorker, 1 POST/job", 1, args.n_simple_rq,
             functools.partial(baselines.plain_rq, url, args.n_simple_rq, redis.url, "simple")),
            ("RQ Worker (fork/job), 1 POST/job", 1, args.n_forking_rq,
             functools.partial(baselines.plain_rq, url, args.n_forking_rq, redis.url, "default")),
        ]
        baselines.raw_requests(url, 200)  # warm-up: receiver workers, page cache
        rows = []
        for label, procs, n, fn in cases:
            runs = repeat(fn, args.reps)
            rows.append({"baseline": label, "processes": procs, "n": n,
                         "median deliveries/s": median(runs),
                         "per process/s": median(runs) / procs,
                         "runs": ", ".join(f"{r:,.0f}" for r in runs)})
            print(f"done: {label} x{procs}: {rows[-1]['runs']}", flush=True)
    ref = rows[0]["median deliveries/s"]
    for row in rows:
        row["vs raw 1-proc"] = row["median deliveries/s"] / ref
    print()
    print(format_table(rows, ["baseline", "processes", "n", "median deliveries/s",
                              "per process/s", "vs raw 1-proc", "runs"]))


if __name__ == "__main__":
    main()
