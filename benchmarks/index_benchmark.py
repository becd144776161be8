"""Exact search vs FAISS in the service's EmbeddingIndex, on synthetic unit vectors.

  .venv/bin/python benchmarks/index_benchmark.py --json benchmarks/results/index_benchmark.json

For each gallery size (default 10k, 100k, 300k, 1M) the index is built twice through its public
API, as the service builds it: exact (`exact_max` at the size, so it never switches) and FAISS
(`exact_max=0`, so it switches at once). Per size: build time, single-query top-k latency,
recall@k of FAISS against exact on the same queries, and the memory each build added to the
process (RSS growth: the FAISS build also keeps the exact vectors, as the service does).

The vectors have the model's embedding size (from the checkpoint's config, else 256). Real
embeddings cluster by content, so by default they lie around `--clusters` random centres;
`--clusters 0` draws them uniformly on the sphere, the worst case for an IVF index.
Smoke run: `--sizes 10000 --queries 50`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api_benchmark import machine_info  # noqa: E402  (this folder is on sys.path when run as a script)
from reporting import save_json  # noqa: E402  (this folder is on sys.path when run as a script)

from model_api.clip.checkpoint import CheckpointError, read_config  # noqa: E402
from model_api.clip.index import EmbeddingIndex  # noqa: E402
from model_api.settings import Settings  # noqa: E402

DEFAULT_DIM = 256


def embedding_dim(checkpoint: Path) -> int:
    try:
        return int(read_config(checkpoint)["model"]["embed_dim"])
    except CheckpointError:
        return DEFAULT_DIM


def unit_vectors(count: int, dim: int, centres: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """(count, dim) float32 unit vectors, around the given centres (noise as large as a centre:
    a cosine of about 0.7 to it) or, without centres, uniform on the sphere."""
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    if centres is not None:
        vectors /= np.sqrt(dim)  # each row now has norm ~1, like a centre
        vectors += centres[rng.integers(len(centres), size=count)]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc); 0 where it cannot be read.

    Freed heap pages go back to the OS first (glibc's malloc_trim): otherwise a new index may
    reuse pages a freed temporary left behind, and its memory would not show up as growth.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def measure(gallery: np.ndarray, queries: np.ndarray, exact_max: int, k: int, warmup: int) -> tuple[dict, list[set]]:
    """Build an index over the gallery, query it one vector per call (as the service does).

    Returns build time, RSS growth and latency, and each query's top-k keys.
    """
    gc.collect()  # the previous index's memory must be gone before RSS is read
    rss_before = rss_bytes()
    started = time.perf_counter()
    index = EmbeddingIndex(gallery.shape[1], exact_max=exact_max)
    index.add(np.arange(len(gallery)), gallery)
    figures = {"build_s": time.perf_counter() - started, "rss_growth_mb": (rss_bytes() - rss_before) / 2**20}
    for query in queries[:warmup]:
        index.search(query[None], k)
    ms, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = index.search(query[None], k)[0]
        ms.append((time.perf_counter() - started) * 1000)
        found.append({key for key, _ in hits})
    figures["p50_ms"], figures["p99_ms"] = np.percentile(ms, [50, 99]).tolist()
    return figures, found


def bench_size(gallery: np.ndarray, queries: np.ndarray, k: int, warmup: int) -> dict:
    exact, truths = measure(gallery, queries, exact_max=len(gallery), k=k, warmup=warmup)  # never switches
    ann, found = measure(gallery, queries, exact_max=0, k=k, warmup=warmup)  # switches at once
    recall = np.mean([len(got & truth) / k for got, truth in zip(found, truths, strict=True)])
    return {
        "size": len(gallery),
        "vectors_mb": gallery.nbytes / 2**20,
        "exact": exact,
        "faiss": ann,
        "recall_at_k": float(recall),
    }


def switch_pays_from(rows: list[dict], min_recall: float) -> int | None:
    """The smallest size from which FAISS is faster than exact at enough recall, at every larger size too."""
    for start, row in enumerate(rows):
        if all(r["faiss"]["p50_ms"] < r["exact"]["p50_ms"] and r["recall_at_k"] >= min_recall for r in rows[start:]):
            return row["size"]
    return None


def print_table(results: dict) -> None:
    k = results["k"]
    print(
        f"{'size':>9} {'method':<6} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS +MB':>8} {'recall@' + str(k):>9}"
    )
    for row in results["rows"]:
        for name in ("exact", "faiss"):
            figures = row[name]
            recall = f"{row['recall_at_k']:.3f}" if name == "faiss" else ""
            print(
                f"{row['size']:>9,} {name:<6} {figures['build_s']:>8.2f} {figures['p50_ms']:>8.3f} "
                f"{figures['p99_ms']:>8.3f} {figures['rss_growth_mb']:>8.0f} {recall:>9}"
            )
    pays = results["switch_pays_from"]
    verdict = f"from {pays:,} vectors" if pays else "at none of these sizes"
    print(
        f"FAISS is faster than exact with recall@{k} >= {results['min_recall']} {verdict}; "
        f"the service switches above CLIP_EXACT_SEARCH_MAX = {results['service_exact_search_max']:,}."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = Settings()  # the checkpoint and switch size the service would use here
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=settings.checkpoint, help="read the embedding size here")
    parser.add_argument("--sizes", default="10000,100000,300000,1000000", help="comma-separated gallery sizes")
    parser.add_argument("--queries", type=int, default=500, help="single queries timed per index")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=1000, help="centres the vectors lie around; 0: uniform")
    parser.add_argument("--min-recall", type=float, default=0.95, help="recall FAISS needs for the switch to pay")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    args.service_exact_search_max = settings.exact_search_max
    return args


def main() -> None:
    args = parse_args()
    machine = {**machine_info(), "numpy": np.__version__, "faiss": faiss.__version__}
    dim = embedding_dim(args.checkpoint)
    rng = np.random.default_rng(args.seed)
    centres = unit_vectors(args.clusters, dim, None, rng) if args.clusters else None
    # One gallery of the largest size; smaller sizes are its prefixes, so all share a distribution.
    gallery = unit_vectors(args.sizes[-1], dim, centres, rng)
    queries = unit_vectors(args.queries, dim, centres, rng)
    rows = []
    for size in args.sizes:
        print(f"size {size:,}...", file=sys.stderr, flush=True)
        rows.append(bench_size(gallery[:size], queries, args.k, args.warmup))
    results = {
        "machine": machine,
        "faiss_threads": faiss.omp_get_max_threads(),
        "dim": dim,
        "k": args.k,
        "clusters": args.clusters,
        "queries": args.queries,
        "min_recall": args.min_recall,
        "service_exact_search_max": args.service_exact_search_max,
        "rows": rows,
        "switch_pays_from": switch_pays_from(rows, args.min_recall),
    }
    print_table(results)
    save_json(results, args.json)


if __name__ == "__main__":
    main()
