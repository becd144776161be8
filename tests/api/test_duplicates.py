"""Near-duplicate pairs from blockwise products agree with every pair compared one by one."""

from __future__ import annotations

import numpy as np
import pytest

from model_api import duplicates


@pytest.mark.parametrize("block", [7, 1024])  # many blocks, and one
def test_pairs_are_every_pair_above_the_threshold_best_first_up_to_the_limit(monkeypatch, block):
    monkeypatch.setattr(duplicates, "BLOCK", block)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors[41] = vectors[3] + 0.01  # a planted near-duplicate
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ vectors.T
    every = sorted(
        ((float(similarity[i, j]), i, j) for i in range(60) for j in range(i + 1, 60) if similarity[i, j] >= 0.5),
        reverse=True,
    )
    pairs = duplicates.near_duplicate_pairs(vectors, 0.5, limit=12)
    assert [(i, j) for i, j, _ in pairs] == [(i, j) for _, i, j in every[:12]]
    assert pairs[0][:2] == (3, 41) and pairs[0][2] == pytest.approx(1, abs=1e-3)
    assert len(duplicates.near_duplicate_pairs(vectors, 0.5, limit=1000)) == len(every)
    assert duplicates.near_duplicate_pairs(vectors, 1.01, limit=10) == []
