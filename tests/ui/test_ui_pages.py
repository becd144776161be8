"""Each page through Streamlit's AppTest, against the real API process of the session's stack."""

import base64
import io
import re

import httpx
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from model_api.app_state import AppState
from model_api.settings import Settings
from streamlit_ui import client, components
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
    """The item with image URLs no page could build from its id (the API ignores the query)."""
    return {**item, **{key: item[key] + "?from=api" for key in ("image_url", "thumbnail_url")}}


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


def test_home_says_once_that_the_gallery_has_no_dataset(monkeypatch, tmp_path):
    state = AppState(Settings(_env_file=None, data_source=str(tmp_path / "no-such-dataset"), cache_dir=tmp_path))
    state._load_dataset()  # the API's own wording of a missing dataset
    info = client.info
    monkeypatch.setattr(client, "info", lambda: {**info(), "dataset_loaded": False, "dataset": state.dataset_status})
    page = run_page("home")
    notice = texts(page, "info")
    assert "The gallery holds only uploaded images" in notice
    assert "uploads only" not in notice and notice.count("unavailable") == 1


def test_sidebar_shows_where_people_reach_the_api(monkeypatch):
    app = AppTest.from_file(APP, default_timeout=60).run()
    direct = texts(app.sidebar, "caption")  # Streamlit reached directly: the address is labelled as internal
    assert f"as this UI's server reaches it, not public): `{client.API_URL}`" in direct
    monkeypatch.setattr(client, "PUBLIC_API_URL", "https://clip.example.org/api")
    app = AppTest.from_file(APP, default_timeout=60).run()
    public = texts(app.sidebar, "caption")
    assert "API: `https://clip.example.org/api`" in public and client.API_URL not in public


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


def test_classify_a_gallery_item_shows_its_true_label():
    label = httpx.get(f"{client.API_URL}/v1/gallery/test-1").json()["label"]
    page = run_page("classify")
    page.radio(key="classify_source").set_value("Gallery").run()
    page.text_input(key="classify_id").set_value("test-1").run()
    assert not page.exception
    assert f"true label: **{label}**" in texts(page, "caption")


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


