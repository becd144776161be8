import io

import numpy as np
import pytest
import torch
from PIL import Image

from model_api.clip.preprocess import InvalidImageError, bytes_to_tensor


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_32px_png_is_passed_through_exactly() -> None:
    array = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    tensor = bytes_to_tensor(encode(Image.fromarray(array), "PNG"))
    assert torch.equal(tensor, torch.from_numpy(array).permute(2, 0, 1))


@pytest.mark.parametrize(
    "image, fmt",
    [
        (Image.new("RGBA", (50, 40), (255, 0, 0, 0)), "PNG"),
        (Image.new("P", (33, 70)), "GIF"),
        (Image.new("L", (640, 480), 128), "JPEG"),
        (Image.new("RGB", (4000, 3000), (0, 128, 255)), "JPEG"),
        (Image.new("RGB", (64, 64)), "WEBP"),
        (Image.new("RGB", (10, 10)), "BMP"),
        (Image.new("I;16", (40, 40)), "PNG"),
        (Image.new("CMYK", (40, 40)), "JPEG"),
    ],
)
def test_any_format_size_and_mode_becomes_32px_rgb(image: Image.Image, fmt: str) -> None:
    tensor = bytes_to_tensor(encode(image, fmt))
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.uint8


def test_transparent_pixels_become_white() -> None:
    tensor = bytes_to_tensor(encode(Image.new("RGBA", (32, 32), (255, 0, 0, 0)), "PNG"))
    assert tensor.eq(255).all()


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_non_images_are_rejected(data: bytes) -> None:
    with pytest.raises(InvalidImageError):
        bytes_to_tensor(data)


def test_truncated_image_is_rejected() -> None:
    data = encode(Image.new("RGB", (200, 200), (10, 20, 30)), "PNG")
    with pytest.raises(InvalidImageError):
        bytes_to_tensor(data[: len(data) // 2])


def test_decompression_bomb_is_rejected() -> None:
    bomb = encode(Image.new("1", (20_000, 20_000)), "PNG")  # 400 MP, a few KB on disk
    with pytest.raises(InvalidImageError, match="too large"):
        bytes_to_tensor(bomb)
