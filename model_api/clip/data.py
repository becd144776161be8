"""CIFAR-10 as uint8 tensors: loaded with `datasets`, decoded once, cached on disk.

The source is a hub name (default `uoft-cs/cifar10`) or a local copy in the hub's layout.
The first load decodes every image and writes `.npy` arrays keyed by the source, so later
runs start in seconds; each image's pixel attributes (`attributes`) are read once and cached
beside them, keyed by the reader's version. Augmentation runs on whole batches of tensors, not per-image PIL.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .attributes import ATTRIBUTES_VERSION, attribute_codes, rec601_luma
from .files import write_atomically, write_text_atomically

HUB_NAME = "uoft-cs/cifar10"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "clip-cifar10"


class DataUnavailableError(RuntimeError):
    """The dataset could not be loaded from its source (offline hub, wrong path...)."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, 3, 32, 32) uint8
    labels: torch.Tensor  # (N,) int64
    attributes: torch.Tensor  # (N, 5) int8 attribute codes, columns attributes.CODE_FIELDS

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index], self.attributes[index])


@dataclass(frozen=True)
class Cifar10:
    train: Split
    test: Split
    classes: tuple[str, ...]
    source: str
    fingerprint: str  # sha256 of the decoded arrays: identifies the data a model saw

    def train_val(self, val_size: int, seed: int = 0) -> tuple[Split, Split]:
        """A fixed held-out slice of train for model selection; test stays for reporting."""
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed))
        return self.train.subset(order[val_size:]), self.train.subset(order[:val_size])


def resolve_source(source: str) -> str:
    """A local copy's path becomes absolute (the cache is keyed by it); a hub name stays as is."""
    return str(Path(source).resolve()) if Path(source).exists() else source


def _cache_dir(source: str, cache_root: Path) -> Path:
    return cache_root / hashlib.sha256(source.encode()).hexdigest()[:16]


def _decode(rows: list[dict]) -> np.ndarray:
    """Hub `Image` cells ({'bytes', 'path'}) -> (N, 3, 32, 32) uint8."""
    images = [np.asarray(Image.open(io.BytesIO(row["bytes"])).convert("RGB")) for row in rows]
    return np.stack(images).transpose(0, 3, 1, 2).copy()


def _download(source: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    import datasets  # heavy import, only needed on a cache miss

    try:
        dataset = datasets.load_dataset(source).cast_column("img", datasets.Image(decode=False))
    except Exception as error:  # the library raises many types for "unreachable"
        raise DataUnavailableError(f"could not load CIFAR-10 from {source!r}: {error}") from error
    arrays = {}
    for split in ("train", "test"):
        arrays[f"{split}_images"] = _decode(dataset[split]["img"])
        arrays[f"{split}_labels"] = np.asarray(dataset[split]["label"], dtype=np.int64)
    return arrays, tuple(dataset["train"].features["label"].names)


def _fingerprint(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(arrays[name].tobytes())
    return digest.hexdigest()


def load_cifar10(source: str = HUB_NAME, cache_root: Path = DEFAULT_CACHE_DIR) -> Cifar10:
    """source: the hub name or a local copy in the hub's layout; cache_root: where decoded arrays are kept."""
    source = resolve_source(source)
    cache = _cache_dir(source, cache_root)
    names = ("train_images", "train_labels", "test_images", "test_labels")
    if (cache / "meta.json").exists():
        meta = json.loads((cache / "meta.json").read_text())
        arrays = {name: np.load(cache / f"{name}.npy", allow_pickle=False) for name in names}
    else:
        arrays, classes = _download(source)
        meta = {"source": source, "classes": list(classes), "fingerprint": _fingerprint(arrays)}
        _write_cache(cache, arrays, meta)
    splits = {split: _split(cache, arrays, split) for split in ("train", "test")}
    return Cifar10(
        train=splits["train"],
        test=splits["test"],
        classes=tuple(meta["classes"]),
        source=source,
        fingerprint=meta["fingerprint"],
    )


def _split(cache: Path, arrays: dict[str, np.ndarray], split: str) -> Split:
    """A split with its attribute codes, read from the cache or read off the pixels and cached."""
    images = torch.from_numpy(arrays[f"{split}_images"])
    path = cache / f"{split}_attributes-v{ATTRIBUTES_VERSION}.npy"
    if path.exists():
        codes = np.load(path, allow_pickle=False)
    else:
        codes = attribute_codes(images)
        write_atomically(path, lambda tmp: np.save(tmp, codes, allow_pickle=False))
    return Split(images, torch.from_numpy(arrays[f"{split}_labels"]), torch.from_numpy(codes))


def _write_cache(cache: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Arrays first, meta.json last: a cache without meta.json is ignored."""
    for name, array in arrays.items():
        write_atomically(cache / f"{name}.npy", lambda tmp, array=array: np.save(tmp, array, allow_pickle=False))
    write_text_atomically(cache / "meta.json", json.dumps(meta))


def augment(
    images: torch.Tensor,
    translate: int,
    generator: torch.Generator,
    flipped: torch.Tensor | None = None,
    contrast_jitter: float = 0.0,
) -> torch.Tensor:
    """Horizontal flip, contrast jitter (`jitter_contrast`) and translation by up to `translate` px
    (reflect padding).

    images: (N, 3, H, W) uint8 on any device -> same shape, same device. flipped: (N,) bool, the
    images to mirror; None draws a fair coin for each. Each image gets its own draws, all from
    `generator` on the CPU, so a run augments alike on every device and every process.
    """
    if flipped is None:
        flipped = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flipped.to(images.device)[:, None, None, None], images.flip(-1), images)
    if contrast_jitter:
        images = jitter_contrast(images, contrast_jitter, generator)
    return translate_randomly(images, translate, generator)


def jitter_contrast(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Scale each image's contrast by a factor drawn from [1 - amount, 1 + amount] about its mean
    luma: every pixel moves along the line to that grey level, which keeps its hue and the image's
    mean luma (up to clipping at 0 and 255), what the attribute reader calls colours and light by."""
    factor = 1 + amount * (2 * torch.rand(len(images), generator=generator) - 1)
    grey = rec601_luma(images).float().mean((1, 2))  # (N,)
    pixels = images.float()
    centre = grey.view(-1, 1, 1, 1)
    jittered = centre + factor.to(images.device).view(-1, 1, 1, 1) * (pixels - centre)
    return jittered.round_().clamp_(0, 255).to(torch.uint8)


def translate_randomly(images: torch.Tensor, translate: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `translate` px each way, reflect-padded. The work is done per
    offset over whole groups of images, not per image."""
    if translate == 0:
        return images
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images.float(), (translate,) * 4, mode="reflect").to(images.dtype)
    out = torch.empty_like(images)
    dx = torch.randint(0, 2 * translate + 1, (n,), generator=generator).to(images.device)
    dy = torch.randint(0, 2 * translate + 1, (n,), generator=generator).to(images.device)
    for x in range(2 * translate + 1):
        for y in range(2 * translate + 1):
            chosen = (dx == x) & (dy == y)
            out[chosen] = padded[chosen, :, y : y + h, x : x + w]
    return out


def shift(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 moved dx px right and dy px down (each at most 1), the edge reflected
    into the gap: the fixed, one-pixel form of `translate_randomly`, for test-time views."""
    h, w = images.shape[-2:]
    padded = torch.nn.functional.pad(images.float(), (1, 1, 1, 1), mode="reflect").to(images.dtype)
    return padded[:, :, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 in [0, 1]: the model's input convention."""
    return images.float().div_(255)
