from __future__ import annotations

import pytest

from ..conftest import encode


def search_text(client, **body):
    return client.post("/v1/search/text", json={"query": "a photo of a cat", **body})


def test_text_search_returns_ranked_gallery_items(client, tiny_data):
    results = search_text(client, top_k=5).json()["results"]
    assert len(results) == 5
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    first = results[0]
    assert first["id"].startswith("test-")
    assert first["label"] == tiny_data.classes[int(tiny_data.test.labels[int(first["id"][5:])])]
    assert first["image_url"] == f"/v1/gallery/{first['id']}/image"
    assert all(-1 <= r["score"] <= 1 for r in results)


def test_min_score_filters_results(client):
    scores = [r["score"] for r in search_text(client, top_k=50).json()["results"]]
    threshold = scores[10]
    kept = search_text(client, top_k=50, min_score=threshold).json()["results"]
    assert len(kept) >= 11 and all(r["score"] >= threshold for r in kept)


def test_repeated_query_is_served_from_the_cache(client, monkeypatch):
    search_text(client, query="a red truck")
    monkeypatch.setattr("model_api.served_model.embed_texts", lambda *args: pytest.fail("query was re-encoded"))
    assert search_text(client, query="a red truck").status_code == 200


@pytest.mark.parametrize("query", ["猫 と 犬 🐱", "cat\x00\x07\x1b[31m dog", "\u202eevil\u200b", "tab\tand\nnewline"])
def test_unicode_and_control_characters_are_searched(client, query):
    assert search_text(client, query=query).status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 10_000}, "at most 500 characters"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 101}, "top_k"),
        ({"top_k": "many"}, "top_k"),
        ({"min_score": 2}, "min_score"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_text_queries_are_422(client, body, fragment):
    response = search_text(client, **body)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_lone_surrogate_is_a_422_not_a_500(client):
    response = client.post(
        "/v1/search/text", content=b'{"query": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_malformed_json_is_a_422(client):
    response = client.post("/v1/search/text", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "detail" in response.json()


def test_image_search_finds_the_uploaded_image(client, tiny_data):
    """Among the top: the tiny model embeds same-class synthetic images almost identically."""
    png = encode(tiny_data.test.images[7])
    results = client.post("/v1/search/image", files={"file": ("q.png", png, "image/png")}, data={"top_k": 3}).json()
    scores = {r["id"]: r["score"] for r in results["results"]}
    assert scores["test-7"] == pytest.approx(1, abs=1e-2)


def test_image_search_rejects_bad_uploads(client):
    response = client.post("/v1/search/image", files={"file": ("q.png", b"", "image/png")})
    assert response.status_code == 400


def test_similar_excludes_the_item_itself(client):
    results = client.post("/v1/search/similar", json={"id": "test-7", "top_k": 4}).json()["results"]
    assert len(results) == 4
    assert "test-7" not in {r["id"] for r in results}


@pytest.mark.parametrize("item_id", ["test-100000", "user-1", "cat", ""])
def test_similar_to_an_unknown_id_is_a_404(client, item_id):
    response = client.post("/v1/search/similar", json={"id": item_id})
    assert response.status_code == 404
    assert "no gallery item" in response.json()["detail"]
