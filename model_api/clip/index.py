"""Cosine-similarity search over unit vectors keyed by int64 keys.

Up to `exact_max` vectors the search is exact: FAISS's brute-force scan (`faiss.knn`) of the
vectors as they lie, with no index to build or tune. At the gallery's size (10,000 x 256) it
reads the 10 MB once, where numpy's product had BLAS copy them first and then sort out the top
k: 0.36 against 1.06 ms a query, on one thread, once other work has pushed the vectors out of
the CPU's cache, as it has between two requests (BENCHMARKS.md, first-seen text queries). Above
it a FAISS IVF index (inner product, which is cosine on unit vectors) answers instead; the exact
vectors stay as the source of truth for rebuilds and lookups by key. `benchmarks/index_benchmark.py`
measures where the switch pays.

Given a torch `device` (the GPU the model runs on), the exact product runs there instead, on a
copy of the vectors made at the first search after a change; FAISS stays on the CPU (this
project installs faiss-cpu).

Thread-safe: one lock serialises changes and searches (a search at the exact size holds it
for about a millisecond).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
import torch

Hit = tuple[int, float]  # (key, cosine similarity)

# Exact search stays fast enough up to about this size, while FAISS IVF's recall is poor on
# small galleries and perfect on large ones (BENCHMARKS.md, exact search vs FAISS).
EXACT_SEARCH_MAX = 100_000


@contextmanager
def one_openmp_thread() -> Iterator[None]:
    """FAISS's OpenMP on one thread, for the calling thread (OpenMP keeps the count per thread).

    A request's few queries gain nothing from a second thread, which only has to be woken and
    joined: one query over 10,000 vectors took 1.4 ms p50 on two threads and 0.48 ms on one, on
    an idle 2-CPU machine. The service's parallelism is its concurrent requests."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class EmbeddingIndex:
    def __init__(
        self, dim: int, exact_max: int = EXACT_SEARCH_MAX, nprobe: int = 32, device: torch.device | None = None
    ) -> None:
        """device: where exact search multiplies (default: numpy on the CPU)."""
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.device = device
        self._on_device: torch.Tensor | None = None  # (size, D) copy on `device`; None: stale or unused
        self._vectors = np.empty((0, dim), dtype=np.float32)  # (capacity, D); rows [:size] are live
        self._keys = np.empty(0, dtype=np.int64)  # (capacity,)
        self._size = 0
        self._row_of: dict[int, int] = {}
        self._ann: faiss.IndexIVFFlat | None = None
        self._ann_trained_on = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: int) -> bool:
        return key in self._row_of

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """keys (N,) int64, new and distinct; vectors (N, D) unit vectors."""
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"expected vectors of shape ({len(keys)}, {self.dim}), got {vectors.shape}")
        with self._lock:
            if len(set(keys.tolist())) != len(keys) or any(key in self._row_of for key in keys.tolist()):
                raise KeyError("keys must be new and distinct")
            self._reserve(self._size + len(keys))
            rows = slice(self._size, self._size + len(keys))
            self._vectors[rows], self._keys[rows] = vectors, keys
            self._row_of.update(zip(keys.tolist(), range(rows.start, rows.stop), strict=True))
            self._size = rows.stop
            self._on_device = None
            if self._ann is not None and self._size <= 4 * self._ann_trained_on:
                self._ann.add_with_ids(vectors, keys)
            else:
                self._sync_ann()

    def remove(self, keys: list[int]) -> None:
        """Removes the keys that are present; unknown keys are ignored."""
        with self._lock:
            for key in keys:
                row = self._row_of.pop(key, None)
                if row is None:
                    continue
                # Swap-delete: O(1) per key, and row order does not matter to a search.
                last = self._size - 1
                if row != last:
                    self._vectors[row], self._keys[row] = self._vectors[last], self._keys[last]
                    self._row_of[int(self._keys[row])] = row
                self._size = last
            self._on_device = None
            if self._ann is not None:
                self._ann.remove_ids(np.asarray(keys, dtype=np.int64))
                self._sync_ann()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of every key (N,) and vector (N, D), row for row."""
        with self._lock:
            return self._keys[: self._size].copy(), self._vectors[: self._size].copy()

    def vector(self, key: int) -> np.ndarray:
        """(D,) copy of the vector stored under key; KeyError if absent."""
        with self._lock:
            return self._vectors[self._row_of[key]].copy()

    def search(self, queries: np.ndarray, k: int, min_score: float | None = None) -> list[list[Hit]]:
        """queries (Q, D) unit vectors -> per query up to k (key, score), best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            k = min(k, self._size)
            if k == 0:
                return [[] for _ in queries]
            with one_openmp_thread():
                if self._ann is not None:
                    scores, keys = self._ann.search(queries, k)
                else:
                    scores, keys = self._exact_search(queries, k)
        floor = -math.inf if min_score is None else min_score
        # FAISS pads with key -1 when a probed list holds fewer than k vectors.
        keep = (keys != -1) & (scores >= floor)  # (Q, k)
        return [
            list(zip(row_keys[row_keep].tolist(), row_scores[row_keep].tolist(), strict=True))
            for row_keys, row_scores, row_keep in zip(keys, scores, keep, strict=True)
        ]

    def _exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.device is not None:
            return self._device_search(queries, k)
        # A contiguous slice of the buffer: FAISS reads it in place, no copy.
        scores, rows = faiss.knn(queries, self._vectors[: self._size], k, metric=faiss.METRIC_INNER_PRODUCT)
        return scores, self._keys[rows]

    def _device_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._on_device is None:
            self._on_device = torch.from_numpy(self._vectors[: self._size]).to(self.device)
        scores = torch.from_numpy(queries).to(self.device) @ self._on_device.T  # (Q, N)
        top_scores, top = scores.topk(k, dim=1)  # (Q, k), best first
        return top_scores.cpu().numpy(), self._keys[top.cpu().numpy()]

    def _reserve(self, size: int) -> None:
        """Grow the buffers geometrically so n single adds cost O(n) copies, not O(n^2)."""
        capacity = len(self._keys)
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity, 1024)
        vectors = np.empty((capacity, self.dim), dtype=np.float32)
        keys = np.empty(capacity, dtype=np.int64)
        vectors[: self._size], keys[: self._size] = self._vectors[: self._size], self._keys[: self._size]
        self._vectors, self._keys = vectors, keys

    def _sync_ann(self) -> None:
        """(Re)build the FAISS index when the size crosses exact_max; drop it below.

        IVF centroids are trained on the data present at build time, so the index is rebuilt
        once the collection has grown fourfold and the lists would be unbalanced.
        """
        if self._size <= self.exact_max:
            self._ann, self._ann_trained_on = None, 0
            return
        if self._ann is not None and self._size <= 4 * self._ann_trained_on:
            return
        vectors, keys = self._vectors[: self._size], self._keys[: self._size]
        # ~4 sqrt(N) lists is FAISS's rule of thumb; FAISS wants at least 39 training points per list.
        nlist = max(1, min(int(4 * math.sqrt(self._size)), self._size // 39))
        # FAISS suggests 30-256 training points per centroid; 40 keeps a 1M build to seconds.
        sample = np.random.default_rng(0).choice(self._size, size=min(self._size, 40 * nlist), replace=False)
        ann = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ann.train(vectors[sample])
        ann.add_with_ids(vectors, keys)
        ann.nprobe = self.nprobe
        self._ann, self._ann_trained_on = ann, self._size
