"""Where the model computes and in what precision: resolved once (`resolve_device`), then passed
down as an argument to training, inference and the index.

CPU: bfloat16 autocast doubled image throughput on a CPU whose oneDNN has bf16 kernels (AVX-512 or
AMX), and cut it several times over on an AVX2-only CPU where bf16 is emulated (BENCHMARKS.md,
inference speed), so bf16 is used only where it is native. CUDA: bf16 autocast where the GPU has
bf16 tensor cores (compute capability 8.0, Ampere, and later), else fp16, whose narrow range
needs the loss scaled in training. channels_last on both: on this CPU it cut a training step by
a third (REFERENCES.md), and it is the layout the GPUs' tensor-core convolutions take.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Literal, get_args

import torch

DeviceName = Literal["auto", "cpu", "cuda"]
DEVICE_CHOICES: tuple[str, ...] = get_args(DeviceName)


class DeviceUnavailableError(RuntimeError):
    """CUDA was asked for where torch sees no GPU."""


@functools.cache
def bf16_is_fast() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass(frozen=True)
class Device:
    torch_device: torch.device
    autocast_dtype: torch.dtype | None  # None: fp32 throughout
    memory_format: torch.memory_format = torch.channels_last

    @property
    def type(self) -> str:
        return self.torch_device.type

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    @property
    def scales_loss(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.autocast_dtype == torch.float16

    def describe(self) -> dict[str, str]:
        dtype = str(self.autocast_dtype).removeprefix("torch.")
        precision = "float32" if self.autocast_dtype is None else f"{dtype} autocast"
        return {"device": str(self.torch_device), "precision": precision}


def resolve_device(name: DeviceName = "auto", index: int = 0) -> Device:
    """name: "auto" (CUDA when torch sees a GPU, else the CPU), "cpu" or "cuda"; index: which GPU
    (torchrun's local rank), ignored on the CPU."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; expected one of {DEVICE_CHOICES}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return Device(torch.device("cpu"), torch.bfloat16 if bf16_is_fast() else None)
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(f"CUDA was asked for, but torch {torch.__version__} sees no GPU")
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f"GPU {index} was asked for, but torch sees {torch.cuda.device_count()}")
    bf16 = torch.cuda.get_device_capability(index) >= (8, 0)
    return Device(torch.device("cuda", index), torch.bfloat16 if bf16 else torch.float16)


def device_of(model: torch.nn.Module) -> Device:
    """The device a model's weights are on, with that device's precision."""
    where = next(model.parameters()).device
    return resolve_device(where.type, where.index or 0)
