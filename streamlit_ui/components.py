"""Pieces every page uses: calling the API with a spinner, cached reads, and image display."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import streamlit as st
from PIL import Image

from streamlit_ui import client

T = TypeVar("T")

# CIFAR images are 32x32: shown at 5x they are recognisable without swamping the page. An
# opened upload shows its stored photo, up to 1,024 px, fitted to the page.
GRID_PIXELS = 160
LARGE_PIXELS = 320


def call(spinner: str, function: Callable[..., T], *args: Any) -> T:
    """Runs one API call under a spinner; on failure shows the reason and ends this page run."""
    with st.spinner(spinner):
        try:
            return function(*args)
        except client.ApiError as error:
            if error.status == 503:
                still_loading(error.detail)
            st.error(str(error), icon=":material/error:")
            st.stop()


def still_loading(detail: str | None) -> None:
    """A notice, not an error: on a first start the gallery takes a minute to encode."""
    st.info(
        f"The API is still loading ({detail or 'starting'}). This page works once it is ready.",
        icon=":material/hourglass_top:",
    )
    st.button("Check again", key="still_loading_recheck", icon=":material/refresh:")
    st.stop()


def require_ready() -> None:
    """For pages that need the gallery: say it is loading before anyone types a query."""
    try:
        client.ready()
    except client.ApiError as error:
        if error.status == 503:
            still_loading(error.detail)
        st.error(str(error), icon=":material/error:")
        st.stop()


def plural(count: int, noun: str) -> str:
    """1 -> "1 image", 2000 -> "2,000 images"."""
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def api_location() -> str:
    """Where a person reaches the API, for the sidebar: PUBLIC_API_URL if set; behind the
    deployment's Nginx (which forwards the UI with X-Forwarded-For) /api/ on the browser's own
    host; else, with Streamlit reached directly, the address only this UI's server uses, said so."""
    if client.PUBLIC_API_URL:
        return f"API: `{client.PUBLIC_API_URL}`"
    browser = urlsplit(st.context.url or "")
    if "X-Forwarded-For" in st.context.headers and browser.netloc:
        return f"API: `{browser.scheme}://{browser.netloc}/api/`"
    return f"API (as this UI's server reaches it, not public): `{client.API_URL}`"


# Exceptions are not cached, so an API that was down is asked again on the next rerun.
@st.cache_data(ttl=60, show_spinner=False)
def info() -> dict[str, Any]:
    return client.info()


def image_types() -> list[str]:
    """The file extensions the API accepts, so an upload widget never offers what it would refuse."""
    return call("Asking the API which images it accepts…", info)["image_types"]


# Gallery images never change under an id (user ids are not reused), so keep them for an hour.
@st.cache_data(ttl=3600, max_entries=2000, show_spinner=False)
def image(image_url: str) -> bytes:
    return client.image(image_url)


@st.cache_data(max_entries=2000, show_spinner=False)
def pixelated(data: bytes, pixels: int) -> str:
    """The image as a data URL about `pixels` wide: a small one (a CIFAR 32x32) scaled up by whole
    multiples with nearest-neighbour sampling (the browser's smooth scaling would blur it into
    mush), a photo or thumbnail at least that large as it came, for the browser to fit.

    A data URL, not bytes: st.image keeps bytes in Streamlit's media store, which can drop a
    file between a rerun and the browser's fetch of it (streamlit#1294: after "Add to gallery"
    some grid images came back 404 and showed broken).
    """
    picture = Image.open(io.BytesIO(data))
    if max(picture.size) >= pixels and picture.format in ("JPEG", "PNG"):
        return f"data:image/{picture.format.lower()};base64," + base64.b64encode(data).decode("ascii")
    picture = picture.convert("RGB")
    factor = max(1, pixels // max(picture.size))
    picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def show_image(data: bytes, pixels: int = LARGE_PIXELS, caption: str | None = None) -> None:
    try:
        st.image(pixelated(data, pixels), caption=caption)
    except OSError:
        st.error("That file is not an image this page can show.", icon=":material/broken_image:")
        st.stop()


def _plain(text: str) -> str:
    """Text shown as typed: markdown's (and Streamlit's LaTeX `$`) special characters escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$])", r"\\\1", text)


def item_caption(item: dict[str, Any]) -> str:
    """Label (or "unlabelled"), score if any, the caption if it says more, and the id."""
    label = item.get("label") or "unlabelled"
    score = f" · {item['score']:.3f}" if "score" in item else ""
    caption = item.get("caption")
    # A search result's label is the caption when there is no label: shown once.
    said = f"  \n_{_plain(caption)}_" if caption and caption != label else ""
    return f"**{_plain(label)}**{score}{said}  \n`{item['id']}`"


def image_grid(
    items: list[dict[str, Any]],
    key: str,
    action: tuple[str, Callable[[dict[str, Any]], None]] | None = None,
    columns: int = 5,
) -> None:
    """Items from a search or gallery listing as a grid of images with label and score, each with
    an optional button that calls `action[1](item)` before the next rerun."""
    for start in range(0, len(items), columns):
        # The last row is short: strict=False leaves its spare columns empty.
        for column, item in zip(st.columns(columns), items[start : start + columns], strict=False):
            with column:
                show_image(call("Loading image…", image, item["thumbnail_url"]), GRID_PIXELS)
                st.caption(item_caption(item))
                if action:
                    label, on_click = action
                    st.button(label, key=f"{key}-{item['id']}", on_click=on_click, args=(item,))
