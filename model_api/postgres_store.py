"""The shared gallery store: PostgreSQL through psycopg 3 and a connection pool
(`CLIP_DATABASE_URL=postgresql://...`), for several API replicas serving one gallery.

Writes take one transaction-scoped advisory lock, so change seqs commit in seq order: a replica
that has applied seq n has seen every change up to n, and `changes_since(n)` misses nothing.
Gallery writes are a few per second at most, so serialising them costs nothing measurable. Each
write sends `NOTIFY gallery_changes` (delivered at commit); `listen` keeps one connection of its
own on `LISTEN`, yields on each notification, once a second anyway, and after every reconnect,
so a replica that lost its connection catches up from its seq when the database is back.

A database that cannot be reached raises `StoreUnavailableError` (the API answers 503) within
`POOL_TIMEOUT_S`; the pool checks each connection before lending it, so the first request after
a database restart gets a fresh connection instead of a dead one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from .photos import StoredImages
from .store import (
    PICTURE_SQL,
    Added,
    Changes,
    Picture,
    StoredItem,
    StoreUnavailableError,
    group_vectors,
    image_values,
    replay,
    upload_fingerprint,
    vector_blob,
)

log = logging.getLogger(__name__)

CHANNEL = "gallery_changes"
# Arbitrary constants naming the two advisory locks (schema creation, writes).
SCHEMA_LOCK, WRITE_LOCK = 727_001, 727_002
# How long a request waits for a connection before its 503, a connection attempt before giving up,
# and opening the store for its first connection (the API retries, app_state.py).
POOL_TIMEOUT_S, CONNECT_TIMEOUT_S, OPEN_TIMEOUT_S = 2.0, 2, 5.0
# `listen` wakes at least this often: the safety net for a notification lost without an error.
LISTEN_POLL_S = 1.0
RECONNECT_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    number BIGSERIAL PRIMARY KEY,
    caption TEXT,
    label TEXT,
    png BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
-- Photos kept as uploaded (`png` is the model's 32x32 input); a database from before has NULL here.
ALTER TABLE items ADD COLUMN IF NOT EXISTS photo BYTEA;
ALTER TABLE items ADD COLUMN IF NOT EXISTS thumbnail BYTEA;
ALTER TABLE items ADD COLUMN IF NOT EXISTS media_type TEXT;
ALTER TABLE items ADD COLUMN IF NOT EXISTS sha256 TEXT;
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
CREATE TABLE IF NOT EXISTS vectors (
    number BIGINT NOT NULL REFERENCES items (number) ON DELETE CASCADE,
    vectors_id TEXT NOT NULL,
    vector BYTEA NOT NULL,
    PRIMARY KEY (number, vectors_id)
);
CREATE TABLE IF NOT EXISTS changes (
    seq BIGSERIAL PRIMARY KEY,
    number BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    number BIGINT NOT NULL
);
"""
_ITEM_COLUMNS = "number, caption, label, created_at"
_INSERT_COLUMNS = "caption, label, created_at, png, photo, thumbnail, media_type, sha256"


