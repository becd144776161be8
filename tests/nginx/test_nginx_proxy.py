"""Nginx in front of the launched stack: routing, WebSocket upgrade, body limit, rate limit."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from websockets.sync.client import connect

from tests.stack import MAX_UPLOAD_BYTES, RATE_BURST


def test_own_health_location(web_stack):
    response = web_stack.get("/nginx-health")
    assert response.status_code == 200
    assert response.text == "ok\n"


def test_api_prefix_is_stripped(web_stack):
    assert web_stack.get("/api/health").json() == {"status": "ok"}
    assert web_stack.get("/api/ready").json()["status"] == "ready"


def test_ui_is_served_at_the_root(web_stack):
    assert web_stack.get("/_stcore/health").text == "ok"
    assert "<title>Streamlit</title>" in web_stack.get("/").text


def test_metrics_stay_off_the_public_proxy(web_stack):
    # Every spelling Nginx normalises to /api/metrics, and anything below it.
    for path in ("/api/metrics", "/api/metrics/", "/api//metrics", "/api/%6Detrics", "/api/metrics?format=text"):
        response = web_stack.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not Found"}
    # The scraper on the internal network asks the API itself.
    direct = httpx.get(web_stack.api_url + "/metrics", timeout=30)
    assert direct.status_code == 200
    assert "clip_api_requests_total" in direct.text


def test_ui_pages_tell_streamlit_it_is_served_from_the_root(web_stack):
    # Without this a deep link's client probes /classify/_stcore/... first (see the template).
    for path in ("/", "/classify", "/search"):
        page = web_stack.get(path)
        assert page.text.count("window.__streamlit = {BACKEND_BASE_URL:") == 1, path
    # The same HTML still reaches the browser compressed.
    assert web_stack.get("/classify", headers={"Accept-Encoding": "gzip"}).headers["content-encoding"] == "gzip"


def test_json_is_gzipped(web_stack):
    response = web_stack.get("/api/v1/gallery", params={"limit": 50}, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"


def test_websocket_upgrade_reaches_streamlit(web_stack):
    url = web_stack.url.replace("http://", "ws://") + "/_stcore/stream"
    # Streamlit's browser client asks for this subprotocol; the server insists on it.
    with connect(url, subprotocols=["streamlit"], open_timeout=10) as socket:
        assert socket.response.status_code == 101


def test_oversized_upload_gets_413_from_nginx(web_stack):
    body = b"\0" * (MAX_UPLOAD_BYTES + 1)
    response = httpx.post(web_stack.url + "/api/v1/classify", files={"file": ("big.png", body)}, timeout=30)
    assert response.status_code == 413
    assert response.headers["server"].startswith("nginx")
    assert "larger than" in response.json()["detail"]


def test_burst_gets_429_then_recovers(web_stack):
    # Threads, not asyncio: the requests must be in flight together, and this test may run in a
    # process where another library (Playwright's sync API) already owns the event loop.
    with httpx.Client(base_url=web_stack.url, timeout=30) as http, ThreadPoolExecutor(3 * RATE_BURST) as pool:
        responses = list(pool.map(lambda _: http.get("/api/health"), range(3 * RATE_BURST)))
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) >= RATE_BURST
    assert statuses.count(429) >= RATE_BURST // 2
    limited = next(response for response in responses if response.status_code == 429)
    assert limited.json()["detail"].startswith("too many requests")
    # The bucket drains at the configured rate; the tests after this one must not be throttled.
    time.sleep(3)
    assert web_stack.get("/api/health").status_code == 200


def test_image_urls_from_a_search_through_the_proxy_work_through_the_proxy(web_stack):
    results = httpx.post(f"{web_stack.url}/api/v1/search/text", json={"query": "a cat", "top_k": 3}).json()["results"]
    assert results and all(result["image_url"].startswith("/api/v1/gallery/") for result in results)
    image = web_stack.get(results[0]["image_url"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_image_urls_from_the_api_itself_stay_at_its_root(web_stack):
    results = httpx.post(f"{web_stack.api_url}/v1/search/text", json={"query": "a cat", "top_k": 1}).json()["results"]
    assert results[0]["image_url"].startswith("/v1/gallery/")
    assert httpx.get(web_stack.api_url + results[0]["image_url"]).headers["content-type"] == "image/png"
