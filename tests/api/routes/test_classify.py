from __future__ import annotations

import io
import shutil

import pytest
import torch
from PIL import Image

from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.inference import embed_images, embed_labels, embed_six_views, label_probabilities
from model_api.clip.ood import OOD_FILE

from ..conftest import API_KEY, MAX_UPLOAD_BYTES, encode


def classify(client, data: bytes, content_type: str = "image/png", **form):
    return client.post("/v1/classify", files={"file": ("upload.png", data, content_type)}, data=form)


def assert_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert fragment in response.json()["detail"]


def test_classifies_into_the_ten_classes_by_default(client, test_png, tiny_data):
    predictions = classify(client, test_png).json()["predictions"]
    assert sorted(p["label"] for p in predictions) == sorted(tiny_data.classes)
    assert sum(p["score"] for p in predictions) == pytest.approx(1, abs=1e-4)
    assert [p["score"] for p in predictions] == sorted((p["score"] for p in predictions), reverse=True)


def test_upload_matches_the_library_on_the_same_image(client, tiny_data, test_png):
    """Serving preprocessing is training preprocessing: a PNG of a test image scores as the tensor."""
    by_upload = classify(client, test_png).json()["predictions"]
    by_id = client.post("/v1/classify/gallery", json={"id": "test-0"}).json()["predictions"]
    assert [p["label"] for p in by_upload] == [p["label"] for p in by_id]
    assert [p["score"] for p in by_upload] == pytest.approx([p["score"] for p in by_id], abs=1e-5)


TOO_FEW_LABELS = "Zero-shot classification chooses between labels: give at least two"


def test_custom_labels_repeated_or_comma_separated(client, test_png):
    response = classify(client, test_png, labels=["cat, dog", "truck", "dog"], top_k=2)
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    assert {p["label"] for p in predictions} <= {"cat", "dog", "truck"}


def test_blank_and_duplicate_labels_are_dropped(client, test_png):
    predictions = classify(client, test_png, labels=["cat, dog,, ", " cat", "dog"]).json()["predictions"]
    assert sorted(p["label"] for p in predictions) == ["cat", "dog"]


def test_top_k_beyond_the_labels_returns_each_label_once(client, test_png):
    predictions = classify(client, test_png, labels="sun, moon", top_k=10).json()["predictions"]
    assert sorted(p["label"] for p in predictions) == ["moon", "sun"]


@pytest.mark.parametrize("labels", ["just one", "cat, cat, ", " , "])
def test_fewer_than_two_distinct_labels_is_a_422(client, test_png, labels):
    assert_error(classify(client, test_png, labels=labels), 422, TOO_FEW_LABELS)
    body = {"id": "test-0", "labels": [labels]}
    assert_error(client.post("/v1/classify/gallery", json=body), 422, TOO_FEW_LABELS)


@pytest.mark.parametrize(
    ("format", "mode", "size"),
    [
        ("JPEG", "RGB", (4000, 3000)),
        ("WEBP", "RGBA", (50, 40)),
        ("GIF", "P", (32, 32)),
        ("BMP", "L", (64, 64)),
        ("PNG", "LA", (31, 33)),
        ("PNG", "I;16", (32, 32)),
    ],
)
def test_accepts_every_promised_format_size_and_mode(client, tiny_data, format, mode, size):
    data = encode(tiny_data.test.images[3], format, size, mode)
    assert classify(client, data, f"image/{format.lower()}").status_code == 200


def test_classifies_a_batch_in_order(client, tiny_data):
    files = [("files", (f"{i}.png", encode(tiny_data.test.images[i]), "image/png")) for i in range(3)]
    results = client.post("/v1/classify/batch", files=files, data={"top_k": 1}).json()["results"]
    assert [r["filename"] for r in results] == ["0.png", "1.png", "2.png"]
    assert all(len(r["predictions"]) == 1 for r in results)