class PostgresStore:
    def __init__(self, url: str, pool_size: int) -> None:
        self.url = url
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=POOL_TIMEOUT_S,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
            check=ConnectionPool.check_connection,
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=OPEN_TIMEOUT_S)
        except psycopg.OperationalError as error:
            self._pool.close()
            raise StoreUnavailableError(f"cannot reach the gallery database: {error}") from error
        with self._transaction() as db:
            # Replicas starting together would race on CREATE TABLE IF NOT EXISTS.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            db.execute(_SCHEMA)

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
        with self._write() as db:
            if idempotency_key is not None:
                earlier = db.execute(
                    "SELECT fingerprint, number FROM idempotency_keys WHERE key = %s", (idempotency_key,)
                ).fetchone()
                if earlier is not None:
                    return replay(idempotency_key, earlier[0], fingerprint, _item(db, earlier[1]))
            number = db.execute(
                f"INSERT INTO items ({_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING number",
                (caption, label, created_at, *image_values(images)),
            ).fetchone()[0]
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO vectors (number, vectors_id, vector) VALUES (%s, %s, %s)",
                    [(number, vectors_id, vector_blob(vector)) for vectors_id, vector in vectors.items()],
                )
            if idempotency_key is not None:
                db.execute(
                    "INSERT INTO idempotency_keys (key, fingerprint, number) VALUES (%s, %s, %s)",
                    (idempotency_key, fingerprint, number),
                )
            _record_change(db, number, deleted=False)
        return Added(StoredItem(number, caption, label, created_at), replayed=False)

    def delete(self, number: int) -> bool:
        with self._write() as db:
            if db.execute("DELETE FROM items WHERE number = %s", (number,)).rowcount == 0:
                return False
            _record_change(db, number, deleted=True)
            return True

    def images(self, numbers: list[int]) -> dict[int, bytes]:
        with self._transaction() as db:
            return dict(db.execute("SELECT number, png FROM items WHERE number = ANY(%s)", (numbers,)).fetchall())

    def known_hashes(self, sha256s: list[str]) -> set[str]:
        with self._transaction() as db:
            rows = db.execute("SELECT sha256 FROM items WHERE sha256 = ANY(%s)", (sha256s,)).fetchall()
        return {row[0] for row in rows}

    def picture(self, number: int, kind: Picture) -> tuple[bytes, str] | None:
        with self._transaction() as db:
            row = db.execute(f"SELECT {PICTURE_SQL[kind]} FROM items WHERE number = %s", (number,)).fetchone()
        return tuple(row) if row else None

    def snapshot(self, vectors_ids: set[str]) -> Changes:
        with self._transaction(repeatable_read=True) as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
            items = db.execute(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY number").fetchall()
            # Binary results: 100,000 vectors arrive as raw float32 bytes instead of hex text.
            with db.cursor(binary=True) as cursor:
                vectors = cursor.execute(
                    "SELECT number, vectors_id, vector FROM vectors WHERE vectors_id = ANY(%s)", (sorted(vectors_ids),)
                ).fetchall()
        return Changes(seq, [StoredItem(*row) for row in items], group_vectors(vectors, vectors_ids))

    def changes_since(self, seq: int, vectors_ids: set[str]) -> Changes:
        with self._transaction(repeatable_read=True) as db:
            rows = db.execute("SELECT seq, number, deleted FROM changes WHERE seq > %s ORDER BY seq", (seq,)).fetchall()
            if not rows:
                return Changes(seq, vectors=group_vectors([], vectors_ids))
            deleted = [number for _, number, gone in rows if gone]
            # Numbers are never reused: an item added and deleted since is simply gone.
            added = sorted({number for _, number, gone in rows if not gone} - set(deleted))
            items = db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE number = ANY(%s) ORDER BY number", (added,)
            ).fetchall()
            vectors = db.execute(
                "SELECT number, vectors_id, vector FROM vectors WHERE number = ANY(%s) AND vectors_id = ANY(%s)",
                (added, sorted(vectors_ids)),
            ).fetchall()
        return Changes(rows[-1][0], [StoredItem(*row) for row in items], group_vectors(vectors, vectors_ids), deleted)

    def put_vectors(self, vectors_id: str, numbers: list[int], vectors: np.ndarray) -> None:
        rows = [(number, vectors_id, vector_blob(vector)) for number, vector in zip(numbers, vectors, strict=True)]
        with self._transaction() as db, db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO vectors (number, vectors_id, vector) VALUES (%s, %s, %s) "
                "ON CONFLICT (number, vectors_id) DO UPDATE SET vector = EXCLUDED.vector",
                rows,
            )

    def keep_vectors(self, vectors_ids: set[str]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM vectors WHERE NOT (vectors_id = ANY(%s))", (sorted(vectors_ids),))

    def listen(self, stopping: threading.Event) -> Iterator[None]:
        lost = False  # said once per outage, not once per reconnect attempt
        while not stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    if lost:
                        log.info("gallery change feed: the database is back; catching up")
                        lost = False
                    yield  # (re)connected: whatever happened while we were away is in the feed
                    while not stopping.is_set():
                        for _ in connection.notifies(timeout=LISTEN_POLL_S, stop_after=1):
                            pass
                        yield
            except psycopg.OperationalError as error:
                if not lost:
                    log.warning("gallery change feed: database lost (%s); retrying every %.0f s", error, RECONNECT_S)
                    lost = True
                stopping.wait(RECONNECT_S)

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _transaction(self, repeatable_read: bool = False) -> Iterator[psycopg.Connection]:
        """One transaction on a pooled connection, committed on success; an unreachable database
        becomes `StoreUnavailableError`."""
        try:
            with self._pool.connection() as connection, connection.transaction():
                if repeatable_read:  # one snapshot for every statement: changes and rows agree
                    connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                yield connection
        except psycopg.OperationalError as error:  # PoolTimeout is one too
            raise StoreUnavailableError(
                "the gallery database is unreachable: adding and deleting images fail until it is back"
                " (search and browsing keep working)"
            ) from error

    @contextlib.contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield db


def _item(db: psycopg.Connection, number: int) -> StoredItem | None:
    row = db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE number = %s", (number,)).fetchone()
    return StoredItem(*row) if row else None


def _record_change(db: psycopg.Connection, number: int, deleted: bool) -> None:
    seq = db.execute(
        "INSERT INTO changes (number, deleted) VALUES (%s, %s) RETURNING seq", (number, deleted)
    ).fetchone()[0]
    db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))
