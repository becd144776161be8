"""Each page through Streamlit's AppTest, against the real API process of the session's stack."""

import httpx
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from streamlit_ui import client
from tests.conftest import png_bytes, synthetic_image
from tests.stack import API_KEY, ROOT, free_port

APP = ROOT / "streamlit_ui" / "app.py"
VIEWS = ROOT / "streamlit_ui" / "views"


def run_page(name: str) -> AppTest:
    page = AppTest.from_file(VIEWS / f"{name}.py", default_timeout=60)
    return page.run()


def upload_png(label: int = 3) -> tuple[str, bytes, str]:
    return ("cat.png", png_bytes(synthetic_image(label, np.random.default_rng(label))), "image/png")


def texts(page: AppTest, element: str) -> str:
    return " ".join(str(item.value) for item in getattr(page, element))


def fetched_images(monkeypatch) -> list[str]:
    """The image URLs the UI asks the API for, in order (each once: the page caches them)."""
    fetched = []
    fetch = client.image
    monkeypatch.setattr(client, "image", lambda image_url: fetched.append(image_url) or fetch(image_url))
    return fetched


def from_api(item: dict) -> dict:
    """The item with an image_url no page could build from its id (the API ignores the query)."""
    return {**item, "image_url": item["image_url"] + "?from=api"}


def test_navigation_routes_to_the_model_page():
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert app.title[0].value == "CLIP on CIFAR-10"
    app.switch_page("views/search.py").run()
    assert app.title[0].value == "Search the gallery"


def test_home_shows_readiness_and_model_card():
    page = run_page("home")
    assert not page.exception
    assert "The API is ready." in texts(page, "success")
    metrics = {metric.label: metric.value for metric in page.metric}
    # Other tests add to the session's gallery: the page must show the API's own count.
    gallery_size = httpx.get(client.API_URL + "/v1/info").json()["gallery_size"]
    assert metrics["Gallery images"] == f"{gallery_size:,}"
    assert "not measured" in metrics["Test accuracy (zero-shot)"]  # the tiny checkpoint has no TEST metrics


def test_api_down_is_a_clear_message_not_a_traceback(monkeypatch):
    monkeypatch.setattr(client, "API_URL", f"http://127.0.0.1:{free_port()}")
    for name in ("home", "gallery"):
        page = run_page(name)
        assert not page.exception
        assert "not reachable: is it running?" in texts(page, "error")


def test_classify_upload_ranks_the_ten_classes():
    page = run_page("classify")
    page.file_uploader(key="classify_upload").set_value(upload_png()).run()
    assert not page.exception
    chart = page.get("vega_lite_chart")
    assert len(chart) == 1
    assert "%" in page.subheader[0].value


def test_classify_custom_labels_and_gallery_pick():
    page = run_page("classify")
    page.radio(key="classify_source").set_value("Gallery").run()
    page.button(key="classify_random").click().run()
    picked = page.text_input(key="classify_id").value
    assert httpx.get(f"{client.API_URL}/v1/gallery/{picked}").status_code == 200
    page.text_input(key="classify_labels").set_value("red stripes, blue stripes").run()
    assert not page.exception
    assert page.subheader[0].value.split(" (")[0] in {"red stripes", "blue stripes"}


def test_classify_shows_the_apis_label_error():
    page = run_page("classify")
    page.file_uploader(key="classify_upload").set_value(upload_png())
    page.text_input(key="classify_labels").set_value("just one, just one").run()
    assert not page.exception
    assert "Zero-shot classification chooses between labels: give at least two" in texts(page, "error")
    assert not page.get("vega_lite_chart")


def test_classify_refuses_bad_files():
    page = run_page("classify")
    page.file_uploader(key="classify_upload").set_value(("fake.png", b"not an image at all", "image/png")).run()
    assert not page.exception
    assert "could not read that image" in texts(page, "error")


def test_classify_shows_the_gallery_image_the_api_points_to(monkeypatch):
    fetch_item = client.gallery_item
    monkeypatch.setattr(client, "gallery_item", lambda item_id: from_api(fetch_item(item_id)))
    fetched = fetched_images(monkeypatch)
    page = run_page("classify")
    page.radio(key="classify_source").set_value("Gallery").run()
    page.text_input(key="classify_id").set_value("test-1").run()
    assert not page.exception
    assert fetched == ["/v1/gallery/test-1/image?from=api"]


@pytest.mark.parametrize(
    "name, key", [("classify", "classify_upload"), ("search", "search_upload"), ("gallery", "gallery_add_file")]
)
def test_file_uploaders_accept_exactly_the_apis_image_types(name, key):
    page = run_page(name)
    if name == "search":  # its uploader is behind "Search by: Image"
        page.radio(key="search_by").set_value("Image").run()
    accepted = {extension.removeprefix(".") for extension in page.file_uploader(key=key).proto.type}
    assert accepted == set(httpx.get(client.API_URL + "/v1/info").json()["image_types"])


def test_search_text_then_more_like_this():
    page = run_page("search")
    page.text_input(key="search_query").set_value("a photo of a cat").run()
    assert not page.exception
    buttons = [button for button in page.button if button.key and button.key.startswith("search_more-")]
    assert len(buttons) == 15
    first = buttons[0].key.removeprefix("search_more-")
    buttons[0].click().run()
    assert f"More like `{first}`" in texts(page, "subheader")
    page.button(key="search_back").click().run()
    assert not page.subheader


def test_more_like_this_shows_the_image_url_the_api_returned(monkeypatch):
    search_text = client.search_text
    monkeypatch.setattr(client, "search_text", lambda *args: [from_api(item) for item in search_text(*args)])
    fetched = fetched_images(monkeypatch)
    page = run_page("search")
    page.text_input(key="search_query").set_value("a photo of a cat").run()
    first = next(button for button in page.button if button.key and button.key.startswith("search_more-"))
    first.click().run()
    assert not page.exception
    item_id = first.key.removeprefix("search_more-")
    assert f"/v1/gallery/{item_id}/image?from=api" in fetched
    assert f"/v1/gallery/{item_id}/image" not in fetched  # similar results leave the item itself out


def test_search_min_score_can_hide_everything():
    page = run_page("search")
    page.slider(key="search_min_score").set_value(1.0)
    page.text_input(key="search_query").set_value("a truck").run()
    assert "lower it" in texts(page, "warning")


@pytest.mark.parametrize("key, expected", [("wrong-key", "refused the API key"), (API_KEY, "Added as `user-")])
def test_gallery_add_needs_the_key(key, expected):
    page = run_page("gallery")
    assert "Page 1 of 3" in texts(page, "caption")  # 50 dataset images (and maybe other tests' uploads)
    page.sidebar.text_input(key="api_key").set_value(key).run()
    page.file_uploader(key="gallery_add_file").set_value(upload_png(7))
    page.text_input(key="gallery_add_caption").set_value("my striped thing")
    next(button for button in page.button if button.label == "Add to gallery").click().run()
    assert not page.exception
    assert expected in texts(page, "success") + texts(page, "error")


def test_gallery_delete_an_upload():
    added = client.add_image(("mine.png", upload_png(5)[1]), "to delete", "", API_KEY)
    page = run_page("gallery")
    page.sidebar.text_input(key="api_key").set_value(API_KEY).run()
    page.radio(key="gallery_source").set_value("user").run()
    page.button(key=f"gallery_item-{added['id']}").click().run()
    assert not page.exception
    assert f"gallery_item-{added['id']}" not in [button.key for button in page.button]
