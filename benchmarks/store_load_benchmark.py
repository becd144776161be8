"""How long a replica that starts later takes to load the uploads' vectors from PostgreSQL.

  .venv/bin/python benchmarks/store_load_benchmark.py --json benchmarks/results/store_load.json

Fills a PostgreSQL gallery with `--items` uploads (default 100,000: a random ~3 KB blob as the
PNG, a random unit vector of the checkpoint's size under the checkpoint's key) with COPY, then
times `Gallery.load` on it as an API replica runs it at start, without the dataset part:
`keep_vectors`, the consistent snapshot read (`PostgresStore.snapshot`) and building the
in-memory index and metadata. `--repeats` loads, each with a new store (a new pool). The
snapshot read is also timed on its own. Without `--database-url` a PostgreSQL is started for the
run in a temporary directory (scripts/local_postgres.py) and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api_benchmark import machine_info  # noqa: E402  (this folder is on sys.path when run as a script)
from reporting import save_json  # noqa: E402

from model_api.gallery import Gallery  # noqa: E402
from model_api.postgres_store import PostgresStore  # noqa: E402
from model_api.served_model import ServedModel  # noqa: E402
from model_api.settings import Settings  # noqa: E402
from scripts.local_postgres import LocalPostgres  # noqa: E402
from tests.stack import free_port  # noqa: E402

PNG_BYTES = 3_000  # a 32x32 PNG of a photo is about this size


def fill(url: str, items: int, vectors_id: str, dim: int) -> None:
    """`items` uploads with one vector each, written with COPY (the store's own `add` is one
    transaction per item, which is what a user's upload needs, not what filling 100,000 does)."""
    PostgresStore(url, 1).close()  # creates the schema
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    png = rng.bytes(PNG_BYTES)
    now = time.time()
    with psycopg.connect(url) as db, db.cursor() as cursor:
        with cursor.copy("COPY items (number, caption, label, png, created_at) FROM STDIN") as copy:
            for number in range(1, items + 1):
                copy.write_row((number, None, None, png, now))
        with cursor.copy("COPY vectors (number, vectors_id, vector) FROM STDIN") as copy:
            for number, vector in enumerate(vectors, start=1):
                copy.write_row((number, vectors_id, vector.tobytes()))
        with cursor.copy("COPY changes (number, deleted) FROM STDIN") as copy:
            for number in range(1, items + 1):
                copy.write_row((number, False))
        cursor.execute("SELECT setval('items_number_seq', %s)", (items,))


def time_loads(url: str, model: ServedModel, repeats: int) -> dict:
    loads, snapshots = [], []
    for _ in range(repeats):
        store = PostgresStore(url, 2)
        started = time.perf_counter()
        gallery = Gallery.load(model, store, None, Path(tempfile.gettempdir()), 10**9, threading.Event())
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.snapshot({model.vectors_id, model.caption_vectors_id})
        snapshots.append(time.perf_counter() - started)
        assert len(gallery) > 0
        store.close()
    return {
        "gallery_load_s": loads,
        "gallery_load_median_s": statistics.median(loads),
        "snapshot_read_s": snapshots,
        "snapshot_read_median_s": statistics.median(snapshots),
        "vectors_loaded": len(gallery),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints" / "clip-cifar10")
    parser.add_argument("--database-url", help="an empty database to fill (default: a temporary PostgreSQL)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    machine = machine_info()  # its load average now: whether other work shares the CPUs

    # Only its vectors' key and size matter here: the text tower on torch, no ONNX export.
    model = ServedModel.load(Settings(checkpoint=args.checkpoint, text_backend="torch"))
    server, server_log = None, Path(tempfile.mkstemp(prefix="clip-bench-postgres-", suffix=".log")[1])
    if args.database_url is None:
        server = LocalPostgres(Path(tempfile.mkdtemp(prefix="clip-bench-postgres-")), free_port())
        server.start(server_log)
    url = args.database_url or server.url
    try:
        started = time.perf_counter()
        fill(url, args.items, model.vectors_id, model.dim)
        fill_s = time.perf_counter() - started
        print(f"filled {args.items} uploads in {fill_s:.1f} s")
        results = {"items": args.items, "dim": model.dim, "fill_s": fill_s, **time_loads(url, model, args.repeats)}
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.data_dir, ignore_errors=True)
        server_log.unlink()
    results["machine"] = {**machine, "load_average_at_end": os.getloadavg()}
    print(
        f"Gallery.load of {results['vectors_loaded']} vectors: median {results['gallery_load_median_s']:.2f} s "
        f"({', '.join(f'{s:.2f}' for s in results['gallery_load_s'])}); snapshot read alone: median "
        f"{results['snapshot_read_median_s']:.2f} s"
    )
    save_json(results, args.json)


if __name__ == "__main__":
    main()
