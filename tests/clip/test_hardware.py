import pytest
import torch

from model_api.clip.hardware import DeviceUnavailableError, bf16_is_fast, device_of, resolve_device
from model_api.clip.model import Clip
from tests.conftest import CAPTIONS, TINY_MODEL, needs_cuda

without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a GPU")


def test_the_cpu_autocasts_to_bf16_exactly_where_it_has_bf16_kernels() -> None:
    cpu = resolve_device("cpu")
    assert cpu.torch_device == torch.device("cpu") and cpu.memory_format == torch.channels_last
    assert cpu.autocast_dtype == (torch.bfloat16 if bf16_is_fast() else None)
    assert not cpu.scales_loss


@without_cuda
def test_auto_is_the_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == resolve_device("cpu")


@without_cuda
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(DeviceUnavailableError, match="sees no GPU"):
        resolve_device("cuda")


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_a_model_computes_where_its_weights_are() -> None:
    assert device_of(Clip(TINY_MODEL, CAPTIONS)) == resolve_device("cpu")


def test_autocast_follows_the_device_precision() -> None:
    cpu = resolve_device("cpu")
    with cpu.autocast():
        assert torch.is_autocast_enabled("cpu") == (cpu.autocast_dtype is not None)


@needs_cuda
def test_auto_takes_the_gpu_in_bf16_where_it_has_bf16_tensor_cores_else_fp16() -> None:
    device = resolve_device("auto")
    assert device.type == "cuda" and device.memory_format == torch.channels_last
    bf16 = torch.cuda.get_device_capability(0) >= (8, 0)
    assert device.autocast_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert device.scales_loss == (not bf16)
    assert device_of(Clip(TINY_MODEL, CAPTIONS).to(device.torch_device)) == device
