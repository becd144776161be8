"""The image tower run by ONNX Runtime: `ImageEncoder`'s function in less time on a CPU without
native bf16, an upload and its mirror embedded in 9.3-9.4 against 10.7-11.3 ms and the gallery at
15-35% more images/s on machine B (BENCHMARKS.md, the image tower on ONNX Runtime). Every served
classification and every image the gallery indexes goes through it.

On a CPU with native bf16 PyTorch's bf16 autocast doubled the tower's throughput (BENCHMARKS.md,
inference speed) and fp32 graphs cannot match it, and on a GPU PyTorch is the runtime: so the
"auto" backend takes ONNX Runtime only where the device computes in fp32 on the CPU.

The graph ends at the tower's pooled features; the trained projection and standardisation stay
in PyTorch (`Clip.project_image`), one small product per image.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .files import write_atomically
from .hardware import device_of
from .image_encoder import ImageEncoder
from .model import Clip
from .onnx_runtime import open_session, quiet_exporter, weights_key

log = logging.getLogger(__name__)

ImageBackend = Literal["auto", "onnx", "torch"]
INPUT = "images"
OUTPUT = "features"
# What the exported graph computes; part of the cache key, so changing it re-exports.
GRAPH = "image-tower-features/v1"


def export(tower: ImageEncoder, path: Path) -> None:
    """Write the tower's graph, for any batch of (3, 32, 32) images, to `path`."""
    sample = torch.rand(2, 3, 32, 32)
    with quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            tower.eval(),
            (sample,),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    write_atomically(path, lambda tmp: program.save(str(tmp)))


def cached_graph(tower: ImageEncoder, cache_dir: Path) -> Path:
    """The tower's ONNX file in `cache_dir`, exported first if these weights have none yet."""
    path = Path(cache_dir) / f"image-tower-{weights_key(tower, GRAPH)}.onnx"
    if not path.exists():
        log.info("exporting the image tower to %s (once for these weights)", path)
        export(tower, path)
    return path


class OnnxImageTower(nn.Module):
    """Stands in for `Clip.visual`: the same (B, 3, 32, 32) floats in [0, 1] -> (B, output_dim)
    features. A module without parameters, so the model around it moves and switches modes as
    before; it runs on the CPU whatever the input's memory layout."""

    def __init__(self, reference: ImageEncoder, cache_dir: Path, threads: int = 1) -> None:
        super().__init__()
        self.output_dim = reference.output_dim
        self.session = open_session(cached_graph(reference, cache_dir), threads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.session.run([OUTPUT], {INPUT: images.float().contiguous().numpy()})[0]
        return torch.from_numpy(features)


def runs_on_onnx(model: Clip, backend: ImageBackend) -> bool:
    """Whether `backend` puts the image tower on ONNX Runtime for this model where it lies."""
    if backend == "auto":
        device = device_of(model)
        return device.type == "cpu" and device.autocast_dtype is None
    return backend == "onnx"


def use_image_backend(model: Clip, backend: ImageBackend, cache_dir: Path, threads: int = 1) -> Clip:
    """Run `model`'s image tower on `backend` ("auto": `runs_on_onnx`), for inference only: the
    trained weights leave the model with the PyTorch tower. -> the same model."""
    if runs_on_onnx(model, backend):
        if device_of(model).type != "cpu":
            raise ValueError("the onnx image backend runs on the CPU; use CLIP_IMAGE_BACKEND=torch with a GPU")
        model.visual = OnnxImageTower(model.visual, cache_dir, threads)
    return model
