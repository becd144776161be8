"""The UI's only door to the model: a small HTTP client for the API (see model_api/README.md).

Every function returns parsed JSON or bytes, or raises `ApiError` whose message is fit to show a
person as is. Pages call these through `components.call`, which adds the spinner and `st.error`.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

# The API as the UI *server* reaches it (http://api:8000 in Compose, loopback locally); the
# browser never talks to it directly, so images are fetched here and handed to Streamlit as bytes.
API_URL = os.environ.get("API_URL", "http://127.0.0.1:8000").rstrip("/")
# Where people reach the API, to tell them in the sidebar; unset, the UI assumes the deployment's
# Nginx, which serves it under /api/ on the UI's own host and port.
PUBLIC_API_URL = os.environ.get("PUBLIC_API_URL", "").rstrip("/") or None
# Classifying a 4000x3000 upload takes well under a second; a minute means something is wrong.
TIMEOUT = httpx.Timeout(float(os.environ.get("API_TIMEOUT_S", "60")), connect=3.0)


class ApiError(Exception):
    """A failed call, with a message for the person using the UI, the HTTP status if any, and
    the API's own `detail` (e.g. what it is still loading) for pages that word it themselves."""

    def __init__(self, message: str, status: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _request(method: str, path: str, **kwargs: Any) -> httpx.Response:
    """path: an API path below API_URL, e.g. /v1/info."""
    return _send(method, API_URL + path, **kwargs)


def _send(method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = httpx.request(method, url, timeout=TIMEOUT, **kwargs)
    except httpx.ConnectError as error:
        raise ApiError(f"The API at {API_URL} is not reachable: is it running? ({error})") from error
    except httpx.TimeoutException as error:
        raise ApiError(f"The API at {API_URL} did not answer in time; try again.") from error
    except httpx.HTTPError as error:
        raise ApiError(f"The call to the API failed: {error}") from error
    if response.status_code == 503:
        detail = _detail(response)
        raise ApiError(f"The API is not ready yet: {detail}. Retry in a moment.", 503, detail)
    if response.status_code == 413:
        raise ApiError(f"That file is too large for the API: {_detail(response)}", 413)
    if response.status_code in (400, 415):
        raise ApiError(f"The API could not read that image: {_detail(response)}", response.status_code)
    if response.status_code in (401, 403):
        raise ApiError(f"The API refused the API key: {_detail(response)}", response.status_code)
    if response.is_error:
        raise ApiError(f"The API answered {response.status_code}: {_detail(response)}", response.status_code)
    return response


def _file(upload: tuple[str, bytes]) -> dict[str, tuple[str, bytes]]:
    name, data = upload
    return {"file": (name, data)}


def ready() -> dict[str, Any]:
    return _request("GET", "/ready").json()


def info() -> dict[str, Any]:
    return _request("GET", "/v1/info").json()


# `labels` is the text as the person typed it ("cat, dog"): the API splits it, drops blanks and
# duplicates, and says what is wrong with it. None means the model's own classes.
# Both return the API's whole answer: the predictions and whether they are a guess
# (`out_of_distribution`, `ood`).
def classify_upload(upload: tuple[str, bytes], labels: str | None, top_k: int) -> dict[str, Any]:
    form = {"top_k": str(top_k), **({"labels": labels} if labels else {})}
    return _request("POST", "/v1/classify", files=_file(upload), data=form).json()


def classify_gallery(item_id: str, labels: str | None, top_k: int) -> dict[str, Any]:
    body = {"id": item_id, "top_k": top_k, **({"labels": [labels]} if labels else {})}
    return _request("POST", "/v1/classify/gallery", json=body).json()


# options: what every search takes (top_k, min_score, and when set min_relative_score and negative);
# text: words refining an image query. Unset values are left out, so the API's defaults apply.
def search_text(query: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    return _request("POST", "/v1/search/text", json={"query": query, **options}).json()["results"]


def search_image(upload: tuple[str, bytes], options: dict[str, Any], text: str | None = None) -> list[dict[str, Any]]:
    form = {key: str(value) for key, value in {**options, "text": text}.items() if value is not None}
    return _request("POST", "/v1/search/image", files=_file(upload), data=form).json()["results"]


def search_similar(item_id: str, options: dict[str, Any], text: str | None = None) -> list[dict[str, Any]]:
    body = {"id": item_id, **options, **({"text": text} if text else {})}
    return _request("POST", "/v1/search/similar", json=body).json()["results"]


def gallery_page(offset: int, limit: int, source: str = "all") -> dict[str, Any]:
    params = {"offset": offset, "limit": limit, "source": source}
    return _request("GET", "/v1/gallery", params=params).json()


def near_duplicates(min_similarity: float, limit: int) -> list[dict[str, Any]]:
    params = {"min_similarity": min_similarity, "limit": limit}
    return _request("GET", "/v1/gallery/duplicates", params=params).json()["pairs"]


def gallery_item(item_id: str) -> dict[str, Any]:
    # The id may be typed by hand: quoted, "a/b" stays one id instead of reaching another route.
    return _request("GET", f"/v1/gallery/{quote(item_id, safe='')}").json()


def image(image_url: str) -> bytes:
    """image_url as the API returned it: the API, not the UI, knows where its images live. It is
    a path from the root of the host the request went to (`/v1/...` from the API itself,
    `/api/v1/...` when API_URL is the proxy's `/api`), so it is resolved as a browser would."""
    return _send("GET", str(httpx.URL(API_URL).join(image_url))).content


def add_image(upload: tuple[str, bytes], caption: str, label: str, api_key: str) -> dict[str, Any]:
    form = {key: value for key, value in (("caption", caption), ("label", label)) if value}
    headers = {"X-API-Key": api_key}
    return _request("POST", "/v1/gallery", files=_file(upload), data=form, headers=headers).json()


def delete_image(item_id: str, api_key: str) -> None:
    _request("DELETE", f"/v1/gallery/{item_id}", headers={"X-API-Key": api_key})
