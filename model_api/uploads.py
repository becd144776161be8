"""Uploaded file -> the (3, 32, 32) uint8 tensor training used (classification, search) or the
photo the gallery keeps, or a clear client error."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fastapi import UploadFile
from PIL import Image

from .clip.preprocess import IMAGE_SIZE, InvalidImageError, image_to_tensor, open_image
from .photos import PHOTO_PIXELS, Photo, photo_from_image


@dataclass(frozen=True)
class ImageFormat:
    name: str  # as people write it, in descriptions and errors
    pil_names: frozenset[str]  # what PIL's Image.format says for it
    extensions: tuple[str, ...]  # file name endings, for upload pickers


# The one list of formats the API promises: descriptions, errors and /v1/info (which the UI's
# pickers read) all come from it. PIL opens more (TIFF, ICO, PSD...), which we refuse with 415
# rather than support by accident.
IMAGE_FORMATS = (
    ImageFormat("PNG", frozenset({"PNG"}), ("png",)),
    # MPO is the multi-picture JPEG many phone cameras write, in files named .jpg.
    ImageFormat("JPEG", frozenset({"JPEG", "MPO"}), ("jpg", "jpeg")),
    ImageFormat("WebP", frozenset({"WEBP"}), ("webp",)),
    ImageFormat("GIF", frozenset({"GIF"}), ("gif",)),
    ImageFormat("BMP", frozenset({"BMP"}), ("bmp",)),
)
ACCEPTED_FORMATS = frozenset(name for image_format in IMAGE_FORMATS for name in image_format.pil_names)
IMAGE_EXTENSIONS = sorted(extension for image_format in IMAGE_FORMATS for extension in image_format.extensions)
*_FIRST, _LAST = (image_format.name for image_format in IMAGE_FORMATS)
FORMAT_NAMES = f"{', '.join(_FIRST)} or {_LAST}"  # "PNG, JPEG, WebP, GIF or BMP"


class UploadTooLargeError(ValueError):
    """The upload exceeds CLIP_MAX_UPLOAD_BYTES."""


class UnsupportedImageError(ValueError):
    """The upload is declared or detected as a type the API does not accept."""


def read_image(upload: UploadFile, max_bytes: int) -> torch.Tensor:
    """The upload as the model's (3, 32, 32) input, or a clear client error."""
    name, data = _read(upload, max_bytes)
    return image_to_tensor(open_accepted(name, data))


def read_photo(upload: UploadFile, max_bytes: int) -> Photo:
    """The upload as the gallery keeps it: photo, thumbnail and model input (`photos.py`)."""
    name, data = _read(upload, max_bytes)
    return photo_from_image(open_accepted(name, data, reduce_to=PHOTO_PIXELS), data)


def _read(upload: UploadFile, max_bytes: int) -> tuple[str, bytes]:
    """Reads at most max_bytes + 1 bytes, so an oversized file is refused without reading it all.

    The format is sniffed from the bytes (`open_accepted`); the client's Content-Type only serves
    to refuse obvious non-images early (browsers send application/octet-stream when unsure).
    """
    name = upload.filename or "file"
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared and not declared.startswith("image/") and declared != "application/octet-stream":
        raise UnsupportedImageError(f"{name}: content type {declared!r} is not an image")
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"{name}: larger than the {max_bytes}-byte upload limit")
    return name, data


def open_accepted(name: str, data: bytes, reduce_to: int = IMAGE_SIZE * 4) -> Image.Image:
    """Decodes `data` (a JPEG at a reduced scale no smaller than `reduce_to`), refusing formats
    the API does not promise; errors name the file."""
    try:
        image = open_image(data, reduce_to)
    except InvalidImageError as error:  # empty, corrupt, truncated or a bomb: name the file
        raise InvalidImageError(f"{name}: {error}") from error
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageError(f"{name}: {image.format or 'unknown'} images are not accepted ({FORMAT_NAMES})")
    return image
