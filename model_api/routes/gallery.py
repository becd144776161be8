from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Path, Query, Response, UploadFile, status

from ..deps import GalleryDep, RootPathDep, SettingsDep, require_api_key
from ..schemas import DuplicatePair, DuplicatesResponse, GalleryItemOut, GalleryPage, ItemId, Text, error_responses
from ..uploads import FORMAT_NAMES, read_photo

router = APIRouter(prefix="/v1/gallery", tags=["gallery"])

ItemPath = Annotated[ItemId, Path()]
# Ids are never reused, so an id's image never changes: clients and proxies may keep it.
IMAGE_CACHE_CONTROL = "public, max-age=86400, immutable"


@router.get("", summary="Page through the gallery", responses=error_responses(422, 503))
def list_items(
    gallery: GalleryDep,
    root_path: RootPathDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="Index of the first item.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200, description="Most items to return.")] = 50,
    source: Annotated[
        Literal["all", "dataset", "user"], Query(description="`dataset`, `user` uploads, or `all`.")
    ] = "all",
) -> GalleryPage:
    total, items = gallery.page(offset, limit, None if source == "all" else source)
    page = [GalleryItemOut.of(item, root_path) for item in items]
    return GalleryPage(total=total, offset=offset, limit=limit, items=page)


@router.get("/duplicates", summary="Near-duplicate pairs of gallery items", responses=error_responses(422, 503))
def near_duplicates(
    gallery: GalleryDep,
    root_path: RootPathDep,
    min_similarity: Annotated[
        float,
        Query(ge=-1.0, le=1.0, description="Pairs whose image vectors' cosine similarity is at least this."),
    ] = 0.95,
    limit: Annotated[int, Query(ge=1, le=500, description="Most pairs to return, most similar first.")] = 50,
) -> DuplicatesResponse:
    pairs = gallery.near_duplicates(min_similarity, limit)
    return DuplicatesResponse(
        pairs=[
            DuplicatePair(first=GalleryItemOut.of(a, root_path), second=GalleryItemOut.of(b, root_path), similarity=s)
            for a, b, s in pairs
        ]
    )


@router.get("/{item_id}", summary="One gallery item", responses=error_responses(404, 503))
def get_item(item_id: ItemPath, gallery: GalleryDep, root_path: RootPathDep) -> GalleryItemOut:
    return GalleryItemOut.of(gallery.item(item_id), root_path)


@router.get(
    "/{item_id}/{kind}",
    summary="The item's image: `image` the stored one, `thumbnail` the one for grids",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "JPEG or PNG bytes."},
        **error_responses(404, 422, 503),
    },
)
def get_picture(
    item_id: ItemPath,
    kind: Annotated[
        Literal["image", "thumbnail"],
        Path(
            description="`image`: an upload's photo (longest side at most 1,024 px), a dataset item's 32x32 PNG;"
            " `thumbnail`: an upload's thumbnail (at most 256 px), a dataset item's 32x32 PNG."
        ),
    ],
    gallery: GalleryDep,
) -> Response:
    data, media_type = gallery.picture(item_id, "photo" if kind == "image" else "thumbnail")
    return Response(data, media_type=media_type, headers={"Cache-Control": IMAGE_CACHE_CONTROL})


@router.post(
    "",
    summary="Add an uploaded image to the gallery",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_api_key)],
    responses=error_responses(400, 401, 403, 404, 413, 415, 422, 503),
)
def add_item(
    file: Annotated[
        UploadFile,
        File(description=f"{FORMAT_NAMES}; kept as given (longest side capped at 1,024 px, upright) with a thumbnail."),
    ],
    gallery: GalleryDep,
    settings: SettingsDep,
    root_path: RootPathDep,
    response: Response,
    caption: Annotated[Text(500) | None, Form(description="Free text shown with search results.")] = None,
    label: Annotated[Text(100) | None, Form(description="The item's class or tag, e.g. `cat`.")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Any unique string, e.g. a UUID: sending the same upload again with the same key returns"
            " the item the first request added (header `Idempotent-Replayed: true`) instead of adding another,"
            " so a client may retry after a timeout or a 5xx. The same key with another upload: 422.",
        ),
    ] = None,
) -> GalleryItemOut:
    photo = read_photo(file, settings.max_upload_bytes)
    item, replayed = gallery.add(photo, caption, label, idempotency_key)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return GalleryItemOut.of(item, root_path)


@router.delete(
    "/{item_id}",
    summary="Remove an uploaded item",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 403, 404, 503),
)
def delete_item(item_id: ItemPath, gallery: GalleryDep) -> None:
    gallery.delete(item_id)
