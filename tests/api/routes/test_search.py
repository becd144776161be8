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


def similarity_to(client, results, text):
    """Mean cosine of the results' stored vectors to the served embedding of `text`."""
    state = client.app.state.app_state
    words = state.model.text_vector(text)
    return sum(float(state.gallery.vector(r["id"]) @ words) for r in results) / len(results)


def test_a_negative_text_moves_the_results_away_from_it(client):
    plain = search_text(client, top_k=10).json()["results"]
    negated = search_text(client, top_k=10, negative="a photo of a dog").json()["results"]
    assert similarity_to(client, negated, "a photo of a dog") < similarity_to(client, plain, "a photo of a dog")


def test_an_image_query_refined_by_text_ranks_by_the_image_and_the_words_alike(client, tiny_data):
    state = client.app.state.app_state
    image = tiny_data.test.images[0]
    files = {"file": ("q.png", encode(image), "image/png")}
    refined = client.post("/v1/search/image", files=files, data={"top_k": "5", "text": "a truck"}).json()["results"]
    both = state.model.image_vectors(image[None])[0] + state.model.text_vector("a truck")
    ids = [f"test-{n}" for n in range(len(tiny_data.test))]
    expected = sorted(ids, key=lambda item: -float(state.gallery.vector(item) @ both))[:5]
    assert [r["id"] for r in refined] == expected
    plain = client.post("/v1/search/image", files=files, data={"top_k": "5"}).json()["results"]
    assert [r["score"] for r in refined] != [r["score"] for r in plain]


def test_more_like_this_takes_a_refinement_and_a_negative(client):
    body = {"id": "test-0", "top_k": 10}
    plain = client.post("/v1/search/similar", json=body).json()["results"]
    refined = client.post("/v1/search/similar", json={**body, "text": "a ship", "negative": "a cat"}).json()["results"]
    assert similarity_to(client, refined, "a ship") > similarity_to(client, plain, "a ship")


def test_a_relative_cutoff_keeps_results_near_the_best(client):
    everything = search_text(client, top_k=50).json()["results"]
    best = everything[0]["score"]
    kept = search_text(client, top_k=50, min_relative_score=0.95).json()["results"]
    assert kept and kept[0] == everything[0] and len(kept) < len(everything)
    assert all(r["score"] >= best - 0.05 * abs(best) - 1e-6 for r in kept)
    assert kept == [r for r in everything if r["score"] >= best - 0.05 * abs(best) - 1e-6][: len(kept)]


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_a_relative_cutoff_outside_0_to_1_is_422(client, fraction):
    assert search_text(client, min_relative_score=fraction).status_code == 422
