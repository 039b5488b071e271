"""The picture of a `make bench` run: bench/results.png, beside bench/results.md.

Three panels from the same rows as the tables: deliveries a second per worker process against the
raw keep-alive loop (throughput), time from emit to arrival (latency and isolation), and events
accepted a second by the API (ingest) against its target.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen here; write a file
import matplotlib.pyplot as plt  # noqa: E402

PRODUCT = "#2563eb"
BASELINE = "#9ca3af"
SLOW = "#f59e0b"
INGEST_TARGET = 500


def write(path: Path, throughput: list[dict], latency: list[dict], isolation: list[dict],
          ingest: list[dict]) -> None:
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.5, 1, 0.8]})
    _throughput(left, throughput)
    _latency(middle, latency, isolation)
    _ingest(right, [row for row in ingest if "accepted events/s" in row])
    figure.suptitle("merchant-notify benchmarks (make bench): this machine, every process sharing its cores",
                    fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _throughput(axes, rows: list[dict]) -> None:
    rows = list(reversed(rows))
    labels = [f"{row['setup']} ×{row['processes']}" for row in rows]
    values = [row["per process/s"] for row in rows]
    colors = [PRODUCT if row["setup"].startswith("merchant-notify") else BASELINE for row in rows]
    axes.barh(labels, values, color=colors)
    raw = next((row["per process/s"] for row in rows
                if row["setup"].startswith("raw") and row["processes"] == 1), None)
    if raw:
        axes.axvline(raw, color="black", linewidth=1, linestyle="--")
    pool = next((row["per process/s"] for row in rows if row["setup"].startswith("urllib3 pool")), None)
    if pool:
        axes.axvline(0.6 * pool, color="black", linewidth=1, linestyle=":")
    for y, value in enumerate(values):
        axes.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
    axes.set_title("Throughput to a fast receiver: deliveries/s per worker process\n"
                   "(dashed: the raw loop; dotted: 60 % of the threaded pool, the target)", fontsize=10)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_xlim(0, max(values) * 1.18)


def _latency(axes, latency: list[dict], isolation: list[dict]) -> None:
    bars = [(row["setup"].split(":")[0].replace("merchant-notify on ", "").replace("reference", "bare RQ"),
             row["p50 ms"], row["p99 ms"], BASELINE if row["setup"].startswith("reference") else PRODUCT)
            for row in latency]
    bars += [("isolation" if n == 0 else "isolation,\nhard limit", row["healthy p50 ms"], row["healthy p99 ms"], SLOW)
             for n, row in enumerate(isolation)]
    positions = range(len(bars))
    axes.bar([x - 0.2 for x in positions], [bar[1] for bar in bars], width=0.4, color=[bar[3] for bar in bars],
             label="p50")
    axes.bar([x + 0.2 for x in positions], [bar[2] for bar in bars], width=0.4, color=[bar[3] for bar in bars],
             alpha=0.55, hatch="//", label="p99")
    axes.axhline(50, color="black", linewidth=1, linestyle=":")
    axes.set_xticks(list(positions), [bar[0] for bar in bars], fontsize=8)
    axes.set_ylabel("ms from emit to arrival")
    axes.set_title("Emit to arrival: p50 solid, p99 hatched\n(dotted: the p99 target, 50 ms)", fontsize=10)


def _ingest(axes, rows: list[dict]) -> None:
    labels = [row["database"] for row in rows]
    values = [row["accepted events/s"] for row in rows]
    axes.bar(labels, values, color=PRODUCT)
    axes.axhline(INGEST_TARGET, color="black", linewidth=1, linestyle=":")
    for x, value in enumerate(values):
        axes.text(x, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
    axes.set_title(f"Ingest: events API, gunicorn ×2\n(dotted: the target, {INGEST_TARGET}/s)", fontsize=10)
    axes.set_ylim(0, max(values + [INGEST_TARGET]) * 1.15)
    axes.set_ylabel("accepted events/s")
