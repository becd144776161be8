"""Durable storage of user-added gallery items: metadata, image bytes and embeddings.

`GalleryStore` is the contract the gallery needs, with two implementations sharing one test
suite (tests/api/test_store.py): `SqliteStore`, an embedded file and the default, and
`PostgresStore`, chosen by `CLIP_DATABASE_URL`, which several API replicas share.

Every add and delete also appends a row to a change feed numbered by `seq`, in the same
transaction, and writes are serialised so that seq order is commit order. A replica holds the
gallery in memory as of some seq: it loads a `Changes` snapshot once, then asks for the changes
after the seq it has (`changes_since`), so it never re-reads the whole table and a missed
notification only delays what the next call returns. Embeddings are keyed by what made them
(`ServedModel.vectors_id`, and `caption_vectors_id` for captioned items).

Each item keeps three images (`photos.StoredImages`): the 32x32 PNG the model embedded, the photo
as uploaded (longest side capped) and its thumbnail. Items stored before photos were kept have
only the first, which then stands in for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from threading import Event
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from .photos import StoredImages

if TYPE_CHECKING:
    from .settings import Settings

Picture = Literal["photo", "thumbnail"]


@dataclass(frozen=True)
class StoredItem:
    number: int  # never reused, so a deleted item's URL cannot point at a newer item
    caption: str | None
    label: str | None
    created_at: float  # unix seconds


@dataclass(frozen=True)
class Added:
    item: StoredItem | None  # None only when replayed and the item has since been deleted
    replayed: bool  # an earlier add with the same idempotency key: nothing new was stored


@dataclass
class Changes:
    """What changed after some seq, up to and including `seq`: the items added since (those still
    present) with their vectors of the kinds asked for, and the numbers deleted since."""

    seq: int
    added: list[StoredItem] = field(default_factory=list)
    vectors: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # vectors_id -> {number: (D,)}
    deleted: list[int] = field(default_factory=list)


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached; the gallery in memory still answers reads."""


class IdempotencyKeyReusedError(ValueError):
    """An idempotency key came back with a different upload than the one it first added."""


class GalleryStore(Protocol):
    def add(
        self,
        images: StoredImages,
        caption: str | None,
        label: str | None,
        vectors: Mapping[str, np.ndarray],
        idempotency_key: str | None = None,
    ) -> Added:
        """vectors: {vectors_id: (D,) float32}, stored in the item's transaction. A key seen before
        returns the item it added (replayed) if the upload is the same, else raises
        `IdempotencyKeyReusedError`."""
        ...

    def delete(self, number: int) -> bool: ...

    def images(self, numbers: list[int]) -> dict[int, bytes]:
        """The model input's PNG bytes of those items that exist."""
        ...

    def picture(self, number: int, kind: Picture) -> tuple[bytes, str] | None:
        """(bytes, media type) of the item's photo or thumbnail; None if there is no such item."""
        ...

    def known_hashes(self, sha256s: list[str]) -> set[str]:
        """Those of these uploaded files' sha256s that an item holds: a bulk import skips them."""
        ...

    def snapshot(self, vectors_ids: set[str]) -> Changes:
        """Every item and its vectors of these kinds, as of one seq, read consistently."""
        ...

    def changes_since(self, seq: int, vectors_ids: set[str]) -> Changes: ...

    def put_vectors(self, vectors_id: str, numbers: list[int], vectors: np.ndarray) -> None: ...

    def keep_vectors(self, vectors_ids: set[str]) -> None:
        """Drops every vector of another kind: another model's or method's are stale."""
        ...

    def listen(self, stopping: Event) -> Iterator[None]:
        """Yields whenever another process may have changed the store, until `stopping` is set."""
        ...

    def close(self) -> None: ...


def open_store(settings: Settings) -> GalleryStore:
    if settings.database_url is not None:
        from .postgres_store import PostgresStore  # psycopg is needed only here

        return PostgresStore(settings.database_url.get_secret_value(), settings.database_pool_size)
    from .sqlite_store import SqliteStore

    return SqliteStore(settings.store_dir / "gallery.sqlite3")


def upload_fingerprint(images: StoredImages, caption: str | None, label: str | None) -> str:
    """What an idempotency key is bound to: the same key with another upload is a client error."""
    digest = hashlib.sha256(images.sha256.encode())
    for text in (caption, label):
        digest.update(b"\x00" if text is None else b"\x01" + text.encode() + b"\x00")
    return digest.hexdigest()


def replay(key: str, fingerprint_then: str, fingerprint_now: str, item: StoredItem | None) -> Added:
    """The answer to an add whose idempotency key is already stored."""
    if fingerprint_then != fingerprint_now:
        raise IdempotencyKeyReusedError(f"Idempotency-Key {key!r} was already used for a different upload")
    return Added(item, replayed=True)


# Both stores' SELECT list for a picture: an item from before photos were kept shows its 32x32 PNG.
PICTURE_SQL = {
    "photo": "COALESCE(photo, png), COALESCE(media_type, 'image/png')",
    "thumbnail": "COALESCE(thumbnail, photo, png), COALESCE(media_type, 'image/png')",
}


def image_values(images: StoredImages) -> tuple[bytes, bytes, bytes, str, str]:
    """The image columns of an items row, in both stores' insert order: png (the model input),
    photo, thumbnail, media_type, sha256."""
    return images.model_input, images.photo, images.thumbnail, images.media_type, images.sha256


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def group_vectors(rows: list[tuple[int, str, bytes]], vectors_ids: set[str]) -> dict[str, dict[int, np.ndarray]]:
    """(number, vectors_id, blob) rows -> {vectors_id: {number: (D,) float32}}, every kind present."""
    grouped: dict[str, dict[int, np.ndarray]] = {vectors_id: {} for vectors_id in vectors_ids}
    for number, vectors_id, blob in rows:
        grouped[vectors_id][number] = np.frombuffer(blob, dtype=np.float32)
    return grouped
