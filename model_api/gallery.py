"""The searchable gallery: the dataset's test split plus user uploads, in one id space.

Ids are strings: `test-<n>` is test image n of the dataset, `user-<n>` the n-th upload (n from
the store, never reused). In the embedding index they become int64 keys, dataset images at n
and uploads at USER_KEY_OFFSET + n, so one search covers both.

Every item is indexed by its image vector, which image search, "more like this" and
classification use. A captioned upload has a second vector, its image blended with its caption
(`ServedModel.caption_vectors`), in a small index that only text search also consults: there the
upload scores the better of its two vectors, so its words find it while a search by pixels still
compares pixels.

Dataset embeddings are computed once per (checkpoint weights and embedding method, data
fingerprint) and cached as a `.npy` beside the store: a restart loads them instead of
re-encoding 10,000 images, and a new checkpoint, method or dataset misses the cache by name.
That first encoding takes tens of seconds on a small CPU, so it runs in batches and stops
between two of them when the server shuts down (`stopping`).
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .clip.data import Split
from .clip.index import EmbeddingIndex, Hit
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
    def __init__(
        self,
        model: ServedModel,
        store: GalleryStore,
        dataset: DatasetGallery | None,
        index: EmbeddingIndex,
        captions: EmbeddingIndex,
    ):
        self.model = model
        self.store = store
        self.dataset = dataset
        self.index = index  # every item's image vector
        self.captions = captions  # captioned uploads' caption vectors, under the same keys

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
        _embed_missing_images(model, store)
        _embed_missing_captions(model, store)
        store.keep_vectors({model.vectors_id, model.caption_vectors_id})
        _add_uploads(index, store.vectors(model.vectors_id))
        captions = EmbeddingIndex(model.dim, exact_max=exact_max)
        _add_uploads(captions, store.vectors(model.caption_vectors_id))
        return cls(model, store, dataset, index, captions)

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
        self,
        vector: np.ndarray,
        top_k: int,
        min_score: float | None,
        exclude: str | None = None,
        min_relative_score: float | None = None,
        captions: bool = False,
    ) -> list[tuple[GalleryItem, float]]:
        """Nearest items by cosine similarity, best first; `exclude` drops one id (the query
        item); `min_relative_score` drops items scoring below that fraction of the best one.

        With `captions` (a text query) a captioned upload scores the better of its image and its
        caption vector. The top k of each index hold the top k by that best score: an item
        missing from both has k items at or above its score in one of them.
        """
        k = top_k + (exclude is not None)
        hits = self.index.search(vector[None], k, min_score)[0]
        if captions:
            hits = _best_per_key(hits + self.captions.search(vector[None], k, min_score)[0])
        results = []
        for key, score in hits:
            item_id = _format_id(key)
            if item_id == exclude:
                continue
            try:
                results.append((self.item(item_id), score))
            except UnknownItemError:
                continue  # deleted between the search and this lookup
        return relative_cut(results[:top_k], min_relative_score)

    def add(self, image: torch.Tensor, caption: str | None, label: str | None) -> GalleryItem:
        """image: (3, 32, 32) uint8, the model's input; stored losslessly as PNG."""
        vector = self.model.image_vectors(image[None])[0]
        vectors = {self.model.vectors_id: vector}
        if caption:
            vectors[self.model.caption_vectors_id] = self.model.caption_vectors(vector[None], [caption])[0]
        buffer = io.BytesIO()
        tensor_to_image(image).save(buffer, format="PNG")
        stored = self.store.add(buffer.getvalue(), caption, label, vectors)
        key = np.array([USER_KEY_OFFSET + stored.number])
        self.index.add(key, vector[None])
        if caption:
            self.captions.add(key, vectors[self.model.caption_vectors_id][None])
        return _user_item(stored)

    def delete(self, item_id: str) -> None:
        source, number = self._parse(item_id)
        if source == "dataset":
            raise ReadOnlyItemError(f"{item_id!r} belongs to the dataset; only user- items can be deleted")
        if not self.store.delete(number):
            raise UnknownItemError(f"no gallery item {item_id!r}")
        self.index.remove([USER_KEY_OFFSET + number])
        self.captions.remove([USER_KEY_OFFSET + number])

    def page(self, offset: int, limit: int, source: Source | None) -> tuple[int, list[GalleryItem]]:
        """(total, items) of the listing: uploads newest first, then the dataset in order.

        Uploads lead so that what a person just added is on the first page, not the last of 500.
        """
        user_size = 0 if source == "dataset" else self.store.count()
        dataset_size = 0 if source == "user" else self.dataset_size
        items = [_user_item(stored) for stored in self.store.page(offset, limit)] if offset < user_size else []
        first = max(0, offset - user_size)  # the first dataset image on this page
        items += [self.item(f"test-{n}") for n in range(first, min(first + limit - len(items), dataset_size))]
        return user_size + dataset_size, items

    def _parse(self, item_id: str) -> tuple[Source, int]:
        match = _ID_PATTERN.fullmatch(item_id)
        if match is None or (match[1] == "test" and int(match[2]) >= self.dataset_size):
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return ("dataset" if match[1] == "test" else "user"), int(match[2])

    def _key(self, item_id: str) -> int:
        source, number = self._parse(item_id)
        return number if source == "dataset" else USER_KEY_OFFSET + number


