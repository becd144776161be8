from dataclasses import replace

import torch
import torch.nn.functional as F

from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.hardware import resolve_device
from model_api.clip.inference import (
    compose_query,
    embed_images,
    embed_labels,
    embed_six_views,
    embed_texts,
    label_probabilities,
    refine_unsure,
)
from tests.conftest import needs_cuda


def unit(*values: float) -> torch.Tensor:
    return F.normalize(torch.tensor(values), dim=-1)


def test_a_plain_query_is_unchanged() -> None:
    torch.testing.assert_close(compose_query(unit(1.0, 2.0, 0.0)), unit(1.0, 2.0, 0.0))


def test_a_negative_moves_the_query_away_from_it() -> None:
    dog, grass = unit(1.0, 0.0, 0.0), unit(0.6, 0.8, 0.0)
    composed = compose_query(dog, negative=grass)
    assert composed @ grass < dog @ grass and composed @ dog > 0.5
    torch.testing.assert_close(composed.norm(), torch.tensor(1.0))


def test_a_refinement_weighs_the_image_and_the_words_alike() -> None:
    image, words = unit(1.0, 0.0), unit(0.0, 1.0)
    composed = compose_query(image, refinement=words)
    torch.testing.assert_close(composed @ image, composed @ words)


def test_shifted_views_of_a_uniform_image_change_nothing(tiny_checkpoint) -> None:
    """A one-coloured image looks the same moved by a pixel: its six views are its two."""
    model, _ = load_checkpoint(tiny_checkpoint)
    images = torch.tensor([[200, 30, 30], [20, 90, 220]], dtype=torch.uint8)[:, :, None, None].expand(2, 3, 32, 32)
    flip_averaged = embed_images(model, images)
    torch.testing.assert_close(embed_six_views(model, images, flip_averaged), flip_averaged, atol=1e-5, rtol=0)


def test_only_images_below_the_confidence_threshold_take_the_six_views(tiny_checkpoint, tiny_data) -> None:
    model, _ = load_checkpoint(tiny_checkpoint)
    images = tiny_data.test.images[:8]
    labels = embed_labels(model, list(tiny_data.classes))
    embeddings = embed_images(model, images)
    six = embed_six_views(model, images, embeddings)
    assert ((six - embeddings).abs().amax(dim=1) > 1e-4).all()  # the views differ on real images
    confidence = label_probabilities(model, embeddings, labels).amax(dim=1)
    below = confidence.median().item()
    refined = refine_unsure(model, images, embeddings, labels, below)
    unsure = confidence < below
    assert unsure.any() and not unsure.all()
    torch.testing.assert_close(refined[unsure], six[unsure], atol=1e-5, rtol=0)
    assert torch.equal(refined[~unsure], embeddings[~unsure])
    assert torch.equal(refine_unsure(model, images, embeddings, labels, below=0), embeddings)


def test_each_label_is_the_mean_of_its_own_prompts(tiny_checkpoint) -> None:
    """A class's ensemble (its words) and a typed label's (every template) differ in length; each
    label gets the mean of its own."""
    model, _ = load_checkpoint(tiny_checkpoint)
    labels = [model.captions.classes[0], "a unicorn", model.captions.classes[1]]
    ensembles = [model.captions.label_prompts(label) for label in labels]
    assert len({len(ensemble) for ensemble in ensembles}) > 1
    want = torch.stack([F.normalize(embed_texts(model, ensemble).mean(dim=0), dim=-1) for ensemble in ensembles])
    torch.testing.assert_close(embed_labels(model, labels), want, atol=1e-5, rtol=0)


@needs_cuda
def test_the_gpu_embeds_as_the_cpu_does_and_hands_back_cpu_tensors(tiny_checkpoint, tiny_data) -> None:
    images, labels = tiny_data.test.images[:16], ["cat", "dog"]
    fp32 = replace(resolve_device("cpu"), autocast_dtype=None)  # the reference
    on_cpu, _ = load_checkpoint(tiny_checkpoint, device=fp32)
    on_gpu, _ = load_checkpoint(tiny_checkpoint, device=resolve_device("cuda"))
    want, got = embed_images(on_cpu, images, device=fp32), embed_images(on_gpu, images)
    assert got.device.type == "cpu" and (got * want).sum(dim=1).min() > 0.99  # cosine, through bf16/fp16
    # CPU image vectors scored at the temperature of a model on the GPU, as the API's classify does.
    probabilities = label_probabilities(on_gpu, got, embed_labels(on_gpu, labels))
    reference = label_probabilities(on_cpu, want, embed_labels(on_cpu, labels))
    torch.testing.assert_close(probabilities, reference, atol=0.05, rtol=0)
