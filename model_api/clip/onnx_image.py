"""The image tower run by ONNX Runtime: `Clip.visual`'s function in less time on a CPU, in float
where the CPU has no native bf16 (an upload and its mirror embedded in 9.3-9.4 against 10.7-11.3
ms on machine B; BENCHMARKS.md, the image tower on ONNX Runtime), and in int8 on any CPU.

With int8 weights and activations (`quantize`) the tower embeds twice as many images a second
as the float graph on machine B, and on machine A, whose CPU has native bf16 and VNNI, an upload
in 2.6 against 8.3 ms under PyTorch's bf16 autocast (BENCHMARKS.md, the image tower in int8). That
graph is calibrated on training images, so it is made once per checkpoint, where the data is,
and kept beside the weights (`INT8_FILE`). Without it, PyTorch's bf16 autocast beats the float
graph where the CPU has native bf16 (BENCHMARKS.md, inference speed); on a GPU PyTorch is the
runtime. `use_image_backend` chooses.

The graph ends at the tower's pooled features; the trained projection and standardisation stay
in PyTorch (`Clip.project_image`), one small product per image.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import onnxruntime
import torch
from torch import nn

from .data import to_float
from .files import write_atomically
from .hardware import device_of
from .model import Clip, ImageTower
from .onnx_runtime import open_session, quiet_exporter, weights_key

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

ImageBackend = Literal["auto", "onnx", "onnx-int8", "torch"]
INPUT = "images"
OUTPUT = "features"
# What the exported graph computes; part of the cache key, so changing it re-exports.
GRAPH = "image-tower-features/v1"
INT8_GRAPH = "image-tower-features-int8/v1"
INT8_FILE = "image_tower_int8.onnx"  # in the checkpoint directory
WEIGHTS_KEY = "weights_key"  # the int8 graph's metadata: `weights_key` of the tower it was made from


def export(tower: ImageTower, path: Path) -> None:
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


def cached_graph(tower: ImageTower, cache_dir: Path) -> Path:
    """The tower's ONNX file in `cache_dir`, exported first if these weights have none yet."""
    path = Path(cache_dir) / f"image-tower-{weights_key(tower, GRAPH)}.onnx"
    if not path.exists():
        log.info("exporting the image tower to %s (once for these weights)", path)
        export(tower, path)
    return path


def quantize(tower: ImageTower, images: torch.Tensor, path: Path) -> Path:
    """Write the tower with int8 weights (per output channel) and int8 activations to `path`:
    ONNX Runtime's static quantisation, its activation ranges calibrated on `images` ((N, 3, 32,
    32) uint8 training images) and their mirrors. The frozen whitening conv stays in float: its
    filters scale the image's faint directions up to ~45 times, and one activation scale over
    channels that far apart left embeddings at a mean cosine of 0.44 with the float tower's,
    against 0.9995 with that conv kept (BENCHMARKS.md, the image tower in int8)."""
    # Imported here: they take a second, which a server that only loads the result never pays.
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Calibration(CalibrationDataReader):
        def __init__(self, images: torch.Tensor) -> None:
            views = torch.cat([images, images.flip(-1)])
            self.batches = (to_float(views[start : start + 64]).numpy() for start in range(0, len(views), 64))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    with tempfile.TemporaryDirectory() as folder:
        graph, prepared, int8 = (Path(folder) / f"{name}.onnx" for name in ("float", "prepared", "int8"))
        export(tower, graph)
        quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
        whitening = whitening_convs(onnx.load(str(prepared)))
        quantize_static(
            str(prepared),
            str(int8),
            Calibration(images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=whitening,
        )
        quantized = onnx.load(str(int8))
    onnx.helper.set_model_props(quantized, {WEIGHTS_KEY: weights_key(tower, INT8_GRAPH)})
    return write_atomically(Path(path), lambda tmp: onnx.save(quantized, str(tmp)))


def whitening_convs(graph: onnx.ModelProto) -> list[str]:
    """The names of the whitening convs: the only convs whose filters read the image's three
    channels (one per tower of a joint CLIP)."""
    channels_in = {weights.name: weights.dims[1] for weights in graph.graph.initializer if len(weights.dims) == 4}
    return [node.name for node in graph.graph.node if node.op_type == "Conv" and channels_in.get(node.input[1]) == 3]


def int8_session(tower: ImageTower, directory: Path, threads: int) -> onnxruntime.InferenceSession | None:
    """A session of the checkpoint's int8 graph, if it has one made from these weights."""
    path = Path(directory) / INT8_FILE
    if not path.exists():
        return None
    session = open_session(path, threads)
    made_from = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
    return session if made_from == weights_key(tower, INT8_GRAPH) else None


class OnnxImageTower(nn.Module):
    """Stands in for `Clip.visual`: the same (B, 3, 32, 32) floats in [0, 1] -> (B, output_dim)
    features. A module without parameters, so the model around it moves and switches modes as
    before; it runs on the CPU whatever the input's memory layout. `int8`: a session of the
    reference's int8 graph (`int8_session`), run instead of its float export."""

    def __init__(
        self,
        reference: ImageTower,
        cache_dir: Path,
        threads: int = 1,
        int8: onnxruntime.InferenceSession | None = None,
    ) -> None:
        super().__init__()
        self.output_dim = reference.output_dim
        self.int8 = int8 is not None
        self.session = int8 or open_session(cached_graph(reference, cache_dir), threads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.session.run([OUTPUT], {INPUT: images.float().contiguous().numpy()})[0]
        return torch.from_numpy(features)


def use_image_backend(
    model: Clip, backend: ImageBackend, cache_dir: Path, threads: int = 1, checkpoint: Path | None = None
) -> Clip:
    """Run `model`'s image tower on `backend`, for inference only: the trained weights leave the
    model with the PyTorch tower. -> the same model.

    "auto" on a CPU takes `checkpoint`'s int8 graph of these weights wherever it has one: an
    upload in 2.6 against PyTorch's 8.3 ms even on a CPU with native bf16 (BENCHMARKS.md, the
    image tower in int8). Without one, the float graph where the CPU computes in fp32 and
    PyTorch's bf16 autocast where it has native bf16; on a GPU, always PyTorch."""
    device = device_of(model)
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return model
    if device.type != "cpu":
        raise ValueError("the onnx image backends run on the CPU; use CLIP_IMAGE_BACKEND=torch with a GPU")
    int8 = int8_session(model.visual, checkpoint, threads) if checkpoint is not None and backend != "onnx" else None
    if backend == "onnx-int8" and int8 is None:
        raise FileNotFoundError(
            f"no {INT8_FILE} made from these weights in {checkpoint}: "
            "make it with benchmarks/quantize_image_tower.py, or serve CLIP_IMAGE_BACKEND=onnx"
        )
    if backend == "auto" and int8 is None and device.autocast_dtype is not None:
        return model
    model.visual = OnnxImageTower(model.visual, cache_dir, threads, int8)
    return model
