"""The searchable gallery: the dataset's test split plus user uploads, in one id space.

Ids are strings: `test-<n>` is test image n of the dataset, `user-<n>` the n-th upload (n from
the store, never reused). In the embedding index they become int64 keys, dataset images at n
and uploads at USER_KEY_OFFSET + n, so one search covers both.

Dataset embeddings are computed once per (checkpoint weights and embedding method, data
fingerprint) and cached as a `.npy` beside the store: a restart loads them instead of
re-encoding 10,000 images, and a new checkpoint, method or dataset misses the cache by name.
That first encoding takes tens of seconds on a small CPU, so it runs in batches and stops
between two of them when the server shuts down (`stopping`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .clip.data import Split
from .clip.index import EmbeddingIndex
from .clip.preprocess import bytes_to_tensor, tensor_to_image
from .served_model import ServedModel
from .store import GalleryStore, StoredItem

log = logging.getLogger(__name__)

USER_KEY_OFFSET = 1 << 40
# Dataset images encoded between two looks at `stopping`: a couple of seconds of work on a small
# CPU (BENCHMARKS.md, model API), so a shutdown during the first start waits at most that.
ENCODE_BATCH = 512
_ID_PATTERN = re.compile(r"(test|user)-(\d{1,12})")

Source = Literal["dataset", "user"]


class UnknownItemError(LookupError):
    """No gallery item has this id."""


class ReadOnlyItemError(ValueError):
    """The item belongs to the dataset, which users cannot change."""


class LoadStopped(Exception):
    """The server shut down while the gallery was still being built."""


@dataclass(frozen=True)
class GalleryItem:
    id: str
    source: Source
    label: str | None  # dataset class, or the user's label
    caption: str | None

    @property
    def display_label(self) -> str | None:
        """What a search result shows: the class or label, else the caption."""
        return self.label or self.caption


@dataclass(frozen=True)
class DatasetGallery:
    split: Split
    classes: tuple[str, ...]
    fingerprint: str


class Gallery:
    def __init__(self, model: ServedModel, store: GalleryStore, dataset: DatasetGallery | None, index: EmbeddingIndex):
        self.model = model
        self.store = store
        self.dataset = dataset
        self.index = index

    @classmethod
    def load(
        cls,
        model: ServedModel,
        store: GalleryStore,
        dataset: DatasetGallery | None,
        cache_dir: Path,
        exact_max: int,
        stopping: threading.Event,
    ) -> Gallery:
        """Raises `LoadStopped` when `stopping` is set while the dataset is being encoded."""
        index = EmbeddingIndex(model.dim, exact_max=exact_max)
        if dataset is not None:
            vectors = _dataset_vectors(model, dataset, cache_dir, stopping)
            index.add(np.arange(len(vectors)), vectors)
        _embed_missing(model, store)
        user = store.vectors(model.vectors_id)
        if user:
            index.add(np.fromiter(user, dtype=np.int64) + USER_KEY_OFFSET, np.stack(list(user.values())))
        return cls(model, store, dataset, index)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def dataset_size(self) -> int:
        return len(self.dataset.split) if self.dataset else 0

    def item(self, item_id: str) -> GalleryItem:
        source, number = self._parse(item_id)
        if source == "dataset":
            label = self.dataset.classes[int(self.dataset.split.labels[number])]
            return GalleryItem(item_id, "dataset", label, None)
        stored = self.store.get(number)
        if stored is None:
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return _user_item(stored)

    def image_png(self, item_id: str) -> bytes:
        source, number = self._parse(item_id)
        if source == "dataset":
            buffer = io.BytesIO()
            tensor_to_image(self.dataset.split.images[number]).save(buffer, format="PNG")
            return buffer.getvalue()
        png = self.store.image(number)
        if png is None:
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return png

    def vector(self, item_id: str) -> np.ndarray:
        try:
            return self.index.vector(self._key(item_id))
        except KeyError:
            raise UnknownItemError(f"no gallery item {item_id!r}") from None

    def search(
        self, vector: np.ndarray, top_k: int, min_score: float | None, exclude: str | None = None
    ) -> list[tuple[GalleryItem, float]]:
        """Nearest items by cosine similarity, best first; `exclude` drops one id (the query item)."""
        hits = self.index.search(vector[None], top_k + (exclude is not None), min_score)[0]
        results = []
        for key, score in hits:
            item_id = _format_id(key)
            if item_id == exclude:
                continue
            try:
                results.append((self.item(item_id), score))
            except UnknownItemError:
                continue  # deleted between the search and this lookup
        return results[:top_k]

    def add(self, image: torch.Tensor, caption: str | None, label: str | None) -> GalleryItem:
        """image: (3, 32, 32) uint8, the model's input; stored losslessly as PNG."""
        vector = self.model.image_vectors(image[None])[0]
        buffer = io.BytesIO()
        tensor_to_image(image).save(buffer, format="PNG")
        stored = self.store.add(buffer.getvalue(), caption, label, self.model.vectors_id, vector)
        self.index.add(np.array([USER_KEY_OFFSET + stored.number]), vector[None])
        return _user_item(stored)

    def delete(self, item_id: str) -> None:
        source, number = self._parse(item_id)
        if source == "dataset":
            raise ReadOnlyItemError(f"{item_id!r} belongs to the dataset; only user- items can be deleted")
        if not self.store.delete(number):
            raise UnknownItemError(f"no gallery item {item_id!r}")
        self.index.remove([USER_KEY_OFFSET + number])

    def page(self, offset: int, limit: int, source: Source | None) -> tuple[int, list[GalleryItem]]:
        """(total, items) of the listing: dataset items first, then uploads oldest first."""
        dataset_size = 0 if source == "user" else self.dataset_size
        user_size = 0 if source == "dataset" else self.store.count()
        items = [self.item(f"test-{n}") for n in range(offset, min(offset + limit, dataset_size))]
        if len(items) < limit and user_size:
            stored = self.store.page(max(0, offset - dataset_size), limit - len(items))
            items += [_user_item(item) for item in stored]
        return dataset_size + user_size, items

    def _parse(self, item_id: str) -> tuple[Source, int]:
        match = _ID_PATTERN.fullmatch(item_id)
        if match is None or (match[1] == "test" and int(match[2]) >= self.dataset_size):
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return ("dataset" if match[1] == "test" else "user"), int(match[2])

    def _key(self, item_id: str) -> int:
        source, number = self._parse(item_id)
        return number if source == "dataset" else USER_KEY_OFFSET + number


