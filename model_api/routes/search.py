from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from ..deps import GalleryDep, ModelDep, SettingsDep
from ..schemas import MinScore, SearchResponse, SearchTopK, SimilarSearchRequest, TextSearchRequest, error_responses
from ..uploads import FORMAT_NAMES, read_image

router = APIRouter(prefix="/v1/search", tags=["search"])


@router.post("/text", summary="Gallery images matching a text query", responses=error_responses(422, 503))
def search_text(body: TextSearchRequest, model: ModelDep, gallery: GalleryDep) -> SearchResponse:
    return SearchResponse.of(gallery.search(model.text_vector(body.query), body.top_k, body.min_score))


@router.post(
    "/image", summary="Gallery images similar to an uploaded image", responses=error_responses(400, 413, 415, 422, 503)
)
def search_image(
    file: Annotated[UploadFile, File(description=f"{FORMAT_NAMES} of any size and mode.")],
    model: ModelDep,
    gallery: GalleryDep,
    settings: SettingsDep,
    top_k: Annotated[SearchTopK, Form()] = 10,
    min_score: Annotated[MinScore | None, Form()] = None,
) -> SearchResponse:
    vector = model.image_vectors(read_image(file, settings.max_upload_bytes)[None])[0]
    return SearchResponse.of(gallery.search(vector, top_k, min_score))


@router.post(
    "/similar",
    summary="More like this: gallery images similar to a gallery item",
    description="The item itself is left out of the results.",
    responses=error_responses(404, 422, 503),
)
def search_similar(body: SimilarSearchRequest, gallery: GalleryDep) -> SearchResponse:
    return SearchResponse.of(gallery.search(gallery.vector(body.id), body.top_k, body.min_score, exclude=body.id))
