from __future__ import annotations

import numpy as np
import pytest
import torch

from model_api.clip.index import EmbeddingIndex
from tests.conftest import needs_cuda


def unit_vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(vectors @ query))[:k].tolist()


def test_exact_search_matches_brute_force():
    vectors = unit_vectors(500)
    index = EmbeddingIndex(8)
    index.add(np.arange(500), vectors)
    hits = index.search(vectors[:3], 5)
    for query, row in zip(vectors[:3], hits, strict=True):
        assert [key for key, _ in row] == brute_force(vectors, query, 5)


def test_remove_and_min_score():
    vectors = unit_vectors(100)
    index = EmbeddingIndex(8)
    index.add(np.arange(100) + 1000, vectors)
    index.remove([1000, 5])  # 5 is unknown: ignored
    assert len(index) == 99 and 1000 not in index
    hits = index.search(vectors[:1], 10, min_score=0.5)[0]
    assert 1000 not in [key for key, _ in hits] and all(score >= 0.5 for _, score in hits)
    np.testing.assert_array_equal(index.vector(1001), vectors[1])


def test_faiss_takes_over_above_exact_max_and_agrees():
    vectors = unit_vectors(4000, seed=1)
    exact, ann = EmbeddingIndex(8), EmbeddingIndex(8, exact_max=1000, nprobe=10_000)  # probe all: exact
    exact.add(np.arange(4000), vectors)
    ann.add(np.arange(4000), vectors)
    assert ann._ann is not None and exact._ann is None
    for got, want in zip(ann.search(vectors[:4], 5), exact.search(vectors[:4], 5), strict=True):
        assert [key for key, _ in got] == [key for key, _ in want]
        assert [score for _, score in got] == pytest.approx([score for _, score in want], abs=1e-5)
    ann.remove(list(range(3100)))  # below the threshold again: back to exact
    assert ann._ann is None and len(ann) == 900


def test_rejects_duplicate_keys_and_wrong_shapes():
    index = EmbeddingIndex(8)
    index.add(np.array([1]), unit_vectors(1))
    with pytest.raises(KeyError):
        index.add(np.array([1]), unit_vectors(1))
    with pytest.raises(ValueError):
        index.add(np.array([2]), unit_vectors(1, dim=4))
    assert index.search(unit_vectors(1), 0) == [[]]


@pytest.mark.parametrize("device", [torch.device("cpu"), pytest.param(torch.device("cuda"), marks=needs_cuda)])
def test_exact_search_on_a_torch_device_agrees_with_the_cpu_scan_after_every_change(device) -> None:
    vectors = unit_vectors(600, seed=2)
    on_device, on_cpu = EmbeddingIndex(8, device=device), EmbeddingIndex(8)
    for index in (on_device, on_cpu):
        index.add(np.arange(500), vectors[:500])
    for change in (lambda index: index.add(np.arange(500, 600), vectors[500:]), lambda index: index.remove([3, 550])):
        for index in (on_device, on_cpu):
            change(index)
        queries = vectors[[3, 550, 551, 599]]  # rows added, removed and kept: a stale copy would differ
        got, want = on_device.search(queries, 6), on_cpu.search(queries, 6)
        assert [[key for key, _ in row] for row in got] == [[key for key, _ in row] for row in want]
        assert [s for row in got for _, s in row] == pytest.approx([s for row in want for _, s in row], abs=1e-5)
