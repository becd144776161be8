from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from model_api.app import create_app
from model_api.clip.checkpoint import weights_sha256
from model_api.clip.data import DataUnavailableError

from ..conftest import encode


def test_health_answers(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_reports_gallery_and_dataset(client, tiny_data):
    body = client.get("/ready").json()
    assert body["status"] == "ready"
    assert body["gallery_size"] == len(tiny_data.test)
    assert body["dataset"].startswith(f"loaded {len(tiny_data.test)} test images")


def test_info_describes_model_and_gallery(client, tiny_checkpoint, tiny_data):
    info = client.get("/v1/info").json()
    assert info["checkpoint_sha256"] == weights_sha256(tiny_checkpoint)
    assert info["classes"] == list(tiny_data.classes)
    assert info["embedding_dim"] == 16
    assert info["gallery_size"] == len(tiny_data.test)
    assert info["dataset_loaded"] is True
    assert info["architecture"]["embed_dim"] == 16
    assert "val_accuracy" in info["metrics"]
    assert "test" not in info["metrics"]  # no TEST report beside the tiny checkpoint
    assert info["search"] == "exact"


def test_info_says_whether_gallery_writes_are_enabled(client, serve, make_settings):
    assert client.get("/v1/info").json()["writes_enabled"] is True
    for api_key in (None, ""):  # a blank key is no key: nothing could match it
        assert serve(make_settings(api_key=api_key)).get("/v1/info").json()["writes_enabled"] is False


def test_info_image_types_are_what_the_upload_check_accepts(client, tiny_data):
    image_types = client.get("/v1/info").json()["image_types"]
    assert image_types == ["bmp", "gif", "jpeg", "jpg", "png", "webp"]
    saved_as = Image.registered_extensions()  # ".jpg" -> "JPEG": the format PIL writes for that name
    for extension in [*image_types, "tiff"]:
        data = encode(tiny_data.test.images[0], saved_as[f".{extension}"])
        response = client.post("/v1/classify", files={"file": (f"x.{extension}", data, "image/*")})
        assert response.status_code == (200 if extension in image_types else 415), extension


def test_info_serves_the_test_report_kept_with_the_checkpoint(serve, make_settings, tiny_checkpoint, tmp_path):
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    report = {"accuracy": 0.91, "checkpoint_sha256": weights_sha256(checkpoint)}
    (checkpoint / "test_report.json").write_text(json.dumps(report))
    client = serve(make_settings(checkpoint=checkpoint, data_dir=None))
    assert client.get("/v1/info").json()["metrics"]["test"] == report


def test_metrics_count_requests_by_route_template(client):
    client.get("/v1/gallery/test-1/image")
    text = client.get("/metrics").text
    assert 'clip_api_requests_total{method="GET",route="/v1/gallery/{item_id}/{kind}",status="200"}' in text
    assert "clip_api_gallery_items" in text


def test_ready_while_loading_is_the_same_503_as_every_route(make_settings):
    # Not entered, so the lifespan never starts loading: the state stays "loading the model".
    client = TestClient(create_app(make_settings(data_dir=None)))
    for response in (client.get("/ready"), client.post("/v1/search/text", json={"query": "cat"})):
        assert response.status_code == 503
        assert response.json() == {"detail": "loading the model"}
        assert response.headers["retry-after"] == "5"


def test_not_ready_while_checkpoint_is_missing(make_settings, tmp_path):
    settings = make_settings(checkpoint=tmp_path / "no-checkpoint", data_dir=None)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        for _ in range(200):
            ready = client.get("/ready")
            if "failed" in ready.json()["detail"]:
                break
        assert ready.status_code == 503
        assert "no checkpoint" in ready.json()["detail"]
        assert ready.headers["retry-after"] == "5"
        response = client.post("/v1/search/text", json={"query": "cat"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"


def test_starts_without_dataset_and_still_classifies(serve, make_settings, monkeypatch, test_png):
    def unreachable(source, cache_root):
        raise DataUnavailableError("hub unreachable")

    monkeypatch.setattr("model_api.app_state.load_cifar10", unreachable)
    client = serve(make_settings())
    ready = client.get("/ready").json()
    assert ready["gallery_size"] == 0
    assert ready["dataset"] == "unavailable: hub unreachable"  # the cause; the UI says what follows from it
    info = client.get("/v1/info").json()
    assert "unavailable" in info["dataset"] and info["dataset_loaded"] is False
    response = client.post("/v1/classify", files={"file": ("x.png", test_png, "image/png")})
    assert response.status_code == 200
    assert client.post("/v1/search/text", json={"query": "cat"}).json() == {"results": []}


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_docs_are_served(client, path):
    assert client.get(path).status_code == 200
