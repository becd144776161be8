"""The store contract, run against both stores (SQLite and a real PostgreSQL): items, vectors by
kind, the change feed and idempotency keys. Then what only SQLite has: migrating older files."""

import hashlib
import sqlite3
import threading
import time

import numpy as np
import psycopg
import pytest

from model_api.photos import StoredImages
from model_api.postgres_store import PostgresStore
from model_api.sqlite_store import SCHEMA_VERSION, SqliteStore
from model_api.store import Changes, GalleryStore, IdempotencyKeyReusedError

IMAGE, CAPTION = "image-kind", "caption-kind"
KINDS = {IMAGE, CAPTION}


def vector(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


def upload(name: bytes) -> StoredImages:
    """Distinct bytes for each of an upload's images, so a test sees which one came back."""
    return StoredImages(
        model_input=name,
        photo=b"photo-" + name,
        thumbnail=b"thumbnail-" + name,
        media_type="image/jpeg",
        sha256=hashlib.sha256(name).hexdigest(),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path):
    """open_store() -> a store on this test's data (SQLite file or PostgreSQL database); a second
    call opens the same data again, as a restart or another replica would."""
    if request.param == "sqlite":
        path = tmp_path / "gallery.sqlite3"
        opener = lambda: SqliteStore(path)  # noqa: E731
    else:
        url = request.getfixturevalue("postgres_url")
        opener = lambda: PostgresStore(url, pool_size=2)  # noqa: E731
    opened: list[GalleryStore] = []

    def open_() -> GalleryStore:
        opened.append(opener())
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store) -> GalleryStore:
    return open_store()


def test_an_added_item_is_in_the_snapshot_with_its_vectors_by_kind(store):
    captioned = store.add(upload(b"a"), "a red car", "car", {IMAGE: vector(1), CAPTION: vector(2)}).item
    plain = store.add(upload(b"b"), None, None, {IMAGE: vector(3)}).item
    assert plain.number > captioned.number
    snapshot = store.snapshot(KINDS)
    assert snapshot.added == [captioned, plain] and snapshot.deleted == []
    assert (captioned.caption, captioned.label) == ("a red car", "car")
    np.testing.assert_array_equal(snapshot.vectors[CAPTION][captioned.number], vector(2))
    assert set(snapshot.vectors[IMAGE]) == {captioned.number, plain.number}
    assert set(snapshot.vectors[CAPTION]) == {captioned.number}
    assert store.snapshot({"other-kind"}).vectors == {"other-kind": {}}
    assert store.images([captioned.number, plain.number, 999]) == {captioned.number: b"a", plain.number: b"b"}


def test_an_items_photo_and_thumbnail_come_back_with_their_media_type(store):
    item = store.add(upload(b"a"), None, None, {IMAGE: vector(1)}).item
    assert store.picture(item.number, "photo") == (b"photo-a", "image/jpeg")
    assert store.picture(item.number, "thumbnail") == (b"thumbnail-a", "image/jpeg")
    assert store.images([item.number]) == {item.number: b"a"}  # the model's input, for re-embedding
    assert store.picture(item.number + 1, "photo") is None


def test_the_change_feed_holds_only_what_changed_after_a_seq(store):
    first = store.add(upload(b"a"), None, None, {IMAGE: vector(1)}).item
    seq = store.snapshot(KINDS).seq
    assert store.changes_since(seq, KINDS) == Changes(seq, vectors={IMAGE: {}, CAPTION: {}})  # nothing new
    second = store.add(upload(b"b"), None, None, {IMAGE: vector(2)}).item
    gone = store.add(upload(b"c"), None, None, {IMAGE: vector(3)}).item
    assert store.delete(gone.number) and store.delete(first.number)
    assert not store.delete(first.number)  # already gone: no change recorded
    changes = store.changes_since(seq, {IMAGE})
    assert changes.seq == seq + 4
    # Added and deleted since: only the deletion matters; deleted from before: a deletion.
    assert changes.added == [second] and list(changes.vectors[IMAGE]) == [second.number]
    assert sorted(changes.deleted) == sorted([gone.number, first.number])
    assert store.changes_since(changes.seq, KINDS).added == []


def test_a_snapshot_and_the_feed_after_its_seq_make_the_whole_gallery(open_store):
    writer, reader = open_store(), open_store()
    writer.add(upload(b"a"), None, None, {IMAGE: vector(1)})
    snapshot = reader.snapshot(KINDS)
    later = writer.add(upload(b"b"), None, None, {IMAGE: vector(2)}).item
    assert reader.changes_since(snapshot.seq, KINDS).added == [later]


