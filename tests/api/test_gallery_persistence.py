"""The gallery survives restarts, and its cached embeddings follow the checkpoint."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from model_api.app_state import AppState
from model_api.clip.checkpoint import load_checkpoint, save_checkpoint, weights_sha256

from .conftest import API_KEY, encode

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
    item_id = old.post("/v1/gallery", files={"file": ("a.png", png, "image/png")}, headers=AUTH).json()["id"]
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
