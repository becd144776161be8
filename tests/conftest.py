"""Shared fixtures: a tiny CIFAR-like dataset in the hub's parquet layout and a tiny trained
checkpoint, both built once per test session in a temporary directory."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_api.clip.captions import CIFAR10_CAPTIONS, CaptionSet
from model_api.clip.config import ClipConfig, ImageEncoderConfig, TextEncoderConfig, TrainConfig
from model_api.clip.data import load_cifar10
from model_api.clip.hardware import Device
from tests.postgres import own_postgres, postgres_server, postgres_url  # noqa: F401 - a real PostgreSQL, for every folder

CAPTIONS = CaptionSet.read(CIFAR10_CAPTIONS)  # the shipped caption set: the tiny data has its classes

TINY_MODEL = ClipConfig(
    image=ImageEncoderConfig(whitening_width=8, widths=(8, 16, 16)),
    text=TextEncoderConfig(kind="scratch", width=32, layers=1, heads=2, context_length=48),
    embed_dim=16,
)
# The frozen pretrained text tower with the tiny image tower: only the projection trains.
TINY_MINILM_MODEL = ClipConfig(image=TINY_MODEL.image, text=TextEncoderConfig(kind="minilm"), embed_dim=16)
# Class captions only: on 200 synthetic images the shared tiny checkpoint must learn its classes
# reliably; training with attribute captions has tests of its own (tests/clip/test_train.py).
TINY_RECIPE = TrainConfig(
    epochs=12,
    batch_size=32,
    val_size=40,
    captions_per_step=32,
    ema_start_epoch=1,
    attribute_caption_share=0.0,
)
# fp32 on the CPU: the tiny runs train alike on every CPU, with bf16 kernels or without.
TINY_DEVICE = Device(torch.device("cpu"), autocast_dtype=None)
# Tests of the GPU path run where torch sees one, and skip elsewhere.
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no GPU")


def synthetic_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """32x32 RGB whose colour and stripe direction depend on the class, plus noise."""
    hue = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], dtype=np.float64)
    stripes = (np.arange(32) // (2 + label % 3)) % 2
    pattern = stripes[None, :] if label % 2 else stripes[:, None]
    image = hue[None, None, :] * (0.6 + 0.4 * pattern[..., None]) + rng.normal(0, 12, (32, 32, 3))
    return image.clip(0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tiny_cifar(root: Path, train_per_class: int = 20, test_per_class: int = 5) -> Path:
    """Writes root/plain_text/{train,test}-00000-of-00001.parquet like uoft-cs/cifar10."""
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CAPTIONS.classes))})
    rng = np.random.default_rng(0)
    (root / "plain_text").mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [label for label in range(10) for _ in range(per_class)]
        images = [{"bytes": png_bytes(synthetic_image(label, rng)), "path": None} for label in labels]
        dataset = datasets.Dataset.from_dict({"img": images, "label": labels}, features=features)
        dataset.to_parquet(str(root / "plain_text" / f"{split}-00000-of-00001.parquet"))
    return root


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny_cifar"))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep every decoded-data cache of the test session out of the user's home: in-process
    loads take it as an argument; subprocesses (main.py, the servers) inherit the variable."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["CLIP_CACHE_DIR"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_data(tiny_data_dir: Path, isolated_cache: Path):
    return load_cifar10(str(tiny_data_dir), isolated_cache)


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny training run; its checkpoint is `tiny_run / 'best'`."""
    from model_api.clip.train import Trainer

    output = tmp_path_factory.mktemp("tiny_run")
    Trainer(tiny_data, TINY_MODEL, TINY_RECIPE, output, CAPTIONS, device=TINY_DEVICE).fit()
    return output


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: Path, tiny_data) -> Path:
    """The tiny run's best checkpoint, with its out-of-distribution calibration beside the weights
    as benchmarks/ood_benchmark.py writes it for the shipped one."""
    from model_api.clip.checkpoint import load_checkpoint, weights_sha256
    from model_api.clip.ood import calibrate, save_calibration

    checkpoint = tiny_run / "best"
    model, _ = load_checkpoint(checkpoint)
    save_calibration(calibrate(model, tiny_data, TINY_RECIPE.val_size, weights_sha256(checkpoint))[0], checkpoint)
    return checkpoint


def trained_looking_clip(config: ClipConfig | None = None, seed: int = 0):
    """An initialised CLIP (the tiny one by default) whose norms carry statistics a trained one
    would have, so that a graph or a join must carry them too; ready for inference."""
    from model_api.clip.inference import prepare_for_inference
    from model_api.clip.model import Clip

    torch.manual_seed(seed)
    model = Clip(config or TINY_MODEL, CAPTIONS)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            if module.bias is not None:
                torch.nn.init.normal_(module.bias)
    with torch.no_grad():
        model.logit_scale.fill_(2.0 + seed)
    return prepare_for_inference(model)
