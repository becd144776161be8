"""Every URL the API returns works from where the client called it: directly, or through the
proxy's /api/ prefix (`X-Forwarded-Prefix`)."""

from __future__ import annotations

import pytest

PROXIED = {"X-Forwarded-Prefix": "/api"}


def test_direct_calls_get_root_paths(client):
    result = client.post("/v1/search/text", json={"query": "a cat", "top_k": 1}).json()["results"][0]
    assert result["image_url"] == f"/v1/gallery/{result['id']}/image"
    assert client.get(result["image_url"]).headers["content-type"] == "image/png"


def test_proxied_calls_get_the_prefix_in_every_image_url(client):
    searched = client.post("/v1/search/text", json={"query": "a cat", "top_k": 1}, headers=PROXIED).json()
    similar = client.post("/v1/search/similar", json={"id": "test-0", "top_k": 1}, headers=PROXIED).json()
    page = client.get("/v1/gallery", params={"limit": 1}, headers=PROXIED).json()
    item = client.get("/v1/gallery/test-3", headers=PROXIED).json()
    urls = [searched["results"][0], similar["results"][0], page["items"][0], item]
    assert all(entry["image_url"] == f"/api/v1/gallery/{entry['id']}/image" for entry in urls)


def test_the_docs_point_at_the_spec_behind_the_prefix(client):
    assert "'/api/openapi.json'" in client.get("/docs", headers=PROXIED).text
    assert client.get("/openapi.json", headers=PROXIED).json()["servers"] == [{"url": "/api"}]
    assert "'/openapi.json'" in client.get("/docs").text


@pytest.mark.parametrize("prefix", ["//evil.example", "https://evil.example", "/a b", "api"])
def test_a_prefix_that_is_not_a_plain_path_is_ignored(client, prefix):
    item = client.get("/v1/gallery/test-3", headers={"X-Forwarded-Prefix": prefix}).json()
    assert item["image_url"] == "/v1/gallery/test-3/image"