def test_classify_says_none_of_these_for_a_drawn_image():
    squares = (np.add.outer(np.arange(32) // 4, np.arange(32) // 4) % 2 * 255).astype(np.uint8)
    drawn = np.repeat(squares[..., None], 3, axis=2)
    page = run_page("classify")
    page.file_uploader(key="classify_upload").set_value(("drawn.png", png_bytes(drawn), "image/png")).run()
    assert not page.exception
    assert "None of these / low confidence" in texts(page, "warning")
    assert "unlike the images the model learned from" in texts(page, "warning")
    assert re.fullmatch(r".+ \(\d+%\), a guess", page.subheader[0].value)


def test_classify_of_a_dataset_image_gives_no_notice_when_the_api_does_not(monkeypatch):
    shown = []
    classify = client.classify_gallery
    monkeypatch.setattr(client, "classify_gallery", lambda *args: shown.append(classify(*args)) or shown[-1])
    page = run_page("classify")
    page.radio(key="classify_source").set_value("Gallery").run()
    page.text_input(key="classify_id").set_value("test-1").run()
    assert not page.exception
    assert shown[-1]["out_of_distribution"] is not None
    assert ("None of these / low confidence" in texts(page, "warning")) == shown[-1]["out_of_distribution"]


@pytest.mark.parametrize("through_proxy", [False, True])
def test_the_client_fetches_the_image_url_the_api_returned_directly_or_through_the_proxy(
    monkeypatch, web_stack, through_proxy
):
    monkeypatch.setattr(client, "API_URL", f"{web_stack.url}/api" if through_proxy else web_stack.api_url)
    [result] = client.search_text("a cat", {"top_k": 1})
    assert result["image_url"].startswith("/api/v1/" if through_proxy else "/v1/")
    assert client.image(result["image_url"]).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "name, key", [("classify", "classify_upload"), ("search", "search_upload"), ("gallery", "gallery_add_file-0")]
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
    # The grid shows thumbnails; the opened result its stored image.
    assert f"/v1/gallery/{item_id}/thumbnail?from=api" in fetched
    assert [url for url in fetched if "/image" in url] == [f"/v1/gallery/{item_id}/image?from=api"]


def test_search_sends_the_negative_and_the_relative_cutoff(monkeypatch):
    sent = []
    search_text = client.search_text
    monkeypatch.setattr(
        client, "search_text", lambda query, options: sent.append(options) or search_text(query, options)
    )
    page = run_page("search")
    page.text_input(key="search_negative").set_value("grass")
    page.slider(key="search_relative").set_value(0.9)
    page.text_input(key="search_query").set_value("a dog").run()
    assert not page.exception
    assert sent[-1]["negative"] == "grass" and sent[-1]["min_relative_score"] == 0.9
    shown = [float(m.group(1)) for m in re.finditer(r"· (-?[0-9.]+)", texts(page, "caption"))]
    assert shown and all(score >= max(shown) - 0.1 * abs(max(shown)) - 1e-3 for score in shown)


def test_more_like_this_can_be_refined_by_words():
    page = run_page("search")
    page.text_input(key="search_query").set_value("a photo of a cat").run()
    next(b for b in page.button if b.key and b.key.startswith("search_more-")).click().run()
    page.text_input(key="search_refine_similar").set_value("but red").run()
    assert not page.exception and "More like" in texts(page, "subheader")


def test_search_min_score_can_hide_everything():
    page = run_page("search")
    page.slider(key="search_min_score").set_value(1.0)
    page.text_input(key="search_query").set_value("a truck").run()
    assert "lower it" in texts(page, "warning")


def test_search_of_an_empty_gallery_says_it_is_empty_not_to_lower_the_minimum(monkeypatch):
    monkeypatch.setattr(client, "search_text", lambda *args: [])  # what an empty gallery answers
    page = run_page("search")
    page.text_input(key="search_query").set_value("a truck").run()  # minimum score at -1, its floor
    assert not page.exception
    assert "The gallery is empty" in texts(page, "warning") and "lower" not in texts(page, "warning")


def test_search_while_the_api_loads_is_a_notice_not_an_error(monkeypatch):
    loading = httpx.Response(503, json={"detail": "model loaded; loading the gallery"}, headers={"Retry-After": "5"})
    monkeypatch.setattr(client.httpx, "request", lambda *args, **kwargs: loading)
    page = run_page("search")
    assert not page.exception and not page.error
    assert "The API is still loading (model loaded; loading the gallery)" in texts(page, "info")
    assert not page.text_input  # no query box that could only fail


def add_form(page: AppTest, form: int = 0) -> tuple:
    """The add form's widgets; `form` counts the successful adds of this page session."""
    return (
        page.file_uploader(key=f"gallery_add_file-{form}"),
        page.text_input(key=f"gallery_add_caption-{form}"),
        next(button for button in page.button if button.label == "Add to gallery"),
    )


def delete_upload(item_id: str) -> None:
    httpx.delete(f"{client.API_URL}/v1/gallery/{item_id}", headers={"X-API-Key": API_KEY}).raise_for_status()


def test_gallery_add_keeps_the_input_after_a_failure_and_clears_it_after_success():
    page = run_page("gallery")
    assert "Page 1 of 3" in texts(page, "caption")  # 50 dataset images (and maybe other tests' uploads)
    page.sidebar.text_input(key="api_key").set_value("wrong-key").run()
    file, caption, submit = add_form(page)
    file.set_value(upload_png(7))
    caption.set_value("my striped thing")
    submit.click().run()
    assert not page.exception
    assert "refused the API key" in texts(page, "error")
    file, caption, submit = add_form(page)  # what was entered is still there to submit again
    assert caption.value == "my striped thing" and file.value

    page.sidebar.text_input(key="api_key").set_value(API_KEY).run()
    submit.click().run()
    assert not page.exception
    added = re.search(r"Added as `(user-\d+)`", texts(page, "success"))
    assert added
    file, caption, _ = add_form(page, form=1)
    assert caption.value == "" and not file.value
    delete_upload(added[1])


def test_gallery_without_a_server_key_says_adding_is_off(monkeypatch):
    info = client.info
    monkeypatch.setattr(client, "info", lambda: {**info(), "writes_enabled": False})
    page = run_page("gallery")
    assert not page.exception
    notice = texts(page, "info")
    assert "Adding images is off: the server has no `CLIP_API_KEY`" in notice and "`make run` sets one" in notice
    assert not page.get("file_uploader") and not page.sidebar.text_input  # no form that cannot work


def test_gallery_lists_a_new_upload_first_with_its_caption():
    added = client.add_image(("mine.png", upload_png(4)[1]), "my hand drawn red car", "", API_KEY)
    page = run_page("gallery")  # "Everything", page 1
    assert not page.exception
    first = next(caption.value for caption in page.caption if "`user-" in caption.value or "`test-" in caption.value)
    assert f"`{added['id']}`" in first and "my hand drawn red car" in first
    delete_upload(added["id"])


def test_gallery_grid_shows_an_uploaded_photos_thumbnail_as_stored(monkeypatch):
    photo = Image.new("RGB", (1200, 900), (200, 40, 40))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    added = client.add_image(("photo.jpg", buffer.getvalue()), "", "", API_KEY)
    fetched = fetched_images(monkeypatch)
    page = run_page("gallery")
    page.radio(key="gallery_source").set_value("user").run()
    assert not page.exception
    assert added["thumbnail_url"] in fetched and added["image_url"] not in fetched
    delete_upload(added["id"])


def test_a_thumbnail_is_shown_as_it_came_and_a_32x32_image_enlarged_by_whole_pixels():
    thumbnail = Image.new("RGB", (256, 192), (200, 40, 40))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG")
    assert components.pixelated(buffer.getvalue(), components.GRID_PIXELS) == (
        "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    )
    enlarged = components.pixelated(png_bytes(synthetic_image(1, np.random.default_rng(1))), components.GRID_PIXELS)
    shown = Image.open(io.BytesIO(base64.b64decode(enlarged.removeprefix("data:image/png;base64,"))))
    assert shown.size == (160, 160)


def test_gallery_counts_one_image_in_the_singular(monkeypatch):
    item = httpx.get(f"{client.API_URL}/v1/gallery/test-0").json()
    monkeypatch.setattr(client, "gallery_page", lambda *args: {"total": 1, "offset": 0, "limit": 20, "items": [item]})
    page = run_page("gallery")
    assert "Page 1 of 1 · 1 image" in texts(page, "caption") and "1 images" not in texts(page, "caption")


def test_gallery_delete_asks_before_it_deletes():
    added = client.add_image(("mine.png", upload_png(5)[1]), "to delete", "", API_KEY)
    page = run_page("gallery")
    page.sidebar.text_input(key="api_key").set_value(API_KEY).run()
    page.radio(key="gallery_source").set_value("user").run()
    page.button(key=f"gallery_item-{added['id']}").click().run()
    assert f"Delete `{added['id']}` from the gallery?" in texts(page, "warning")
    page.button(key="gallery_delete_no").click().run()
    assert not page.warning
    assert f"gallery_item-{added['id']}" in [button.key for button in page.button]  # still there

    page.button(key=f"gallery_item-{added['id']}").click().run()
    page.button(key="gallery_delete_yes").click().run()
    assert not page.exception
    assert f"gallery_item-{added['id']}" not in [button.key for button in page.button]
    assert httpx.get(f"{client.API_URL}/v1/gallery/{added['id']}").status_code == 404


def test_gallery_lists_near_duplicate_pairs_above_the_similarity_set(monkeypatch):
    asked = []
    near_duplicates = client.near_duplicates
    monkeypatch.setattr(client, "near_duplicates", lambda *args: asked.append(args) or near_duplicates(*args))
    fetched = fetched_images(monkeypatch)
    page = run_page("gallery")
    page.slider(key="gallery_dup_min").set_value(0.9)
    page.number_input(key="gallery_dup_limit").set_value(2)
    page.button(key="gallery_dup_find").click().run()
    assert not page.exception
    assert asked == [(0.9, 2)]
    pairs = near_duplicates(0.9, 2)
    shown = [caption.value for caption in page.caption if caption.value.startswith("Similarity")]
    assert shown == [f"Similarity {pair['similarity']:.3f}" for pair in pairs] and pairs
    assert pairs[0]["first"]["thumbnail_url"] in fetched and pairs[0]["second"]["thumbnail_url"] in fetched