def test_an_idempotency_key_adds_once_and_refuses_another_upload(store):
    first = store.add(upload(b"a"), "cap", None, {IMAGE: vector(1)}, idempotency_key="key-1")
    again = store.add(upload(b"a"), "cap", None, {IMAGE: vector(1)}, idempotency_key="key-1")
    assert not first.replayed and again.replayed and again.item == first.item
    assert len(store.snapshot(KINDS).added) == 1 and store.changes_since(0, KINDS).seq == 1
    with pytest.raises(IdempotencyKeyReusedError, match="key-1"):
        store.add(upload(b"a"), "another caption", None, {IMAGE: vector(1)}, idempotency_key="key-1")
    other = store.add(upload(b"a"), "cap", None, {IMAGE: vector(1)}, idempotency_key="key-2")
    assert not other.replayed and other.item.number != first.item.number
    store.delete(first.item.number)  # replaying a deleted item's add says so, and adds nothing
    assert store.add(upload(b"a"), "cap", None, {IMAGE: vector(1)}, idempotency_key="key-1").item is None


def test_vectors_of_other_kinds_are_dropped_and_missing_ones_put(store):
    item = store.add(upload(b"a"), "a red car", None, {IMAGE: vector(1), "old-kind": vector(9)}).item
    store.keep_vectors(KINDS)
    assert store.snapshot({"old-kind"}).vectors["old-kind"] == {}
    store.put_vectors(CAPTION, [item.number], vector(4)[None])
    store.put_vectors(IMAGE, [item.number], vector(5)[None])  # replaces
    vectors = store.snapshot(KINDS).vectors
    np.testing.assert_array_equal(vectors[CAPTION][item.number], vector(4))
    np.testing.assert_array_equal(vectors[IMAGE][item.number], vector(5))


def test_items_survive_closing_and_reopening(open_store):
    first = open_store()
    item = first.add(upload(b"png"), None, "cat", {IMAGE: vector(1)}).item
    first.close()
    assert open_store().snapshot(KINDS).added == [item]


def test_listen_stops_when_told(store):
    stopping = threading.Event()
    done = threading.Event()

    def follow():
        for _ in store.listen(stopping):
            pass
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set()
    stopping.set()
    assert done.wait(3)


def test_postgres_listen_wakes_on_another_processes_write(postgres_url):
    listener, writer = PostgresStore(postgres_url, 1), PostgresStore(postgres_url, 1)
    stopping = threading.Event()
    wakes = listener.listen(stopping)
    try:
        next(wakes)  # connected
        timer = threading.Timer(0.3, writer.add, (upload(b"a"), None, None, {}))
        started = time.monotonic()
        timer.start()
        next(wakes)
        # A notification, not the once-a-second poll.
        assert 0.25 < time.monotonic() - started < 0.9
    finally:
        stopping.set()
        wakes.close()
        listener.close()
        writer.close()


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


def test_a_sqlite_store_written_by_the_first_version_opens_with_its_items_and_vectors(tmp_path) -> None:
    path = tmp_path / "gallery.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(VERSION_0_SCHEMA)
        old.execute("INSERT INTO items (caption, label, png, created_at) VALUES ('a red car', 'car', x'89', 1.0)")
        old.execute("INSERT INTO vectors VALUES (1, 'weights-flip-averaged', ?)", (vector(1).tobytes(),))
    store = SqliteStore(path)
    try:
        snapshot = store.snapshot({"weights-flip-averaged"})
        assert [item.caption for item in snapshot.added] == ["a red car"]
        np.testing.assert_array_equal(snapshot.vectors["weights-flip-averaged"][1], vector(1))
        # Its later changes are fed from seq 0, so they follow that snapshot.
        # An item from before photos were kept shows the 32x32 PNG it has, for both.
        assert store.picture(1, "photo") == store.picture(1, "thumbnail") == (b"\x89", "image/png")
        added = store.add(upload(b"png"), None, None, {}).item
        assert snapshot.seq == 0 and store.changes_since(0, set()).added == [added]
    finally:
        store.close()
    with sqlite3.connect(path) as migrated:
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_postgres_gallery_from_before_photos_gains_their_columns(postgres_url):
    """The schema's first version, with an item, as the previous release left it."""
    with psycopg.connect(postgres_url, autocommit=True) as old:
        old.execute(
            "CREATE TABLE items (number BIGSERIAL PRIMARY KEY, caption TEXT, label TEXT, png BYTEA NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL)"
        )
        old.execute("INSERT INTO items (caption, label, png, created_at) VALUES ('old', NULL, '\\x89', 1.0)")
    store = PostgresStore(postgres_url, pool_size=1)
    try:
        assert store.picture(1, "thumbnail") == (b"\x89", "image/png")
        added = store.add(upload(b"new"), None, None, {IMAGE: vector(1)}).item
        assert store.picture(added.number, "photo") == (b"photo-new", "image/jpeg")
    finally:
        store.close()
