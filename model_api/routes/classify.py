from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status

from ..deps import GalleryDep, ModelDep, SettingsDep
from ..schemas import (
    BatchClassifyResponse,
    BatchItem,
    ClassifyGalleryRequest,
    ClassifyResponse,
    ClassifyTopK,
    Labels,
    error_responses,
)
from ..uploads import FORMAT_NAMES, read_image

router = APIRouter(prefix="/v1/classify", tags=["classify"])

LabelsForm = Annotated[Labels | None, Form()]
TopKForm = Annotated[ClassifyTopK | None, Form()]


@router.post("", summary="Zero-shot classify an uploaded image", responses=error_responses(400, 413, 415, 422, 503))
def classify_upload(
    file: Annotated[UploadFile, File(description=f"{FORMAT_NAMES} of any size and mode.")],
    model: ModelDep,
    settings: SettingsDep,
    labels: LabelsForm = None,
    top_k: TopKForm = None,
) -> ClassifyResponse:
    image = read_image(file, settings.max_upload_bytes)
    [result] = model.classify(image[None], labels, top_k)
    return ClassifyResponse.of(result.ranking, result.ood)


@router.post("/gallery", summary="Zero-shot classify a gallery item", responses=error_responses(404, 422, 503))
def classify_gallery_item(body: ClassifyGalleryRequest, model: ModelDep, gallery: GalleryDep) -> ClassifyResponse:
    image, vector = gallery.model_input(body.id), gallery.vector(body.id)
    [result] = model.classify(image[None], body.labels, body.top_k, vector[None])
    return ClassifyResponse.of(result.ranking, result.ood)


@router.post(
    "/batch",
    summary="Zero-shot classify several uploaded images",
    description="All or nothing: one unreadable file fails the request, and the error names it.",
    responses=error_responses(400, 413, 415, 422, 503),
)
def classify_batch(
    files: Annotated[
        list[UploadFile], File(description=f"The images ({FORMAT_NAMES}), in the order results are returned.")
    ],
    model: ModelDep,
    settings: SettingsDep,
    labels: LabelsForm = None,
    top_k: TopKForm = None,
) -> BatchClassifyResponse:
    if len(files) > settings.max_batch_files:
        detail = f"at most {settings.max_batch_files} files per batch, got {len(files)}"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
    images = [read_image(file, settings.max_upload_bytes) for file in files]
    results = model.classify(torch.stack(images), labels, top_k)
    return BatchClassifyResponse(
        results=[
            BatchItem(filename=file.filename, **dict(ClassifyResponse.of(result.ranking, result.ood)))
            for file, result in zip(files, results, strict=True)
        ]
    )
