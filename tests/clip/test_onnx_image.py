"""The ONNX Runtime image tower against its PyTorch reference, on an initialised tiny CLIP with the
statistics a trained one would have."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from model_api.clip import hardware
from model_api.clip.hardware import Device
from model_api.clip.image_encoder import ImageEncoder
from model_api.clip.inference import embed_images
from model_api.clip.model import Clip
from model_api.clip.onnx_image import INT8_FILE, OnnxImageTower, cached_graph, quantize, use_image_backend
from tests.conftest import trained_looking_clip


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def models(onnx_dir: Path) -> tuple[Clip, Clip]:
    """(reference, fast): the same CLIP twice, the second with its image tower on ONNX Runtime."""
    reference = trained_looking_clip()
    return reference, use_image_backend(copy.deepcopy(reference), "onnx", onnx_dir, threads=2)


# The graphs compute in fp32: the torch around them and the reference must too, where the CPU
# would take bf16 autocast.
FP32 = Device(torch.device("cpu"), autocast_dtype=None)


def random_images(count: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(count))


@pytest.mark.parametrize("count", [1, 2, 300], ids=["one upload", "a pair", "more than a batch"])
def test_the_onnx_tower_embeds_images_as_the_reference_does(models, count: int) -> None:
    reference, fast = models
    assert isinstance(fast.visual, OnnxImageTower) and isinstance(reference.visual, ImageEncoder)
    images = random_images(count)
    for mirror in (True, False):
        torch.testing.assert_close(
            embed_images(fast, images, device=FP32, mirror=mirror),
            embed_images(reference, images, device=FP32, mirror=mirror),
            atol=1e-5,
            rtol=0,
        )


def test_the_export_is_kept_and_reused_and_other_weights_get_their_own(models, onnx_dir: Path) -> None:
    reference, _ = models
    (graph,) = onnx_dir.iterdir()
    written = graph.stat().st_mtime_ns
    assert cached_graph(reference.visual, onnx_dir) == graph and graph.stat().st_mtime_ns == written
    changed = copy.deepcopy(reference.visual)
    with torch.no_grad():
        changed.groups[0].first[0].weight[0, 0, 0, 0] += 1e-3
    other = cached_graph(changed, onnx_dir)
    assert other != graph and sorted(onnx_dir.iterdir()) == sorted([graph, other])


def test_auto_takes_onnx_only_where_the_cpu_computes_in_fp32(monkeypatch, onnx_dir: Path) -> None:
    monkeypatch.setattr(hardware, "bf16_is_fast", lambda: False)
    assert isinstance(use_image_backend(trained_looking_clip(), "auto", onnx_dir).visual, OnnxImageTower)
    monkeypatch.setattr(hardware, "bf16_is_fast", lambda: True)  # PyTorch's bf16 autocast is faster there
    assert isinstance(use_image_backend(trained_looking_clip(), "auto", onnx_dir).visual, ImageEncoder)
    assert isinstance(use_image_backend(trained_looking_clip(), "torch", onnx_dir).visual, ImageEncoder)


@pytest.fixture(scope="module")
def int8_checkpoint(models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the int8 graph of the reference's tower, calibrated on random images."""
    reference, _ = models
    folder = tmp_path_factory.mktemp("checkpoint")
    quantize(reference.visual, random_images(256), folder / INT8_FILE)
    return folder


def test_the_int8_tower_embeds_images_close_to_the_float_one(models, int8_checkpoint: Path, onnx_dir: Path) -> None:
    reference, _ = models
    int8 = use_image_backend(copy.deepcopy(reference), "onnx-int8", onnx_dir, checkpoint=int8_checkpoint)
    assert isinstance(int8.visual, OnnxImageTower) and int8.visual.int8
    images = random_images(300)
    cosines = (embed_images(int8, images, device=FP32) * embed_images(reference, images, device=FP32)).sum(dim=1)
    assert cosines.min() > 0.98


def test_auto_takes_the_int8_graph_only_when_it_was_made_from_these_weights(
    monkeypatch, models, int8_checkpoint: Path, onnx_dir: Path
) -> None:
    reference, _ = models
    for bf16 in (False, True):  # int8 beats PyTorch's bf16 autocast too (onnx_image.use_image_backend)
        monkeypatch.setattr(hardware, "bf16_is_fast", lambda bf16=bf16: bf16)
        assert use_image_backend(copy.deepcopy(reference), "auto", onnx_dir, checkpoint=int8_checkpoint).visual.int8
    assert not use_image_backend(copy.deepcopy(reference), "onnx", onnx_dir, checkpoint=int8_checkpoint).visual.int8
    other = copy.deepcopy(reference)
    with torch.no_grad():
        other.visual.groups[0].first[0].weight[0, 0, 0, 0] += 1e-3
    assert isinstance(
        use_image_backend(copy.deepcopy(other), "auto", onnx_dir, checkpoint=int8_checkpoint).visual, ImageEncoder
    )
    monkeypatch.setattr(hardware, "bf16_is_fast", lambda: False)
    assert not use_image_backend(copy.deepcopy(other), "auto", onnx_dir, checkpoint=int8_checkpoint).visual.int8
    with pytest.raises(FileNotFoundError, match=INT8_FILE):
        use_image_backend(other, "onnx-int8", onnx_dir, checkpoint=int8_checkpoint)
