"""Bulk import of a folder (`main.py --mode INDEX`), against both stores: new files added with
their photos, files already stored skipped by content, unreadable ones reported, an interrupted
import resumed, and a running API on the same SQLite file showing the imported items."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from model_api.bulk_import import import_folder
from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.hardware import resolve_device
from model_api.postgres_store import PostgresStore
from model_api.served_model import ServedModel
from model_api.sqlite_store import SqliteStore


@pytest.fixture(scope="module")
def model(tiny_checkpoint) -> ServedModel:
    clip, config = load_checkpoint(tiny_checkpoint, None, resolve_device("cpu"))
    return ServedModel(clip, config, tiny_checkpoint, 0, 1)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "gallery.sqlite3")
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=2)
    yield opened
    opened.close()


def draw(path, seed: int, size=(640, 480)) -> None:
    """A drawn picture, different for each seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1] // 40, size[0] // 40, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST).save(path)


def photo_folder(folder):
    draw(folder / "a.jpg", 1)
    draw(folder / "nested" / "b.png", 2, size=(100, 80))
    (folder / "copy-of-a.jpg").write_bytes((folder / "a.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image, not looked at")
    return folder


def test_a_folder_is_added_once_with_its_photos_and_unreadable_files_reported(tmp_path, model, store):
    folder = photo_folder(tmp_path / "photos")
    report = import_folder(folder, model, store, progress=False)
    assert (report.added, report.skipped) == (2, 1)  # the copy of a.jpg is the same content
    assert [path.name for path, _ in report.unreadable] == ["broken.jpg"]
    added = store.snapshot({model.vectors_id})
    assert len(added.added) == 2 and len(added.vectors[model.vectors_id]) == 2
    media = sorted(store.picture(item.number, "photo")[1] for item in added.added)
    assert media == ["image/jpeg", "image/png"]  # a.jpg is 640x480, b.png small

    again = import_folder(folder, model, store, progress=False)
    assert (again.added, again.skipped, len(again.unreadable)) == (0, 3, 1)
    assert len(store.snapshot({model.vectors_id}).added) == 2


def test_an_interrupted_import_resumes_where_it_stopped(tmp_path, model, store, monkeypatch):
    folder = tmp_path / "photos"
    for seed in range(5):
        draw(folder / f"{seed}.png", seed + 10)
    add, calls = store.add, []

    def add_then_stop(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return add(*args, **kwargs)

    monkeypatch.setattr(store, "add", add_then_stop)
    with pytest.raises(KeyboardInterrupt):
        import_folder(folder, model, store, progress=False)
    monkeypatch.setattr(store, "add", add)
    report = import_folder(folder, model, store, progress=False)
    assert (report.added, report.skipped) == (2, 3)
    assert len(store.snapshot({model.vectors_id}).added) == 5


def test_a_running_api_on_the_same_sqlite_file_shows_the_imported_images(tmp_path, model, serve, make_settings):
    settings = make_settings(store_dir=tmp_path / "store")
    client = serve(settings)
    writer = SqliteStore(settings.store_dir / "gallery.sqlite3")
    try:
        import_folder(photo_folder(tmp_path / "photos"), model, writer, progress=False)
    finally:
        writer.close()
    deadline = time.monotonic() + 5
    while client.get("/v1/gallery", params={"source": "user"}).json()["total"] < 2:
        assert time.monotonic() < deadline, "the API did not pick up the imported items"
        time.sleep(0.1)
    item = client.get("/v1/gallery", params={"source": "user"}).json()["items"][0]
    assert client.get(item["image_url"]).status_code == 200
    similar = client.post("/v1/search/similar", json={"id": item["id"], "top_k": 3})
    assert similar.status_code == 200 and len(similar.json()["results"]) == 3
