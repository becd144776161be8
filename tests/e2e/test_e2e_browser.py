"""What a person does in the browser, through Nginx: classify an upload, search by text, follow
"more like this", add an image with the API key and find it again."""

import re

import httpx
import numpy as np
from playwright.sync_api import Page, expect

from tests.conftest import png_bytes

# Images on the page that finished loading without pixels: what a browser shows as broken.
BROKEN_IMAGES = "[...document.querySelectorAll('img')].filter((i) => !i.complete || i.naturalWidth === 0).length"


def gallery_png(url: str, item_id: str = "test-3") -> bytes:
    """A real gallery image, fetched through Nginx like any API client would."""
    response = httpx.get(f"{url}/api/v1/gallery/{item_id}/image", timeout=30)
    response.raise_for_status()
    return response.content


def upload(page: Page, data: bytes, name: str = "upload.png") -> None:
    page.locator("input[type=file]").set_input_files(files=[{"name": name, "mimeType": "image/png", "buffer": data}])


def test_home_shows_ready_api_and_model_card(app, page, screenshot):
    url, _ = app
    page.goto(url)
    expect(page.get_by_text("The API is ready.")).to_be_visible()
    expect(page.get_by_text("Gallery images", exact=True)).to_be_visible()
    screenshot("home")


def test_upload_an_image_and_see_ranked_labels(app, page, screenshot):
    url, _ = app
    page.goto(f"{url}/classify")
    upload(page, gallery_png(url))
    expect(page.locator("[data-testid=stVegaLiteChart]")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"\(\d+%\)"))).to_be_visible()
    screenshot("classify")


def test_text_search_then_more_like_this(app, page, screenshot):
    url, _ = app
    page.goto(f"{url}/search")
    query = page.get_by_label("Describe what you are looking for")
    query.fill("a photo of a cat")
    query.press("Enter")
    more = page.get_by_role("button", name="More like this")
    expect(more.first).to_be_visible()
    expect(page.locator("[data-testid=stImage]")).to_have_count(15)
    screenshot("search")
    more.first.click()
    expect(page.get_by_role("heading", name=re.compile("More like"))).to_be_visible()
    expect(page.get_by_role("button", name="Back to search")).to_be_visible()


CAPTION = "my hand drawn red car"


def grid_captions(page: Page):
    """The captions under the grid's images (each ends with its gallery id), in grid order."""
    captions = page.locator("[data-testid=stMain] [data-testid=stCaptionContainer]")
    return captions.filter(has_text=re.compile(r"(user|test)-\d+$"))


def enter_key(page: Page, key: str) -> None:
    key_box = page.get_by_label("API key (to add or delete images)")
    key_box.fill(key)
    key_box.press("Enter")


def fill_add_form(page: Page, data: bytes, caption: str) -> None:
    page.get_by_text("Add an image").click()
    upload(page, data, "mine.png")
    page.get_by_label("Caption (optional, makes it findable by its words)").fill(caption)
    # The picker first asks the server for an upload URL over the WebSocket, then PUTs the bytes.
    # "Add to gallery" is enabled while it asks and disabled during the PUT, so on a busy machine
    # a click too early submitted without the file ("Choose an image file first") or landed on
    # the just-disabled button and was lost (no message at all). The chip's button reads
    # "Remove <name>" only once the bytes are in.
    expect(page.get_by_role("button", name="Remove mine.png")).to_be_visible()
    page.get_by_role("button", name="Add to gallery").click()


def test_sidebar_shows_the_api_where_people_reach_it(app, page):
    url, _ = app
    page.goto(url)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_contain_text(f"API: {url}/api/")  # through Nginx, not the UI server's own address
    expect(sidebar).not_to_contain_text("reaches it")


def test_a_failed_add_keeps_what_was_entered(app, page):
    url, _ = app
    page.goto(f"{url}/gallery")
    enter_key(page, "not-the-key")
    fill_add_form(page, png_bytes(np.zeros((32, 32, 3), dtype=np.uint8)), CAPTION)
    expect(page.get_by_text(re.compile("refused the API key"))).to_be_visible()
    expect(page.get_by_label("Caption (optional, makes it findable by its words)")).to_have_value(CAPTION)
    expect(page.get_by_text("mine.png")).to_be_visible()  # the chosen file is still there to submit again


def test_add_an_image_with_the_key_and_find_it_by_search(app, page, screenshot):
    url, api_key = app
    # Noise no other gallery image resembles: searching by it must put the upload first.
    mine = png_bytes(np.random.default_rng().integers(0, 256, (32, 32, 3), dtype=np.uint8))
    page.goto(f"{url}/gallery")
    enter_key(page, api_key)
    fill_add_form(page, mine, CAPTION)
    added = page.get_by_text(re.compile(r"Added as user-\d+"))
    expect(added).to_be_visible()
    item_id = re.search(r"user-\d+", added.inner_text()).group(0)
    # A success empties the form, and the upload leads the first page of "Everything" with its caption.
    expect(page.get_by_label("Caption (optional, makes it findable by its words)")).to_have_value("")
    expect(grid_captions(page).first).to_contain_text(item_id)
    expect(grid_captions(page).first).to_contain_text(CAPTION)
    # The rerun after the form must not leave the grid pointing at images that are gone.
    expect(page.locator("[data-testid=stMain] [data-testid=stImage] img")).to_have_count(20)
    page.wait_for_function(BROKEN_IMAGES + " === 0")
    screenshot("gallery")

    page.goto(f"{url}/search")
    page.locator("[data-testid=stRadio]").get_by_text("Image", exact=True).click()
    upload(page, mine, "mine.png")
    first_caption = grid_captions(page).first
    expect(first_caption).to_contain_text(item_id)
    expect(first_caption).to_contain_text("1.000")  # its caption leaves a search by pixels to the pixels

    # Its caption makes it findable by its words: among the top results for that text.
    page.goto(f"{url}/search")
    query = page.get_by_label("Describe what you are looking for")
    query.fill(CAPTION)
    query.press("Enter")
    expect(grid_captions(page).filter(has_text=item_id)).to_have_count(1)
    ranked = grid_captions(page).all_inner_texts()
    assert any(item_id in text for text in ranked[:3]), ranked[:5]

    # Leave the gallery as this test found it: other tests count and sample it.
    deleted = httpx.delete(f"{url}/api/v1/gallery/{item_id}", headers={"X-API-Key": api_key}, timeout=30)
    assert deleted.status_code == 204
