"""Turn any image a user gives into the tensor the model was trained on.

Training images are 32x32 RGB decoded from the dataset's encoded bytes; serving and
`main.py` send every other image through `image_to_tensor`, so both paths agree exactly on a
32x32 RGB input and differ only in the resize that larger images need.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 32
# 64 megapixels covers any camera; PIL's own bomb check warns at ~89 MP and fails at twice that.
MAX_IMAGE_PIXELS = 64_000_000


class InvalidImageError(ValueError):
    """The bytes are not a decodable image (or are a decompression bomb)."""


def open_image(data: bytes, reduce_to: int = IMAGE_SIZE * 4) -> Image.Image:
    """Decode bytes into a fully loaded PIL image, or raise InvalidImageError. A JPEG may decode
    at a reduced scale whose sides stay at least `reduce_to` (or the whole image's)."""
    if not data:
        raise InvalidImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{width}x{height} pixels")
            # JPEG can decode straight at a reduced scale: 4000x3000 -> ~500x375, much faster.
            image.draft("RGB", (reduce_to, reduce_to))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImageError(f"image too large (limit {MAX_IMAGE_PIXELS:,} pixels): {error}") from error
    except UnidentifiedImageError as error:
        raise InvalidImageError("not a readable image: unknown or unsupported format") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(f"not a readable image: {error}") from error
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode (palette, alpha, greyscale, CMYK, 16-bit) -> RGB; transparency becomes white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    elif image.mode == "I;16" or image.mode == "I":
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 256).clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image of any size and mode -> (3, 32, 32) uint8, as training stores its images.

    Non-square images are centre-cropped to a square first (CIFAR objects fill the frame);
    the resize is antialiased so large photos do not alias.
    """
    image = to_rgb(image)
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = ImageOps.fit(image, (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())


def tensor_to_image(image: torch.Tensor) -> Image.Image:
    """(3, H, W) uint8 -> PIL RGB image."""
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def bytes_to_tensor(data: bytes) -> torch.Tensor:
    return image_to_tensor(open_image(data))
