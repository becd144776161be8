"""The searchable gallery: the dataset's test split plus user uploads, in one id space.

Ids are strings: `test-<n>` is test image n of the dataset, `user-<n>` the n-th upload (n from
the store, never reused). In the embedding index they become int64 keys, dataset images at n
and uploads at USER_KEY_OFFSET + n, so one search covers both.

Every item is indexed by its image vector, which image search, "more like this" and
classification use. A captioned upload has a second vector, its image blended with its caption
(`ServedModel.caption_vectors`), in a small index that only text search also consults: there the
upload scores the better of its two vectors, so its words find it while a search by pixels still
compares pixels.

Uploads come from a `GalleryStore` (store.py): loaded once as a snapshot, then kept in step
through the store's change feed (`sync`, and `follow` in a thread of its own), so several
replicas on one PostgreSQL serve one gallery and each keeps answering reads from memory while
the database is away.

Dataset embeddings are computed once per (checkpoint weights and embedding method, data
fingerprint) and cached as a `.npy` beside the store: a restart loads them instead of
re-encoding 10,000 images, and a new checkpoint, method or dataset misses the cache by name.
That first encoding takes tens of seconds on a small CPU, so it runs in batches and stops
between two of them when the server shuts down (`stopping`).
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .clip.data import Split
from .clip.files import write_atomically
from .clip.index import EmbeddingIndex, Hit
from .clip.preprocess import bytes_to_tensor, tensor_to_image
from .duplicates import near_duplicate_pairs
from .photos import Photo, encode
from .served_model import ServedModel
from .store import Changes, GalleryStore, Picture, StoredItem, StoreUnavailableError

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
    """The index in memory over a store. Uploads' metadata is held here too, so search, lookups
    and listing keep answering while a database behind the store is down; only an upload's image
    bytes are read from the store. `seq` is the store's change seq this memory reflects."""

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
        self.seq = 0
        self._uploads: dict[int, StoredItem] = {}
        self._numbers: list[int] = []  # the uploads' numbers, ascending: the listing's order reversed
        self._sync_lock = threading.Lock()  # one catch-up at a time, so changes apply in seq order
        self._memory_lock = threading.Lock()  # `_uploads` and `_numbers` change together

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
        index = EmbeddingIndex(model.dim, exact_max=exact_max, device=model.search_device)
        if dataset is not None:
            vectors = _dataset_vectors(model, dataset, cache_dir, stopping)
            index.add(np.arange(len(vectors)), vectors)
        store.keep_vectors(_kinds(model))
        captions = EmbeddingIndex(model.dim, exact_max=exact_max, device=model.search_device)
        gallery = cls(model, store, dataset, index, captions)
        started = time.perf_counter()
        snapshot = store.snapshot(_kinds(model))
        gallery._apply(snapshot)
        seconds = time.perf_counter() - started
        log.info("loaded %d uploads in %.2f s (change seq %d)", len(snapshot.added), seconds, snapshot.seq)
        return gallery

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
        stored = self._uploads.get(number)
        if stored is None:
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return _user_item(stored)

    def picture(self, item_id: str, kind: Picture) -> tuple[bytes, str]:
        """(bytes, media type) of the item's photo or thumbnail: an upload's as stored, a dataset
        image's 32x32 PNG for both."""
        source, number = self._parse(item_id)
        if source == "dataset":
            return encode(tensor_to_image(self.dataset.split.images[number]), "PNG"), "image/png"
        picture = self.store.picture(number, kind) if number in self._uploads else None
        if picture is None:
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return picture

    def model_input(self, item_id: str) -> torch.Tensor:
        """(3, 32, 32) uint8: the image the item's vector was embedded from."""
        source, number = self._parse(item_id)
        if source == "dataset":
            return self.dataset.split.images[number]
        png = self.store.images([number]).get(number) if number in self._uploads else None
        if png is None:
            raise UnknownItemError(f"no gallery item {item_id!r}")
        return bytes_to_tensor(png)

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

    def near_duplicates(self, min_similarity: float, limit: int) -> list[tuple[GalleryItem, GalleryItem, float]]:
        """Pairs of items (dataset and uploads alike) whose image vectors' cosine similarity is at
        least `min_similarity`, most similar first, at most `limit` (`duplicates.py`)."""
        keys, vectors = self.index.arrays()
        pairs = []
        for i, j, similarity in near_duplicate_pairs(vectors, min_similarity, limit):
            try:
                pairs.append((self.item(_format_id(keys[i])), self.item(_format_id(keys[j])), similarity))
            except UnknownItemError:
                continue  # deleted since the vectors were copied
        return pairs

    def add(
        self, photo: Photo, caption: str | None, label: str | None, idempotency_key: str | None = None
    ) -> tuple[GalleryItem, bool]:
        """Embeds the photo's model input and stores it with the photo and thumbnail. Returns the
        item and whether it was added before under `idempotency_key` (then nothing new is stored)."""
        vector = self.model.image_vectors(photo.model_input[None])[0]
        vectors = {self.model.vectors_id: vector}
        if caption:
            vectors[self.model.caption_vectors_id] = self.model.caption_vectors(vector[None], [caption])[0]
        added = self.store.add(photo.stored, caption, label, vectors, idempotency_key)
        if added.item is None:
            raise UnknownItemError("the item first added with this Idempotency-Key has been deleted since")
        self._sync_after_write()
        return _user_item(added.item), added.replayed

    def delete(self, item_id: str) -> None:
        source, number = self._parse(item_id)
        if source == "dataset":
            raise ReadOnlyItemError(f"{item_id!r} belongs to the dataset; only user- items can be deleted")
        if not self.store.delete(number):
            raise UnknownItemError(f"no gallery item {item_id!r}")
        self._sync_after_write()

    def page(self, offset: int, limit: int, source: Source | None) -> tuple[int, list[GalleryItem]]:
        """(total, items) of the listing: uploads newest first, then the dataset in order.

        Uploads lead so that what a person just added is on the first page, not the last of 500.
        """
        with self._memory_lock:
            user_size = 0 if source == "dataset" else len(self._numbers)
            newest = self._numbers[max(0, user_size - offset - limit) : max(0, user_size - offset)]
            items = [_user_item(self._uploads[number]) for number in reversed(newest)]
        dataset_size = 0 if source == "user" else self.dataset_size
        first = max(0, offset - user_size)  # the first dataset image on this page
        items += [self.item(f"test-{n}") for n in range(first, min(first + limit - len(items), dataset_size))]
        return user_size + dataset_size, items

    def sync(self) -> None:
        """Applies what changed in the store since `seq`: this replica's writes and every other's."""
        with self._sync_lock:
            self._apply(self.store.changes_since(self.seq, _kinds(self.model)))

    def follow(self, stopping: threading.Event) -> None:
        """Keeps the memory in step with the store until `stopping` (a thread's whole life)."""
        for _ in self.store.listen(stopping):
            try:
                self.sync()
            except StoreUnavailableError as error:
                log.warning("gallery change feed: %s", error)  # the next wake-up retries from `seq`
            except Exception:  # a bug must not end the feed for good: log it, go on
                log.exception("gallery change feed: applying changes failed")

    def _sync_after_write(self) -> None:
        """A write is committed before this: if the database vanished in between, the change feed
        brings the write in when it is back, and the client has its answer meanwhile."""
        try:
            self.sync()
        except StoreUnavailableError as error:
            log.warning("a committed write is not in memory yet: %s", error)

    def _apply(self, changes: Changes) -> None:
        """Adds and removes what `changes` holds; an item already present is skipped, so a
        snapshot and a feed that overlap apply once."""
        added = self._embed_missing(changes)
        fresh = [item for item in added if item.number not in self._uploads]
        images = changes.vectors[self.model.vectors_id]
        _add_uploads(self.index, {item.number: images[item.number] for item in fresh})
        captions = changes.vectors[self.model.caption_vectors_id]
        _add_uploads(self.captions, {item.number: captions[item.number] for item in fresh if item.caption})
        gone = [USER_KEY_OFFSET + number for number in changes.deleted]
        self.index.remove(gone)
        self.captions.remove(gone)
        with self._memory_lock:
            for item in fresh:
                self._uploads[item.number] = item
                bisect.insort(self._numbers, item.number)
            for number in changes.deleted:
                if self._uploads.pop(number, None) is not None:
                    self._numbers.pop(bisect.bisect_left(self._numbers, number))
            self.seq = changes.seq

    def _embed_missing(self, changes: Changes) -> list[StoredItem]:
        """Embeds and stores (into `changes.vectors` too) the vectors the added items lack for
        this model: all of them after a checkpoint change, an older store's caption vectors, or
        an add by a replica running another checkpoint. Returns the added items still present."""
        images, captions = changes.vectors[self.model.vectors_id], changes.vectors[self.model.caption_vectors_id]
        missing = [item for item in changes.added if item.number not in images]
        pngs = self.store.images([item.number for item in missing]) if missing else {}
        added = [item for item in changes.added if item.number in images or item.number in pngs]
        if pngs:
            log.info("re-embedding %d uploads for %s", len(pngs), self.model.vectors_id)
            numbers = list(pngs)
            vectors = self.model.image_vectors(torch.stack([bytes_to_tensor(pngs[number]) for number in numbers]))
            self.store.put_vectors(self.model.vectors_id, numbers, vectors)
            images.update(zip(numbers, vectors, strict=True))
        uncaptioned = [item for item in added if item.caption and item.number not in captions]
        if uncaptioned:
            log.info("embedding the captions of %d uploads for %s", len(uncaptioned), self.model.caption_vectors_id)
            numbers = [item.number for item in uncaptioned]
            texts = [item.caption for item in uncaptioned]
            vectors = self.model.caption_vectors(np.stack([images[number] for number in numbers]), texts)
            self.store.put_vectors(self.model.caption_vectors_id, numbers, vectors)
            captions.update(zip(numbers, vectors, strict=True))
        return added

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


def _kinds(model: ServedModel) -> set[str]:
    """The vectors this model makes: its image vectors and its caption blends."""
    return {model.vectors_id, model.caption_vectors_id}


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
    write_atomically(path, lambda tmp: np.save(tmp, vectors, allow_pickle=False))
    return vectors