def _format_id(key: int) -> str:
    return f"test-{key}" if key < USER_KEY_OFFSET else f"user-{key - USER_KEY_OFFSET}"


def _user_item(stored: StoredItem) -> GalleryItem:
    return GalleryItem(f"user-{stored.number}", "user", stored.label, stored.caption)


def _dataset_vectors(
    model: ServedModel, dataset: DatasetGallery, cache_dir: Path, stopping: threading.Event
) -> np.ndarray:
    """(N, D) embeddings of the test split, from the cache or encoded once and cached."""
    path = cache_dir / f"dataset-{model.vectors_id}-{dataset.fingerprint[:16]}.npy"
    if path.exists():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape == (len(dataset.split), model.dim):
            log.info("loaded %d cached dataset embeddings from %s", len(vectors), path)
            return vectors
    log.info("encoding %d dataset images (cached for next start in %s)", len(dataset.split), path)
    chunks = []
    for start in range(0, len(dataset.split), ENCODE_BATCH):
        if stopping.is_set():
            raise LoadStopped(f"stopped after encoding {start} of {len(dataset.split)} dataset images")
        chunks.append(model.image_vectors(dataset.split.images[start : start + ENCODE_BATCH]))
    vectors = np.concatenate(chunks) if chunks else np.empty((0, model.dim), dtype=np.float32)
    _atomic_save(path, vectors)
    return vectors


def _embed_missing(model: ServedModel, store: GalleryStore) -> None:
    """Re-embed stored uploads that have no vector for this checkpoint (the model changed)."""
    missing = store.without_vectors(model.vectors_id)
    if not missing:
        return
    log.info("re-embedding %d uploads for %s", len(missing), model.vectors_id)
    images = torch.stack([bytes_to_tensor(png) for _, png in missing])
    store.put_vectors(model.vectors_id, [number for number, _ in missing], model.image_vectors(images))


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """Write, fsync, rename: a crash leaves the old file or none, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        np.save(file, array, allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