def relative_cut(hits: list[tuple[GalleryItem, float]], fraction: float | None) -> list[tuple[GalleryItem, float]]:
    """Hits (best first) scoring at least `fraction` of the best score; for a best score at or
    below zero, within (1 - fraction) x |best| of it, so the cut still keeps the best."""
    if fraction is None or not hits:
        return hits
    best = hits[0][1]
    floor = best - (1 - fraction) * abs(best)
    return [(item, score) for item, score in hits if score >= floor]


def _format_id(key: int) -> str:
    return f"test-{key}" if key < USER_KEY_OFFSET else f"user-{key - USER_KEY_OFFSET}"


def _user_item(stored: StoredItem) -> GalleryItem:
    return GalleryItem(f"user-{stored.number}", "user", stored.label, stored.caption)


def _best_per_key(hits: list[Hit]) -> list[Hit]:
    """Hits of several indexes -> one per key, its best score, best first."""
    best: dict[int, float] = {}
    for key, score in hits:
        best[key] = max(score, best.get(key, -math.inf))
    return sorted(best.items(), key=lambda hit: hit[1], reverse=True)


def _add_uploads(index: EmbeddingIndex, vectors: dict[int, np.ndarray]) -> None:
    """{upload number: (D,) vector} -> the index, under the uploads' keys."""
    if vectors:
        index.add(np.fromiter(vectors, dtype=np.int64) + USER_KEY_OFFSET, np.stack(list(vectors.values())))


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
        # One line per batch: the first start takes tens of seconds, and launchers show this progress.
        log.info("encoded %d of %d dataset images", start + len(chunks[-1]), len(dataset.split))
    vectors = np.concatenate(chunks) if chunks else np.empty((0, model.dim), dtype=np.float32)
    _atomic_save(path, vectors)
    return vectors


def _embed_missing_images(model: ServedModel, store: GalleryStore) -> None:
    """Re-embed stored uploads that have no image vector for this checkpoint and method."""
    missing = store.without_vectors(model.vectors_id)
    if not missing:
        return
    log.info("re-embedding %d uploads for %s", len(missing), model.vectors_id)
    images = torch.stack([bytes_to_tensor(png) for _, _, png in missing])
    store.put_vectors(model.vectors_id, [number for number, _, _ in missing], model.image_vectors(images))


def _embed_missing_captions(model: ServedModel, store: GalleryStore) -> None:
    """Caption vectors for captioned uploads lacking one for this checkpoint and blend: after a
    model change, or in a store written before captions counted in text search."""
    missing = store.without_vectors(model.caption_vectors_id, captioned=True)
    if not missing:
        return
    log.info("embedding the captions of %d uploads for %s", len(missing), model.caption_vectors_id)
    images = store.vectors(model.vectors_id)  # all present: _embed_missing_images ran first
    numbers = [number for number, _, _ in missing]
    vectors = model.caption_vectors(np.stack([images[n] for n in numbers]), [caption for _, caption, _ in missing])
    store.put_vectors(model.caption_vectors_id, numbers, vectors)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """Write, fsync, rename: a crash leaves the old file or none, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        np.save(file, array, allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
