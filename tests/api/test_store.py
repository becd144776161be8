"""The SQLite store opens what older code wrote."""

import sqlite3

import numpy as np

from model_api.store import SCHEMA_VERSION, SqliteStore

# What the store's first version created: the vectors' key column was called `model_sha`.
VERSION_0_SCHEMA = """
CREATE TABLE items (
    number INTEGER PRIMARY KEY AUTOINCREMENT, caption TEXT, label TEXT, png BLOB NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE vectors (
    number INTEGER NOT NULL REFERENCES items(number) ON DELETE CASCADE,
    model_sha TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (number, model_sha)
);
"""


def test_a_store_written_by_the_first_version_opens_with_its_items_and_vectors(tmp_path) -> None:
    path = tmp_path / "gallery.sqlite3"
    vector = np.arange(4, dtype=np.float32)
    with sqlite3.connect(path) as old:
        old.executescript(VERSION_0_SCHEMA)
        old.execute("INSERT INTO items (caption, label, png, created_at) VALUES ('a red car', 'car', x'89', 1.0)")
        old.execute("INSERT INTO vectors VALUES (1, 'weights-flip-averaged', ?)", (vector.tobytes(),))
    store = SqliteStore(path)
    try:
        assert store.get(1).caption == "a red car"
        np.testing.assert_array_equal(store.vectors("weights-flip-averaged")[1], vector)
        assert store.without_vectors("other-weights") == [(1, b"\x89")]
    finally:
        store.close()
    with sqlite3.connect(path) as migrated:
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_new_store_is_at_the_current_schema_version_and_reopens(tmp_path) -> None:
    path = tmp_path / "gallery.sqlite3"
    store = SqliteStore(path)
    store.add(b"png", None, "cat", "v1", np.ones(4, dtype=np.float32))
    store.close()
    reopened = SqliteStore(path)
    try:
        assert reopened.count() == 1 and list(reopened.vectors("v1")) == [1]
    finally:
        reopened.close()
