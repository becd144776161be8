"""Uploaded file -> the (3, 32, 32) uint8 tensor training used, or a clear client error."""

from __future__ import annotations

import torch
from fastapi import UploadFile

from .clip.preprocess import InvalidImageError, image_to_tensor, open_image

# The formats the API promises; PIL opens more (TIFF, ICO, PSD...), which we refuse with 415
# rather than support by accident. MPO is the multi-picture JPEG many phone cameras write.
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP"})


class UploadTooLargeError(ValueError):
    """The upload exceeds CLIP_MAX_UPLOAD_BYTES."""


class UnsupportedImageError(ValueError):
    """The upload is declared or detected as a type the API does not accept."""


def read_image(upload: UploadFile, max_bytes: int) -> torch.Tensor:
    """Reads at most max_bytes + 1 bytes, so an oversized file is refused without reading it all.

    The format is sniffed from the bytes; the client's Content-Type only serves to refuse
    obvious non-images early (browsers send application/octet-stream when unsure).
    """
    name = upload.filename or "file"
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared and not declared.startswith("image/") and declared != "application/octet-stream":
        raise UnsupportedImageError(f"{name}: content type {declared!r} is not an image")
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"{name}: larger than the {max_bytes}-byte upload limit")
    try:
        image = open_image(data)
    except InvalidImageError as error:  # empty, corrupt, truncated or a bomb: name the file
        raise InvalidImageError(f"{name}: {error}") from error
    if image.format not in ACCEPTED_FORMATS:
        accepted = ", ".join(sorted(ACCEPTED_FORMATS))
        raise UnsupportedImageError(f"{name}: {image.format or 'unknown'} images are not accepted ({accepted})")
    return image_to_tensor(image)
