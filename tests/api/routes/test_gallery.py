from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from model_api.clip.preprocess import tensor_to_image

from ..conftest import API_KEY, encode

AUTH = {"X-API-Key": API_KEY}


def add(client, png: bytes, headers=AUTH, **form):
    return client.post("/v1/gallery", files={"file": ("mine.png", png, "image/png")}, data=form, headers=headers)


def test_lists_dataset_items_in_pages(client, tiny_data):
    page = client.get("/v1/gallery", params={"offset": 3, "limit": 2}).json()
    assert page["total"] == len(tiny_data.test)
    assert [item["id"] for item in page["items"]] == ["test-3", "test-4"]
    assert page["items"][0]["source"] == "dataset"
    assert page["items"][0]["label"] == tiny_data.classes[int(tiny_data.test.labels[3])]


@pytest.mark.parametrize("kind", ["image", "thumbnail"])
def test_a_dataset_items_image_and_thumbnail_are_its_cacheable_32x32_png(client, tiny_data, kind):
    item = client.get("/v1/gallery/test-5").json()
    assert item[f"{kind}_url"] == f"/v1/gallery/test-5/{kind}"
    response = client.get(item[f"{kind}_url"])
    assert response.headers["content-type"] == "image/png"
    assert "max-age" in response.headers["cache-control"]
    assert response.content == encode(tiny_data.test.images[5])


def test_an_added_photo_is_kept_upright_at_up_to_1024_px_with_a_thumbnail(client, tiny_data):
    # test-9 in the middle of a 1200x1600 portrait (its centre square, which the model reads), as
    # a camera held sideways writes it: the pixels rotated, EXIF saying so.
    portrait = Image.new("RGB", (1200, 1600), (128, 128, 128))
    portrait.paste(tensor_to_image(tiny_data.test.images[9]).resize((1200, 1200), Image.Resampling.NEAREST), (0, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to show
    sideways = portrait.rotate(90, expand=True)
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=95, exif=exif)
    files = {"file": ("camera.jpg", buffer.getvalue(), "image/jpeg")}
    item = client.post("/v1/gallery", files=files, headers=AUTH).json()
    try:
        photo = client.get(item["image_url"])
        thumbnail = client.get(item["thumbnail_url"])
        assert photo.headers["content-type"] == thumbnail.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(photo.content)).size == (768, 1024)
        assert Image.open(io.BytesIO(thumbnail.content)).size == (192, 256)
        listed = client.get("/v1/gallery", params={"source": "user"}).json()["items"][0]
        assert listed["thumbnail_url"] == f"/v1/gallery/{item['id']}/thumbnail"
        # Upright: the photo's centre square is test-9 again (up to JPEG and resampling).
        square = Image.open(io.BytesIO(photo.content)).crop((0, 128, 768, 896)).resize((32, 32))
        difference = np.abs(np.asarray(square, dtype=int) - tiny_data.test.images[9].permute(1, 2, 0).int().numpy())
        assert difference.mean() < 12
    finally:
        client.delete(f"/v1/gallery/{item['id']}", headers=AUTH)


def test_add_search_and_delete_an_upload(client, tiny_data):
    png = encode(tiny_data.test.images[9])
    created = add(client, png, caption="my photo", label="cat")
    assert created.status_code == 201
    item = created.json()
    assert item["id"].startswith("user-") and item["caption"] == "my photo" and item["label"] == "cat"
    assert client.get(f"/v1/gallery/{item['id']}").json() == item
    assert client.get(item["image_url"]).headers["content-type"] == "image/png"
    user_page = client.get("/v1/gallery", params={"source": "user"}).json()
    assert [i["id"] for i in user_page["items"]] == [item["id"]]

    # The upload is test-9's exact pixels, so it is test-9's nearest neighbour (up to bf16 rounding).
    similar = client.post("/v1/search/similar", json={"id": "test-9", "top_k": 100}).json()["results"]
    mine = next(r for r in similar if r["id"] == item["id"])
    assert mine["score"] == pytest.approx(1, abs=1e-2) and mine["label"] == "cat"

    assert client.delete(f"/v1/gallery/{item['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/gallery/{item['id']}").status_code == 404
    assert client.delete(f"/v1/gallery/{item['id']}", headers=AUTH).status_code == 404
    similar = client.post("/v1/search/similar", json={"id": "test-9", "top_k": 100}).json()["results"]
    assert item["id"] not in {r["id"] for r in similar}


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": "wrong"}, 403)])
def test_writes_need_the_api_key(client, test_png, headers, status):
    assert add(client, test_png, headers=headers).status_code == status
    assert client.delete("/v1/gallery/user-1", headers=headers).status_code == status


@pytest.mark.parametrize("api_key", [None, ""])
def test_writes_are_refused_when_no_key_is_configured(serve, make_settings, test_png, api_key):
    client = serve(make_settings(api_key=api_key))
    response = add(client, test_png, headers={"X-API-Key": "anything"})
    assert response.status_code == 403
    assert "CLIP_API_KEY" in response.json()["detail"]


def test_dataset_items_cannot_be_deleted(client):
    response = client.delete("/v1/gallery/test-1", headers=AUTH)
    assert response.status_code == 403
    assert "dataset" in response.json()["detail"]


