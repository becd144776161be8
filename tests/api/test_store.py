"""The SQLite store: it opens what older code wrote, and keeps each kind of vector apart."""

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
        assert store.without_vectors("other-weights") == [(1, "a red car", b"\x89")]
    finally:
        store.close()
    with sqlite3.connect(path) as migrated:
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_new_store_is_at_the_current_schema_version_and_reopens(tmp_path) -> None:
    path = tmp_path / "gallery.sqlite3"
    store = SqliteStore(path)
    store.add(b"png", None, "cat", {"v1": np.ones(4, dtype=np.float32)})
    store.close()
    reopened = SqliteStore(path)
    try:
        assert reopened.count() == 1 and list(reopened.vectors("v1")) == [1]
    finally:
        reopened.close()


def test_an_item_keeps_one_vector_of_each_kind_until_the_kind_is_dropped(tmp_path) -> None:
    store = SqliteStore(tmp_path / "gallery.sqlite3")
    try:
        image, caption = np.ones(4, dtype=np.float32), np.full(4, 2, dtype=np.float32)
        captioned = store.add(b"a", "a red car", None, {"image": image, "caption": caption})
        plain = store.add(b"b", None, None, {"image": image})
        assert store.without_vectors("caption") == [(plain.number, None, b"b")]
        assert store.without_vectors("caption", captioned=True) == []
        np.testing.assert_array_equal(store.vectors("caption")[captioned.number], caption)
        store.keep_vectors({"image"})
        assert store.without_vectors("caption", captioned=True) == [(captioned.number, "a red car", b"a")]
        assert set(store.vectors("image")) == {captioned.number, plain.number}
    finally:
        store.close()


def test_pages_list_the_newest_item_first(tmp_path) -> None:
    store = SqliteStore(tmp_path / "gallery.sqlite3")
    try:
        numbers = [store.add(b"png", None, None, {}).number for _ in range(3)]
        assert [item.number for item in store.page(0, 2)] == numbers[::-1][:2]
        assert [item.number for item in store.page(2, 2)] == numbers[:1]
    finally:
        store.close()
