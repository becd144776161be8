from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from ..deps import GalleryDep, ModelDep, RootPathDep, SettingsDep
from ..schemas import (
    MinRelativeScore,
    MinScore,
    Negative,
    Refinement,
    SearchResponse,
    SearchTopK,
    SimilarSearchRequest,
    TextSearchRequest,
    error_responses,
)
from ..uploads import FORMAT_NAMES, read_image

router = APIRouter(prefix="/v1/search", tags=["search"])


@router.post("/text", summary="Gallery images matching a text query", responses=error_responses(422, 503))
async def search_text(
    body: TextSearchRequest, model: ModelDep, gallery: GalleryDep, root_path: RootPathDep
) -> SearchResponse:
    # On the event loop: the query waits for its batch without holding a thread, and the search
    # itself (a product with the gallery and a lookup of k items in memory) takes well under a ms.
    query, negative = await model.text_vector_async(body.query), await model.optional_text_vector_async(body.negative)
    vector = model.search_vector(query, negative=negative)
    # Only words are compared with captions: an image query compares pixels alone.
    hits = gallery.search(vector, body.top_k, body.min_score, None, body.min_relative_score, captions=True)
    return SearchResponse.of(hits, root_path)


@router.post(
    "/image", summary="Gallery images similar to an uploaded image", responses=error_responses(400, 413, 415, 422, 503)
)
def search_image(
    file: Annotated[UploadFile, File(description=f"{FORMAT_NAMES} of any size and mode.")],
    model: ModelDep,
    gallery: GalleryDep,
    settings: SettingsDep,
    root_path: RootPathDep,
    top_k: Annotated[SearchTopK, Form()] = 10,
    min_score: Annotated[MinScore | None, Form()] = None,
    min_relative_score: Annotated[MinRelativeScore | None, Form()] = None,
    text: Annotated[Refinement | None, Form()] = None,
    negative: Annotated[Negative | None, Form()] = None,
) -> SearchResponse:
    image = model.image_vectors(read_image(file, settings.max_upload_bytes)[None])[0]
    vector = model.search_vector(
        image, negative=model.optional_text_vector(negative), refinement=model.optional_text_vector(text)
    )
    return SearchResponse.of(gallery.search(vector, top_k, min_score, None, min_relative_score), root_path)


@router.post(
    "/similar",
    summary="More like this: gallery images similar to a gallery item",
    description="The item itself is left out of the results.",
    responses=error_responses(404, 422, 503),
)
def search_similar(
    body: SimilarSearchRequest, model: ModelDep, gallery: GalleryDep, root_path: RootPathDep
) -> SearchResponse:
    vector = model.search_vector(
        gallery.vector(body.id),
        negative=model.optional_text_vector(body.negative),
        refinement=model.optional_text_vector(body.text),
    )
    hits = gallery.search(vector, body.top_k, body.min_score, body.id, body.min_relative_score)
    return SearchResponse.of(hits, root_path)
