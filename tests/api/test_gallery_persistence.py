"""The gallery survives restarts, and its cached embeddings follow the checkpoint."""

from __future__ import annotations

import logging
import shutil
import sqlite3

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from model_api.app import create_app
from model_api.app_state import AppState
from model_api.clip.checkpoint import load_checkpoint, save_checkpoint, weights_sha256
from model_api.gallery import USER_KEY_OFFSET

from .conftest import API_KEY, encode, wait_ready

AUTH = {"X-API-Key": API_KEY}


def test_upload_survives_restart_until_deleted(serve, make_settings, tiny_data):
    first = serve(make_settings())
    png = encode(tiny_data.test.images[4])
    item = first.post(
        "/v1/gallery", files={"file": ("a.png", png, "image/png")}, data={"caption": "kept"}, headers=AUTH
    )
    item_id = item.json()["id"]

    second = serve(make_settings())
    assert second.get(f"/v1/gallery/{item_id}").json()["caption"] == "kept"
    assert second.get(f"/v1/gallery/{item_id}/image").content == png
    results = second.post("/v1/search/similar", json={"id": "test-4", "top_k": 100}).json()["results"]
    assert item_id in {r["id"] for r in results}
    assert second.delete(f"/v1/gallery/{item_id}", headers=AUTH).status_code == 204

    third = serve(make_settings())
    assert third.get(f"/v1/gallery/{item_id}").status_code == 404
    assert third.get("/ready").json()["gallery_size"] == len(tiny_data.test)


def test_restart_loads_cached_dataset_embeddings(serve, make_settings, tmp_path):
    serve(make_settings())
    (cache,) = (tmp_path / "store" / "embeddings").glob("dataset-*.npy")
    planted = np.eye(1, 16, 3, dtype=np.float32).repeat(np.load(cache).shape[0], axis=0)
    np.save(cache, planted)
    client = serve(make_settings())
    result = client.post("/v1/search/similar", json={"id": "test-0", "top_k": 1}).json()["results"][0]
    assert result["score"] == pytest.approx(1)  # the planted vectors, so they were loaded, not recomputed


def test_new_checkpoint_invalidates_cached_embeddings(serve, make_settings, tiny_checkpoint, tmp_path, tiny_data):
    old = serve(make_settings())
    png = encode(tiny_data.test.images[1])
    form = {"caption": "a cat on a mat"}
    item_id = old.post("/v1/gallery", files={"file": ("a.png", png)}, data=form, headers=AUTH).json()["id"]
    old_vector = old.app.state.app_state.gallery.vector(item_id)

    changed = tmp_path / "changed"
    shutil.copytree(tiny_checkpoint, changed)
    model, config = load_checkpoint(changed)
    with torch.no_grad():
        model.image_projection.weight.mul_(-1)  # a different model, embeddings flip
    save_checkpoint(model, changed, {key: value for key, value in config.items() if key != "model"})
    assert weights_sha256(changed) != weights_sha256(tiny_checkpoint)

    new = serve(make_settings(checkpoint=changed))
    caches = sorted(path.name for path in (tmp_path / "store" / "embeddings").glob("dataset-*.npy"))
    assert len(caches) == 2 and any(weights_sha256(changed)[:16] in name for name in caches)
    state = new.app.state.app_state
    expected = state.model.image_vectors(tiny_data.test.images[:1])[0]
    np.testing.assert_allclose(state.gallery.vector("test-0"), expected, atol=1e-5)
    new_vector = state.gallery.vector(item_id)  # the upload was re-embedded from its stored image
    np.testing.assert_allclose(new_vector, state.model.image_vectors(tiny_data.test.images[1:2])[0], atol=1e-5)
    assert not np.allclose(new_vector, old_vector, atol=1e-3)
    key = USER_KEY_OFFSET + int(item_id.removeprefix("user-"))  # and its caption vector blends the new one
    expected = state.model.caption_vectors(new_vector[None], ["a cat on a mat"])[0]
    np.testing.assert_allclose(state.gallery.captions.vector(key), expected, atol=1e-5)


def test_shutdown_during_the_first_encoding_stops_it_and_caches_nothing(make_settings, tmp_path):
    state = AppState(make_settings())
    state.stopping.set()  # what the lifespan does at shutdown
    state.load()
    assert state.model is not None and state.gallery is None and state.error is None
    assert not list((tmp_path / "store" / "embeddings").glob("dataset-*.npy"))
    later = AppState(make_settings())  # the next start encodes and caches as usual
    later.load()
    assert later.gallery is not None and len(later.gallery) == later.gallery.dataset_size > 0
    assert len(list((tmp_path / "store" / "embeddings").glob("dataset-*.npy"))) == 1
    later.close()


def test_the_first_encoding_logs_its_progress_per_batch(make_settings, monkeypatch, caplog, tiny_data):
    monkeypatch.setattr("model_api.gallery.ENCODE_BATCH", 20)
    caplog.set_level(logging.INFO, logger="model_api.gallery")
    state = AppState(make_settings())
    state.load()
    state.close()
    total = len(tiny_data.test)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("encoded ")]
    assert progress == [f"encoded {n} of {total} dataset images" for n in (20, 40, total)]


def sqlite(tmp_path):
    return sqlite3.connect(tmp_path / "store" / "gallery.sqlite3")


def test_captions_of_a_store_written_before_they_counted_are_embedded_once(serve, make_settings, tmp_path, caplog):
    png = encode(torch.from_numpy(np.random.default_rng(5).integers(0, 256, (3, 32, 32), dtype=np.uint8)))
    form = {"caption": "my hand drawn red car"}
    with TestClient(create_app(make_settings())) as first:
        wait_ready(first)
        item_id = first.post("/v1/gallery", files={"file": ("a.png", png)}, data=form, headers=AUTH).json()["id"]
        caption_id = first.app.state.app_state.model.caption_vectors_id
    with sqlite(tmp_path) as db:  # what older code left: the image vector alone
        db.execute("DELETE FROM vectors WHERE vectors_id = ?", (caption_id,))

    caplog.set_level(logging.INFO, logger="model_api.gallery")
    second = serve(make_settings())
    results = second.post("/v1/search/text", json={"query": "my hand drawn red car", "top_k": 1}).json()["results"]
    assert [r["id"] for r in results] == [item_id]
    assert sum("embedding the captions of 1 uploads" in r.getMessage() for r in caplog.records) == 1
    serve(make_settings())  # stored now: a third start embeds nothing
    assert sum("embedding the captions" in r.getMessage() for r in caplog.records) == 1