@pytest.mark.parametrize(
    ("form", "status"),
    [({"caption": "x" * 501}, 422), ({"label": "   "}, 422), ({"caption": "ça va? 🐱 \x00"}, 201)],
)
def test_caption_and_label_are_validated(client, test_png, form, status):
    response = add(client, test_png, **form)
    assert response.status_code == status, response.text
    if status == 201:
        assert client.delete(f"/v1/gallery/{response.json()['id']}", headers=AUTH).status_code == 204


def test_bad_upload_to_the_gallery_is_a_client_error(client):
    assert add(client, b"\x89PNG\r\n\x1a\nbroken").status_code == 400


@pytest.mark.parametrize("path", ["/v1/gallery/test-99999", "/v1/gallery/user-77/image", "/v1/gallery/x%00y"])
def test_unknown_items_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "no gallery item" in response.json()["detail"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"source": "other"}])
def test_bad_paging_is_a_422(client, params):
    assert client.get("/v1/gallery", params=params).status_code == 422


def noise_png(seed: int) -> bytes:
    """An image like no gallery image: only its caption can tie it to words."""
    return encode(torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, 32, 32), dtype=np.uint8)))


def rank_of(item_id: str, results: list[dict]) -> int | None:
    return next((rank for rank, result in enumerate(results, 1) if result["id"] == item_id), None)


def test_listing_puts_uploads_first_newest_first(client, tiny_data):
    older, newer = (add(client, noise_png(seed)).json()["id"] for seed in (1, 2))
    try:
        first = client.get("/v1/gallery", params={"offset": 0, "limit": 3}).json()
        assert first["total"] == len(tiny_data.test) + 2
        assert [item["id"] for item in first["items"]] == [newer, older, "test-0"]
        second = client.get("/v1/gallery", params={"offset": 3, "limit": 2}).json()
        assert [item["id"] for item in second["items"]] == ["test-1", "test-2"]  # no item skipped or repeated
        uploads = client.get("/v1/gallery", params={"source": "user"}).json()
        assert [item["id"] for item in uploads["items"]] == [newer, older]
        dataset = client.get("/v1/gallery", params={"source": "dataset", "limit": 1}).json()
        assert [item["id"] for item in dataset["items"]] == ["test-0"]
    finally:
        for item_id in (older, newer):
            client.delete(f"/v1/gallery/{item_id}", headers=AUTH)


def test_a_caption_makes_an_upload_findable_by_its_words(client):
    png = noise_png(3)
    captioned = add(client, png, caption="my hand drawn red car").json()
    uncaptioned = add(client, png).json()
    try:
        body = {"query": "my hand drawn red car", "top_k": 100}
        results = client.post("/v1/search/text", json=body).json()["results"]
        assert rank_of(captioned["id"], results) == 1
        assert results[0]["caption"] == "my hand drawn red car"
        # The same pixels without the caption rank where the image alone puts them: lower.
        assert (rank_of(uncaptioned["id"], results) or 101) > 1
    finally:
        for item in (captioned, uncaptioned):
            client.delete(f"/v1/gallery/{item['id']}", headers=AUTH)


def test_a_caption_leaves_image_search_and_more_like_this_to_the_pixels(client, tiny_data):
    png = encode(tiny_data.test.images[9])
    item = add(client, png, caption="my hand drawn red car").json()
    try:
        files = {"file": ("q.png", png, "image/png")}
        by_image = client.post("/v1/search/image", files=files, data={"top_k": 3}).json()["results"]
        assert {r["id"]: r["score"] for r in by_image}[item["id"]] == pytest.approx(1, abs=1e-2)
        similar = client.post("/v1/search/similar", json={"id": "test-9", "top_k": 3}).json()["results"]
        assert {r["id"]: r["score"] for r in similar}[item["id"]] == pytest.approx(1, abs=1e-2)
    finally:
        client.delete(f"/v1/gallery/{item['id']}", headers=AUTH)


def test_a_deleted_captioned_upload_is_not_found_by_its_words(client):
    item = add(client, noise_png(4), caption="a zebra made of stripes").json()
    assert client.delete(f"/v1/gallery/{item['id']}", headers=AUTH).status_code == 204
    results = client.post("/v1/search/text", json={"query": "a zebra made of stripes", "top_k": 100}).json()
    assert item["id"] not in {r["id"] for r in results["results"]}


def test_near_duplicates_pair_an_upload_with_the_dataset_image_it_copies(client, tiny_data):
    item = add(client, encode(tiny_data.test.images[9])).json()
    try:
        response = client.get("/v1/gallery/duplicates", params={"min_similarity": 0.5, "limit": 3})
        pairs = response.json()["pairs"]
        assert len(pairs) == 3 and pairs[0]["similarity"] == pytest.approx(1, abs=1e-4)
        assert {pairs[0]["first"]["id"], pairs[0]["second"]["id"]} == {"test-9", item["id"]}
        assert pairs[0]["first"]["thumbnail_url"].endswith("/thumbnail")
        similarities = [pair["similarity"] for pair in pairs]
        assert similarities == sorted(similarities, reverse=True) and min(similarities) >= 0.5
        above_one = client.get("/v1/gallery/duplicates", params={"min_similarity": 1.0, "limit": 3}).json()
        assert all(pair["similarity"] >= 1.0 for pair in above_one["pairs"])
    finally:
        client.delete(f"/v1/gallery/{item['id']}", headers=AUTH)


@pytest.mark.parametrize("params", [{"min_similarity": 1.5}, {"limit": 0}, {"limit": 501}])
def test_bad_duplicate_queries_are_a_422(client, params):
    assert client.get("/v1/gallery/duplicates", params=params).status_code == 422
