from dataclasses import replace

import torch

from model_api.clip.hardware import bf16_is_fast, resolve_device
from model_api.clip.inference import inference_mode
from model_api.clip.model import Clip
from tests.conftest import CAPTIONS, TINY_MODEL


def test_towers_return_unit_vectors_of_the_embedding_size() -> None:
    model = Clip(TINY_MODEL, CAPTIONS).eval()
    images = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        image_embeddings = model.encode_image(images)
        text_embeddings = model.encode_text(["a cat", "a very long caption " * 10, ""])
    assert image_embeddings.shape == (5, TINY_MODEL.embed_dim)
    assert text_embeddings.shape == (3, TINY_MODEL.embed_dim)
    torch.testing.assert_close(image_embeddings.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(text_embeddings.norm(dim=-1), torch.ones(3))


def test_forward_returns_embeddings_and_clamped_scale() -> None:
    model = Clip(TINY_MODEL, CAPTIONS)
    text_inputs = model.text.prepare(["a", "b"])
    image_embeddings, text_embeddings, scale = model(torch.rand(4, 3, 32, 32), text_inputs)
    assert image_embeddings.shape == (4, TINY_MODEL.embed_dim) and text_embeddings.shape == (2, TINY_MODEL.embed_dim)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == TINY_MODEL.max_logit_scale


def test_text_padding_does_not_change_the_embedding() -> None:
    model = Clip(TINY_MODEL, CAPTIONS).eval()
    with torch.no_grad():
        alone = model.encode_text(["a dog"])
        beside_long = model.encode_text(["a dog", "a much longer caption about a dog"])[:1]
    torch.testing.assert_close(alone, beside_long, atol=1e-5, rtol=1e-5)


def test_whitening_decorrelates_patches() -> None:
    model = Clip(TINY_MODEL, CAPTIONS)
    images = torch.rand(64, 3, 32, 32) * torch.linspace(0.2, 1, 32)  # correlated ramp
    model.visual.init_whitening(images)
    with torch.no_grad():
        out = model.visual.whiten((images - model.visual.mean) / model.visual.std)
    half = TINY_MODEL.image.whitening_width // 2
    channels = out[:, :half].transpose(0, 1).reshape(half, -1)
    channels = channels - channels.mean(dim=1, keepdim=True)
    covariance = channels @ channels.T / channels.shape[1]
    off_diagonal = covariance - torch.diag(covariance.diag())
    assert off_diagonal.abs().max() < 0.05 * covariance.diag().max()


def test_bf16_autocast_runs_exactly_where_the_cpu_has_bf16_kernels() -> None:
    # Emulated bf16 made image encoding 8x slower on an AVX2-only CPU (BENCHMARKS.md).
    cpu = resolve_device("cpu")
    with inference_mode(cpu):
        assert torch.is_autocast_enabled("cpu") == bf16_is_fast()
        assert not bf16_is_fast() or torch.get_autocast_dtype("cpu") == torch.bfloat16
    with inference_mode(replace(cpu, autocast_dtype=None)):
        assert not torch.is_autocast_enabled("cpu")
