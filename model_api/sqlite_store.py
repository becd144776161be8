"""The embedded gallery store: one SQLite file, the default when no `CLIP_DATABASE_URL` is set.

Each add is one transaction holding the item, its PNG, its embeddings and its change-feed row,
in WAL mode with synchronous=FULL: once `add` returns the item survives a crash or power loss,
and a crash mid-write leaves no half item behind. The API's process writes the file, and a bulk
import (`main.py --mode INDEX`) may write it at the same time from another: `listen` looks once a
second at SQLite's `data_version`, which changes when another connection commits, so a running
API applies the imported items from the change feed within about a second. Stores written by
older code are migrated when opened (SQLite's `user_version`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from .photos import StoredImages
from .store import (
    PICTURE_SQL,
    Added,
    Changes,
    Picture,
    StoredItem,
    group_vectors,
    image_values,
    replay,
    upload_fingerprint,
    vector_blob,
)

# 1: the vectors' key column is `vectors_id` (version 0 called it `model_sha`).
# 2: the change feed (`changes`) and idempotency keys.
# 3: the uploaded photo, its thumbnail, their media type and the uploaded file's sha256 (`png` is
#    the model's 32x32 input); older items have NULL there and show their `png`.
SCHEMA_VERSION = 3
_PHOTO_COLUMNS = {"photo": "BLOB", "thumbnail": "BLOB", "media_type": "TEXT", "sha256": "TEXT"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    caption TEXT,
    label TEXT,
    png BLOB NOT NULL,
    created_at REAL NOT NULL,
    photo BLOB,
    thumbnail BLOB,
    media_type TEXT,
    sha256 TEXT
);
CREATE TABLE IF NOT EXISTS vectors (
    number INTEGER NOT NULL REFERENCES items(number) ON DELETE CASCADE,
    vectors_id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (number, vectors_id)
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    number INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    number INTEGER NOT NULL
);
"""
_ITEM_COLUMNS = "number, caption, label, created_at"
# How often `listen` looks for another process's commits (a bulk import's).
LISTEN_POLL_S = 1.0
_INSERT_COLUMNS = "caption, label, created_at, png, photo, thumbnail, media_type, sha256"


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the server's worker threads, serialised by a lock: every
        # statement here takes well under a millisecond.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        self._migrate()

    def _migrate(self) -> None:
        """Brings a store written by older code to `SCHEMA_VERSION`; the tables version 2 added
        start empty (older items need no change rows: a snapshot reads the items themselves)."""
        with self._lock, self._transaction():
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(vectors)")}
            if "model_sha" in columns:  # version 0
                self._db.execute("ALTER TABLE vectors RENAME COLUMN model_sha TO vectors_id")
            for statement in _SCHEMA.split(";"):
                self._db.execute(statement)
            item_columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
            for column, kind in _PHOTO_COLUMNS.items():  # versions 0 to 2
                if column not in item_columns:
                    self._db.execute(f"ALTER TABLE items ADD COLUMN {column} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256)")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def add(
        self,
        images: StoredImages,
        caption: str | None,
        label: str | None,
        vectors: Mapping[str, np.ndarray],
        idempotency_key: str | None = None,
    ) -> Added:
        created_at = time.time()
        fingerprint = upload_fingerprint(images, caption, label)
        with self._lock, self._transaction():
            if idempotency_key is not None:
                earlier = self._db.execute(
                    "SELECT fingerprint, number FROM idempotency_keys WHERE key = ?", (idempotency_key,)
                ).fetchone()
                if earlier is not None:
                    return replay(idempotency_key, earlier[0], fingerprint, self._item(earlier[1]))
            number = self._db.execute(
                f"INSERT INTO items ({_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (caption, label, created_at, *image_values(images)),
            ).lastrowid
            self._db.executemany(
                "INSERT INTO vectors (number, vectors_id, vector) VALUES (?, ?, ?)",
                [(number, vectors_id, vector_blob(vector)) for vectors_id, vector in vectors.items()],
            )
            self._db.execute("INSERT INTO changes (number, deleted) VALUES (?, 0)", (number,))
            if idempotency_key is not None:
                self._db.execute(
                    "INSERT INTO idempotency_keys (key, fingerprint, number) VALUES (?, ?, ?)",
                    (idempotency_key, fingerprint, number),
                )
        return Added(StoredItem(number, caption, label, created_at), replayed=False)

    def _item(self, number: int) -> StoredItem | None:
        row = self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE number = ?", (number,)).fetchone()
        return StoredItem(*row) if row else None

    def delete(self, number: int) -> bool:
        with self._lock, self._transaction():
            if self._db.execute("DELETE FROM items WHERE number = ?", (number,)).rowcount == 0:
                return False
            self._db.execute("INSERT INTO changes (number, deleted) VALUES (?, 1)", (number,))
            return True

    def images(self, numbers: list[int]) -> dict[int, bytes]:
        with self._lock:
            return dict(self._db.execute(f"SELECT number, png FROM items WHERE number IN ({_marks(numbers)})", numbers))

    def known_hashes(self, sha256s: list[str]) -> set[str]:
        with self._lock:
            rows = self._db.execute(f"SELECT sha256 FROM items WHERE sha256 IN ({_marks(sha256s)})", sha256s)
            return {row[0] for row in rows}

    def picture(self, number: int, kind: Picture) -> tuple[bytes, str] | None:
        with self._lock:
            row = self._db.execute(f"SELECT {PICTURE_SQL[kind]} FROM items WHERE number = ?", (number,)).fetchone()
        return tuple(row) if row else None

    def snapshot(self, vectors_ids: set[str]) -> Changes:
        with self._lock, self._transaction():
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
            items = self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY number").fetchall()
            vectors = self._db.execute(
                f"SELECT number, vectors_id, vector FROM vectors WHERE vectors_id IN ({_marks(vectors_ids)})",
                sorted(vectors_ids),
            ).fetchall()
        return Changes(seq, [StoredItem(*row) for row in items], group_vectors(vectors, vectors_ids))

    def changes_since(self, seq: int, vectors_ids: set[str]) -> Changes:
        with self._lock, self._transaction():
            rows = self._db.execute("SELECT seq, number, deleted FROM changes WHERE seq > ? ORDER BY seq", (seq,))
            rows = rows.fetchall()
            if not rows:
                return Changes(seq, vectors=group_vectors([], vectors_ids))
            deleted = [number for _, number, gone in rows if gone]
            # Numbers are never reused: an item added and deleted since is simply gone.
            added = sorted({number for _, number, gone in rows if not gone} - set(deleted))
            items = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE number IN ({_marks(added)}) ORDER BY number", added
            ).fetchall()
            vectors = self._db.execute(
                f"SELECT number, vectors_id, vector FROM vectors WHERE number IN ({_marks(added)}) "
                f"AND vectors_id IN ({_marks(vectors_ids)})",
                [*added, *sorted(vectors_ids)],
            ).fetchall()
        return Changes(rows[-1][0], [StoredItem(*row) for row in items], group_vectors(vectors, vectors_ids), deleted)

    def put_vectors(self, vectors_id: str, numbers: list[int], vectors: np.ndarray) -> None:
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors (number, vectors_id, vector) VALUES (?, ?, ?)",
                [(number, vectors_id, vector_blob(vector)) for number, vector in zip(numbers, vectors, strict=True)],
            )

    def keep_vectors(self, vectors_ids: set[str]) -> None:
        with self._lock, self._transaction():
            kinds = sorted(vectors_ids)
            self._db.execute(f"DELETE FROM vectors WHERE vectors_id NOT IN ({_marks(kinds)})", kinds)

    def listen(self, stopping: threading.Event) -> Iterator[None]:
        seen = self._data_version()
        while not stopping.wait(LISTEN_POLL_S):
            if (version := self._data_version()) != seen:  # another process committed
                seen = version
                yield

    def _data_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection autocommits).
        IMMEDIATE takes the write lock at once, so change seqs commit in their order."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _marks(values: set | list) -> str:
    return ", ".join("?" * len(values))
