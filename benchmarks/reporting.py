"""What every benchmark shares: where the data comes from, how a call is timed, and the JSON
file of figures that BENCHMARKS.md cites."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_api.settings import Settings


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data and --cache-dir, defaulting to what the API resolves from the environment and .env."""
    settings = Settings()
    parser.add_argument("--data", default=settings.data_source, help="dataset: local copy or hub name")
    parser.add_argument("--cache-dir", type=Path, default=settings.cache_dir, help="decoded dataset arrays")


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of `call()` over `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def latency_summary(ms: list[float]) -> dict:
    """Count, p50 / p90 / p99, mean and max of latencies in ms."""
    if not ms:
        return {"n": 0}
    p50, p90, p99 = np.percentile(ms, [50, 90, 99]).tolist()
    return {"n": len(ms), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": float(np.mean(ms)), "max_ms": max(ms)}


def save_json(results: dict, path: Path | None) -> None:
    """Write `results` to `path` (nothing when no path was asked for)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
