"""Images that are none of CIFAR-10's classes, for the out-of-distribution benchmark.

No photo can be downloaded here, so they are of two kinds, each seeded and rebuilt on every run
(none is committed):

- drawn: procedurally, at 128x128 and then brought to 32x32 as an upload is (`image_to_tensor`):
  uniform pixel noise (at 32x32), smooth colour blobs, linear gradients, flat geometric shapes, printed text and
  stripes or checkerboards;
- photos: random square crops of the three photographs that installed packages ship, none of a
  CIFAR-10 class: Grace Hopper's portrait (matplotlib's sample data, a US Navy photo in the public
  domain), a Chinese temple and a flower (scikit-learn's `load_sample_images`, CC BY 2.0, credited
  in sklearn/datasets/images/README.txt), plus each whole photo once, as an upload would be.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import sklearn.datasets
import torch
from PIL import Image, ImageDraw, ImageFont

from model_api.clip.preprocess import image_to_tensor

CANVAS = 128  # drawn at this size, then resized as uploads are, so edges are antialiased alike
PHOTOS = {
    "portrait": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
    "temple": Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
    "flower": Path(sklearn.datasets.__file__).parent / "images" / "flower.jpg",
}
WORDS = ("hello", "SALE", "42", "invoice", "Monday", "x+y=z", "STOP", "draft", "café", "#7")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(value) for value in rng.integers(0, 256, 3))


def _noise(rng: np.random.Generator) -> Image.Image:
    """Independent pixels at the model's 32x32: drawn at 128 they would shrink to flat grey."""
    pixels = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return pixels.resize((CANVAS, CANVAS), Image.Resampling.NEAREST)


def _blobs(rng: np.random.Generator) -> Image.Image:
    """Coarse random colours smoothly upsampled: blurry colour fields."""
    coarse = rng.integers(0, 256, (int(rng.integers(2, 6)),) * 2 + (3,), dtype=np.uint8)
    return Image.fromarray(coarse).resize((CANVAS, CANVAS), Image.Resampling.BICUBIC)


def _gradient(rng: np.random.Generator) -> Image.Image:
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:CANVAS, 0:CANVAS] / (CANVAS - 1)
    t = ((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) + 0.71) / 1.42  # (H, W) in [0, 1]
    start, end = np.array(_colour(rng)), np.array(_colour(rng))
    return Image.fromarray((start + t[..., None] * (end - start)).astype(np.uint8))


def _shapes(rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (CANVAS, CANVAS), _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 5))):
        box = sorted(rng.integers(0, CANVAS, 2)), sorted(rng.integers(0, CANVAS, 2))
        corners = [box[0][0], box[1][0], box[0][1] + 8, box[1][1] + 8]
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse(corners, fill=_colour(rng))
        elif kind == 1:
            draw.rectangle(corners, fill=_colour(rng))
        else:
            draw.polygon([tuple(int(v) for v in rng.integers(0, CANVAS, 2)) for _ in range(3)], fill=_colour(rng))
    return image


def _text(rng: np.random.Generator) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(180, 256, 3))
    image = Image.new("RGB", (CANVAS, CANVAS), background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=int(rng.integers(28, 56)))
    for line in range(int(rng.integers(1, 4))):
        word = WORDS[int(rng.integers(len(WORDS)))]
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        draw.text((int(rng.integers(0, 30)), 8 + line * 40), word, fill=ink, font=font)
    return image


def _pattern(rng: np.random.Generator) -> Image.Image:
    """Stripes (any angle) or a checkerboard, in two colours."""
    period = int(rng.integers(6, 40))
    y, x = np.mgrid[0:CANVAS, 0:CANVAS]
    if rng.random() < 0.5:
        mask = ((x // period) + (y // period)) % 2
    else:
        angle = rng.uniform(0, np.pi)
        mask = ((x * np.cos(angle) + y * np.sin(angle)) // period) % 2
    colours = np.array([_colour(rng), _colour(rng)], dtype=np.uint8)
    return Image.fromarray(colours[mask.astype(int)])


DRAWN: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "noise": _noise,
    "blobs": _blobs,
    "gradient": _gradient,
    "shapes": _shapes,
    "text": _text,
    "pattern": _pattern,
}


def drawn_images(per_kind: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """kind -> (per_kind, 3, 32, 32) uint8."""
    rng = np.random.default_rng(seed)
    return {kind: torch.stack([image_to_tensor(draw(rng)) for _ in range(per_kind)]) for kind, draw in DRAWN.items()}


def _random_crop(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A square of 25% to 100% of the shorter side, anywhere in the photo."""
    side = int(min(photo.size) * rng.uniform(0.25, 1.0))
    left, top = (int(rng.integers(0, extent - side + 1)) for extent in photo.size)
    return photo.crop((left, top, left + side, top + side))


def photo_images(crops_per_photo: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """photo name -> (1 + crops_per_photo, 3, 32, 32) uint8: the whole photo, then its crops."""
    rng = np.random.default_rng(seed)
    result = {}
    for name, path in PHOTOS.items():
        with Image.open(path) as opened:
            photo = opened.convert("RGB")
        views = [photo] + [_random_crop(photo, rng) for _ in range(crops_per_photo)]
        result[name] = torch.stack([image_to_tensor(view) for view in views])
    return result
