"""Where a text query's time goes in process: each stage of the service's query path for queries
it has not seen before, on both text backends (ONNX Runtime, served by default, and the PyTorch
reference), and how well the two agree.

  python benchmarks/text_query_benchmark.py --checkpoint checkpoints/clip-cifar10 \\
      --json benchmarks/results/text_query_benchmark.json

Stages, one query at a time, p50 and p99 of wall-clock and of CPU ms over --queries distinct
queries (the same queries as api_benchmark.py's first-seen search, one in ten with a typing slip):

  spelling       correcting the query's words; the misspelled queries apart, as only their
                 slipped word is compared with the caption words
  tokenize       the sentence encoder's tokenizer
  tower          the frozen MiniLM tower on each backend, its tokenizing included
  projection     the CLIP's projection, standardisation and normalisation
  embed_text     all of the above as the service calls it (`embed_texts`), on each backend
  search         the top 10 of 10,000 unit vectors (the test-split gallery) by exact search

What an HTTP request adds to these (FastAPI, uvicorn, the JSON response, the client) is the
difference from api_benchmark.py's latencies.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from queries import distinct_queries, is_misspelled  # noqa: E402  (this folder is on sys.path as a script)
from reporting import save_json  # noqa: E402

from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.index import EmbeddingIndex  # noqa: E402
from model_api.clip.inference import embed_texts, inference_mode  # noqa: E402
from model_api.clip.onnx_text import use_text_backend  # noqa: E402
from model_api.settings import Settings  # noqa: E402

GALLERY = 10_000


def latencies(stage: Callable[[str], object], queries: list[str], warmup: int = 10) -> dict:
    """Wall-clock ms, and the CPU ms the process spent (all its threads): on a machine other jobs
    share, the CPU time is the steadier measure of the work."""
    for query in queries[:warmup]:
        stage(query)
    wall, cpu = [], []
    for query in queries:
        started, cpu_started = time.perf_counter(), time.process_time()
        stage(query)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    (p50, p99), (cpu_p50, cpu_p99) = np.percentile(wall, [50, 99]).tolist(), np.percentile(cpu, [50, 99]).tolist()
    return {"n": len(wall), "p50_ms": p50, "p99_ms": p99, "cpu_p50_ms": cpu_p50, "cpu_p99_ms": cpu_p99}


def stages(model, queries: list[str]) -> dict:
    """The stages of one backend's query path, each timed on its own."""
    text = model.text
    features = text.prepare(queries[:1])

    def project(_: str) -> None:
        with inference_mode():
            model.encode_prepared(features)

    return {
        "tower": latencies(lambda query: text.prepare([query]), queries),
        "projection": latencies(project, queries),
        "embed_text": latencies(lambda query: embed_texts(model, [query]), queries),
    }


def shared_stages(model, queries: list[str], seed: int) -> dict:
    """Stages that are the same on both backends."""
    spelling = model.text.spelling
    misspelled = [query for query in queries if is_misspelled(query)]
    vectors = np.random.default_rng(seed).standard_normal((GALLERY, model.config.dim)).astype(np.float32)
    index = EmbeddingIndex(model.config.dim)
    index.add(np.arange(GALLERY), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    query_vector = embed_texts(model, queries[:1]).numpy()
    return {
        "spelling": latencies(spelling.correct, [query for query in queries if not is_misspelled(query)]),
        "spelling_misspelled": latencies(spelling.correct, misspelled),
        "tokenize": latencies(lambda query: model.text.frozen.model.preprocess([query]), queries),
        "search": latencies(lambda _: index.search(query_vector, 10), queries),
    }


def agreement(reference, fast, queries: list[str]) -> dict:
    """Cosine of each query's served embedding on the fast path with the reference's."""
    cosines = torch.nn.functional.cosine_similarity(embed_texts(reference, queries), embed_texts(fast, queries))
    return {"queries": len(queries), "min_cosine": cosines.min().item(), "mean_cosine": cosines.mean().item()}


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=settings.checkpoint)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=settings.text_threads, help="ONNX Runtime threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # As the service runs: one PyTorch and one BLAS thread per request thread.
    torch.set_num_threads(settings.torch_threads)
    threadpool_limits(settings.blas_threads, user_api="blas")
    queries = distinct_queries(args.seed)[: args.queries]
    reference, _ = load_checkpoint(args.checkpoint)
    fast, _ = load_checkpoint(args.checkpoint)
    with tempfile.TemporaryDirectory() as onnx_dir:  # a fresh export: its time is a figure too
        started = time.perf_counter()
        use_text_backend(fast, "onnx", Path(onnx_dir), args.threads)
        export_s = time.perf_counter() - started
    results = {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnx_threads": args.threads,
        "onnx_export_and_load_s": export_s,
        "shared": shared_stages(reference, queries, args.seed),
        "torch_backend": stages(reference, queries),
        "onnx_backend": stages(fast, queries),
        "agreement": agreement(reference, fast, queries),
    }
    print(json.dumps(results, indent=2))
    save_json(results, args.json)


if __name__ == "__main__":
    main()
