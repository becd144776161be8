"""An upload kept as the person gave it: the photo (longest side capped), a thumbnail for grids,
and the 32x32 input the model reads, all from one decode.

Format: JPEG at quality 90 for photos, PNG for images with transparency (JPEG has no alpha) and
for small ones (at most `THUMBNAIL_PIXELS` on their longest side: drawings, icons, CIFAR-sized
images, where PNG is lossless and still a few KB, and JPEG's 8x8 blocks would show). Why JPEG
and not WebP: every browser and image tool opens it, and on a drawn, noisy 1024x768 picture
Pillow wrote JPEG q90 in 14 ms (300 KB) against WebP q90's 269 ms (308 KB) on this project's
2-core machine; a bulk import of thousands of photos pays that per image. The thumbnail takes
the photo's format. EXIF orientation is applied to the pixels, so every viewer shows the photo
upright without reading EXIF; the rest of the metadata (GPS included) is not kept.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import torch
from PIL import Image, ImageOps

from .clip.preprocess import image_to_tensor, tensor_to_image, to_rgb

PHOTO_PIXELS = 1024  # longest side of the stored photo
THUMBNAIL_PIXELS = 256  # longest side of a grid thumbnail: 160 px grid cells on a 1.5x screen
JPEG_QUALITY = 90
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class StoredImages:
    """What the store keeps of one upload."""

    model_input: bytes  # PNG of the (3, 32, 32) image the model embedded: re-embedding reads it
    photo: bytes
    thumbnail: bytes
    media_type: str  # of both photo and thumbnail
    sha256: str  # of the uploaded file's bytes: the same file is recognised when it comes again


@dataclass(frozen=True)
class Photo:
    model_input: torch.Tensor  # (3, 32, 32) uint8
    stored: StoredImages


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def photo_from_image(image: Image.Image, data: bytes) -> Photo:
    """image: `data` decoded (at no less than PHOTO_PIXELS where the decoder can reduce)."""
    upright = ImageOps.exif_transpose(image)
    picture = upright.convert("RGBA") if has_alpha(upright) else to_rgb(upright)
    picture.thumbnail((PHOTO_PIXELS, PHOTO_PIXELS), Image.Resampling.LANCZOS)  # never enlarges
    image_format = "PNG" if picture.mode == "RGBA" or max(picture.size) <= THUMBNAIL_PIXELS else "JPEG"
    small = picture.copy()
    small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS), Image.Resampling.LANCZOS)
    tensor = image_to_tensor(picture)  # the model reads the photo as stored, as a re-embedding would
    stored = StoredImages(
        model_input=encode(tensor_to_image(tensor), "PNG"),
        photo=encode(picture, image_format),
        thumbnail=encode(small, image_format),
        media_type=MEDIA_TYPES[image_format],
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return Photo(tensor, stored)


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()