def bomb_png() -> bytes:
    """A 10,000 x 10,000 image (100 MP) that compresses to a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "content_type", "status", "fragment"),
    [
        (b"", "image/png", 400, "empty"),
        (b"hello, not an image", "application/octet-stream", 400, "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png", 400, "not a readable image"),
        (b"hello", "text/plain", 415, "not an image"),
        (b"x" * (MAX_UPLOAD_BYTES + 1), "image/png", 413, "upload limit"),
    ],
    ids=["empty", "not-an-image", "corrupt", "text-content-type", "too-large"],
)
def test_bad_uploads_are_clear_client_errors(client, data, content_type, status, fragment):
    assert_error(classify(client, data, content_type), status, fragment)


def test_truncated_image_is_a_400(client, tiny_data):
    jpeg = encode(tiny_data.test.images[0], "JPEG", (400, 400))
    assert_error(classify(client, jpeg[: len(jpeg) // 2], "image/jpeg"), 400, "not a readable image")


def test_decompression_bomb_is_refused(client):
    assert_error(classify(client, bomb_png()), 400, "too large")


def test_unsupported_image_format_is_a_415(client, tiny_data):
    assert_error(classify(client, encode(tiny_data.test.images[0], "TIFF"), "image/tiff"), 415, "TIFF")


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": 101}, "top_k"),
        ({"labels": ",".join(f"l{i}" for i in range(51))}, "at most 50"),
        ({"labels": "short, " + "x" * 101}, "at most 100 characters"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(client, test_png, form, fragment):
    assert_error(classify(client, test_png, **form), 422, fragment)


def test_missing_file_is_a_422(client):
    assert_error(client.post("/v1/classify", data={"top_k": 1}), 422, "file")


def test_batch_names_the_bad_file(client, test_png):
    files = [("files", ("good.png", test_png, "image/png")), ("files", ("bad.png", b"junk", "image/png"))]
    assert_error(client.post("/v1/classify/batch", files=files), 400, "bad.png")


def test_batch_over_the_file_limit_is_a_422(client, test_png):
    files = [("files", (f"{i}.png", test_png, "image/png")) for i in range(5)]
    assert_error(client.post("/v1/classify/batch", files=files), 422, "at most 4 files")


@pytest.mark.parametrize("item_id", ["test-99999", "user-12345", "nonsense", "test-" + "9" * 30])
def test_classify_unknown_gallery_id_is_a_404(client, item_id):
    assert_error(client.post("/v1/classify/gallery", json={"id": item_id}), 404, "no gallery item")


def test_gallery_classification_uses_custom_labels(client):
    body = {"id": "test-2", "labels": ["red thing", "blue thing"], "top_k": 1}
    predictions = client.post("/v1/classify/gallery", json=body).json()["predictions"]
    assert len(predictions) == 1 and predictions[0]["label"] in {"red thing", "blue thing"}


def test_label_embeddings_are_cached(client, test_png, monkeypatch):
    """A second request with the same labels encodes no text."""
    classify(client, test_png, labels="sun, moon")
    calls = []
    monkeypatch.setattr("model_api.served_model.embed_labels", lambda *args: calls.append(args) or torch.zeros(0))
    assert classify(client, test_png, labels="sun, moon").status_code == 200
    assert calls == []


def checkerboard_png() -> bytes:
    """Black and white 4-pixel squares: drawn, nothing like a CIFAR-10 photo."""
    squares = (torch.arange(32)[:, None] // 4 + torch.arange(32)[None, :] // 4) % 2 * 255
    return encode(squares.to(torch.uint8).expand(3, 32, 32))


def test_a_drawn_image_is_flagged_out_of_distribution(client):
    body = classify(client, checkerboard_png()).json()
    assert body["out_of_distribution"] is True
    assert body["ood"]["unusual_image"] is True
    assert body["ood"]["distance"] > body["ood"]["distance_threshold"]
    assert len(body["predictions"]) == 10  # the ranking is still given, as a guess


def test_every_classification_says_whether_it_is_a_guess(client, test_png, tiny_data):
    by_upload = classify(client, test_png).json()
    by_id = client.post("/v1/classify/gallery", json={"id": "test-0"}).json()
    for body in (by_upload, by_id):
        ood = body["ood"]
        assert body["out_of_distribution"] == (ood["unusual_image"] or ood["no_label_fits"])
        assert ood["unusual_image"] == (ood["distance"] > ood["distance_threshold"])
        assert ood["no_label_fits"] == (ood["label_similarity"] < ood["label_similarity_threshold"])
    assert by_upload["ood"]["distance"] == pytest.approx(by_id["ood"]["distance"], abs=1e-3)
    files = [("files", ("a.png", test_png, "image/png")), ("files", ("b.png", checkerboard_png(), "image/png"))]
    results = client.post("/v1/classify/batch", files=files).json()["results"]
    assert [r["out_of_distribution"] for r in results][1] is True
    assert results[0]["ood"]["distance"] == pytest.approx(by_upload["ood"]["distance"], abs=1e-3)


def test_typed_labels_move_the_label_score_not_the_image_score(client, test_png):
    default = classify(client, test_png).json()["ood"]
    typed = classify(client, test_png, labels="sun, moon").json()["ood"]
    assert typed["distance"] == pytest.approx(default["distance"], abs=1e-4)
    assert typed["label_similarity"] != pytest.approx(default["label_similarity"], abs=1e-4)


def test_without_a_calibration_nothing_is_flagged(make_settings, serve, tiny_checkpoint, tmp_path, test_png):
    checkpoint = tmp_path / "uncalibrated"
    shutil.copytree(tiny_checkpoint, checkpoint, ignore=shutil.ignore_patterns(OOD_FILE))
    uncalibrated = serve(make_settings(checkpoint=checkpoint, data_dir=None))
    body = classify(uncalibrated, checkerboard_png()).json()
    assert body["out_of_distribution"] is None and body["ood"] is None


def test_an_upload_in_the_gallery_classifies_as_the_same_file_uploaded(client, tiny_data):
    """Its stored model input, not only its vector, is at hand for the views an unsure image takes."""
    png = encode(tiny_data.test.images[3])
    headers = {"X-API-Key": API_KEY}
    item = client.post("/v1/gallery", files={"file": ("mine.png", png, "image/png")}, headers=headers).json()
    try:
        by_id = client.post("/v1/classify/gallery", json={"id": item["id"]}).json()["predictions"]
        by_upload = classify(client, png).json()["predictions"]
        assert [p["label"] for p in by_id] == [p["label"] for p in by_upload]
        assert [p["score"] for p in by_id] == pytest.approx([p["score"] for p in by_upload], abs=1e-5)
    finally:
        client.delete(f"/v1/gallery/{item['id']}", headers=headers)


def test_the_unsure_threshold_decides_which_uploads_take_the_shifted_views(
    make_settings, serve, tiny_checkpoint, tiny_data
):
    """At 0 an upload is scored on its image and mirror, at 1 on all six views, as the library does."""
    model, _ = load_checkpoint(tiny_checkpoint)
    labels = embed_labels(model, list(tiny_data.classes))

    def probabilities(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flip_averaged = embed_images(model, images)
        six_views = embed_six_views(model, images, flip_averaged)
        return label_probabilities(model, flip_averaged, labels), label_probabilities(model, six_views, labels)

    two, six = probabilities(tiny_data.test.images[:16])
    image = tiny_data.test.images[(two - six).abs().amax(dim=1).argmax()]  # the one whose views differ most
    two, six = probabilities(image[None])  # as the service computes it: alone
    assert (two - six).abs().max() > 1e-4
    for below, want in ((0.0, two[0]), (1.0, six[0])):
        predictions = classify(serve(make_settings(unsure_below=below)), encode(image)).json()["predictions"]
        got = {p["label"]: p["score"] for p in predictions}
        assert [got[label] for label in tiny_data.classes] == pytest.approx(want.tolist(), abs=2e-5)
