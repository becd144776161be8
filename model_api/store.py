"""Durable storage of user-added gallery items: metadata, image bytes and embeddings.

`GalleryStore` is the small interface the gallery needs; `SqliteStore` implements it with an
embedded SQLite file. A server-backed store (for several API replicas) would implement the same
methods. Each add is one transaction holding the item, its PNG and its embedding, in WAL mode
with synchronous=FULL: once `add` returns the item survives a crash or power loss, and a crash
mid-write leaves no half item behind.

Embeddings are keyed by what made them (`ServedModel.vectors_id`: the weights' sha256 and the
embedding method; captioned items have a second, `caption_vectors_id`): after a change of either
the gallery finds the items without a vector for the new key and re-embeds them from their stored
image and caption. Stores written before that column had its present name (it was `model_sha`,
schema version 0) are migrated when opened.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StoredItem:
    number: int  # never reused, so a deleted item's URL cannot point at a newer item
    caption: str | None
    label: str | None
    created_at: float  # unix seconds


# An item that lacks a vector: (number, caption, png), what re-embedding it needs.
Unembedded = tuple[int, str | None, bytes]


class GalleryStore(Protocol):
    def add(self, png: bytes, caption: str | None, label: str | None, vectors: Mapping[str, np.ndarray]) -> StoredItem:
        """vectors: {vectors_id: (D,) float32}, stored in the item's transaction."""
        ...

    def delete(self, number: int) -> bool: ...

    def get(self, number: int) -> StoredItem | None: ...

    def image(self, number: int) -> bytes | None: ...

    def count(self) -> int: ...

    def page(self, offset: int, limit: int) -> list[StoredItem]:
        """Newest first: what a person just added is what they look for."""
        ...

    def vectors(self, vectors_id: str) -> dict[int, np.ndarray]:
        """Items that have a vector of this kind -> {number: (D,) float32}."""
        ...

    def without_vectors(self, vectors_id: str, captioned: bool = False) -> list[Unembedded]:
        """Items (only those with a caption, if `captioned`) lacking a vector of this kind."""
        ...

    def put_vectors(self, vectors_id: str, numbers: list[int], vectors: np.ndarray) -> None: ...

    def keep_vectors(self, vectors_ids: set[str]) -> None:
        """Drops every vector of another kind: another model's or method's are stale."""
        ...

    def close(self) -> None: ...


# 1: the vectors' key column is `vectors_id` (version 0 called it `model_sha`).
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    caption TEXT,
    label TEXT,
    png BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    number INTEGER NOT NULL REFERENCES items(number) ON DELETE CASCADE,
    vectors_id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (number, vectors_id)
);
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the server's worker threads, serialised by a lock: every
        # statement here takes well under a millisecond.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Brings a store written by older code to `SCHEMA_VERSION` (SQLite's `user_version`)."""
        with self._lock, self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(vectors)")}
            if version < 1 and "model_sha" in columns:
                self._db.execute("ALTER TABLE vectors RENAME COLUMN model_sha TO vectors_id")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def add(self, png: bytes, caption: str | None, label: str | None, vectors: Mapping[str, np.ndarray]) -> StoredItem:
        created_at = time.time()
        with self._lock, self._transaction():
            number = self._db.execute(
                "INSERT INTO items (caption, label, png, created_at) VALUES (?, ?, ?, ?)",
                (caption, label, png, created_at),
            ).lastrowid
            self._db.executemany(
                "INSERT INTO vectors (number, vectors_id, vector) VALUES (?, ?, ?)",
                [(number, vectors_id, _vector_blob(vector)) for vectors_id, vector in vectors.items()],
            )
        return StoredItem(number, caption, label, created_at)

    def delete(self, number: int) -> bool:
        with self._lock, self._transaction():
            return self._db.execute("DELETE FROM items WHERE number = ?", (number,)).rowcount > 0

    def get(self, number: int) -> StoredItem | None:
        with self._lock:
            row = self._db.execute(
                "SELECT number, caption, label, created_at FROM items WHERE number = ?", (number,)
            ).fetchone()
        return StoredItem(*row) if row else None

    def image(self, number: int) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT png FROM items WHERE number = ?", (number,)).fetchone()
        return row[0] if row else None

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def page(self, offset: int, limit: int) -> list[StoredItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT number, caption, label, created_at FROM items ORDER BY number DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [StoredItem(*row) for row in rows]

    def vectors(self, vectors_id: str) -> dict[int, np.ndarray]:
        with self._lock:
            rows = self._db.execute("SELECT number, vector FROM vectors WHERE vectors_id = ?", (vectors_id,)).fetchall()
        return {number: np.frombuffer(blob, dtype=np.float32) for number, blob in rows}

    def without_vectors(self, vectors_id: str, captioned: bool = False) -> list[Unembedded]:
        captioned_only = "AND caption IS NOT NULL " if captioned else ""
        with self._lock:
            return self._db.execute(
                "SELECT number, caption, png FROM items WHERE number NOT IN "
                f"(SELECT number FROM vectors WHERE vectors_id = ?) {captioned_only}ORDER BY number",
                (vectors_id,),
            ).fetchall()

    def put_vectors(self, vectors_id: str, numbers: list[int], vectors: np.ndarray) -> None:
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors (number, vectors_id, vector) VALUES (?, ?, ?)",
                [(number, vectors_id, _vector_blob(vector)) for number, vector in zip(numbers, vectors, strict=True)],
            )

    def keep_vectors(self, vectors_ids: set[str]) -> None:
        marks = ", ".join("?" * len(vectors_ids))
        with self._lock, self._transaction():
            self._db.execute(f"DELETE FROM vectors WHERE vectors_id NOT IN ({marks})", sorted(vectors_ids))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection autocommits)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
