"""An upload as the gallery keeps it: format chosen by content, longest side capped, EXIF
orientation applied, a thumbnail, and the model's 32x32 input from the photo as stored."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from model_api.clip.preprocess import bytes_to_tensor
from model_api.photos import PHOTO_PIXELS, THUMBNAIL_PIXELS, photo_from_image
from model_api.uploads import open_accepted

RED, BLUE = (220, 20, 20), (20, 20, 220)


def upright_picture(width: int, height: int) -> Image.Image:
    """Red top half, blue bottom half: which way is up shows in the pixels."""
    picture = Image.new("RGB", (width, height), BLUE)
    picture.paste(RED, (0, 0, width, height // 2))
    return picture


def file_bytes(picture: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def keep(data: bytes):
    return photo_from_image(open_accepted("upload", data, reduce_to=PHOTO_PIXELS), data)


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_large_photo_is_kept_as_jpeg_with_its_longest_side_capped_and_a_thumbnail():
    data = file_bytes(upright_picture(3000, 2000), "JPEG", quality=95)
    stored = keep(data).stored
    assert stored.media_type == "image/jpeg" and stored.sha256 == hashlib.sha256(data).hexdigest()
    photo, thumbnail = decoded(stored.photo), decoded(stored.thumbnail)
    assert (photo.format, photo.size) == ("JPEG", (PHOTO_PIXELS, 683))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (THUMBNAIL_PIXELS, 171))


def test_exif_orientation_is_applied_to_the_stored_pixels():
    upright = upright_picture(1200, 1600)
    # A camera held sideways writes the pixels rotated and says so in EXIF (6: turn 90 degrees clockwise).
    exif = Image.Exif()
    exif[0x0112] = 6
    data = file_bytes(upright.rotate(90, expand=True), "JPEG", exif=exif)
    photo = decoded(keep(data).stored.photo)
    assert photo.size == (768, PHOTO_PIXELS)  # portrait, as the person saw it
    assert photo.getexif().get(0x0112) is None  # no viewer turns it a second time
    top, bottom = np.asarray(photo)[10, 384], np.asarray(photo)[-10, 384]
    assert np.abs(top.astype(int) - RED).max() < 30 and np.abs(bottom.astype(int) - BLUE).max() < 30


def test_transparency_keeps_png_with_its_alpha():
    picture = Image.new("RGBA", (600, 400), (0, 128, 0, 0))
    picture.paste((0, 128, 0, 255), (100, 100, 500, 300))
    stored = keep(file_bytes(picture, "PNG")).stored
    assert stored.media_type == "image/png"
    photo = decoded(stored.photo)
    assert (photo.format, photo.mode, photo.size) == ("PNG", "RGBA", (600, 400))
    assert photo.getpixel((0, 0))[3] == 0 and decoded(stored.thumbnail).size == (THUMBNAIL_PIXELS, 171)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "BMP"])
def test_a_small_image_is_kept_losslessly_as_png_at_its_size(image_format):
    stored = keep(file_bytes(upright_picture(120, 90), image_format)).stored
    assert stored.media_type == "image/png"
    assert decoded(stored.photo).size == decoded(stored.thumbnail).size == (120, 90)


def test_the_model_reads_the_stored_photo_as_a_re_embedding_would():
    kept = keep(file_bytes(upright_picture(2000, 1500), "JPEG"))
    assert kept.model_input.shape == (3, 32, 32)
    assert np.array_equal(bytes_to_tensor(kept.stored.model_input), kept.model_input)
    # The photo read again gives the same input, up to JPEG's rounding.
    again = bytes_to_tensor(kept.stored.photo).int()
    assert (again - kept.model_input.int()).abs().max() <= 8
