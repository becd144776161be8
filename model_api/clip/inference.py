"""Batched, gradient-free encoding and zero-shot classification, on the model's device.

channels_last memory, and bfloat16 autocast where the CPU has bf16 kernels (`hardware`), gave
the largest measured CPU speedups for this network (see BENCHMARKS.md); both keep embeddings
within rounding of fp32. `device` (a `hardware.Device`) says where and in what precision the
model computes; `None` means the device its weights are on, in that device's precision. Images
travel to it as uint8, batch by batch; embeddings come back to the CPU, where the store, the
numpy index and the metrics are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from .data import shift, to_float
from .hardware import Device, device_of, resolve_device
from .model import Clip

Ranking = list[tuple[str, float]]  # (label, probability), most likely first

# How `embed_images` makes the vectors the product stores: part of a stored vector's key, so a
# change of method re-embeds the gallery as a change of weights does.
IMAGE_EMBEDDING = "flip-averaged"

# airbench94's test-time views beyond the mirror (`embed_six_views`): the image moved by these
# (dx, dy), each shifted pair weighing SHIFTED_WEIGHT of the average.
SHIFTED_VIEWS = ((-1, -1), (1, 1))
SHIFTED_WEIGHT = 0.25
# Classification takes the six views for an image whose top probability is below this
# (`refine_unsure`): the least sure 10% of the shipped checkpoint's validation images, scored
# against its classes' words (`CaptionSet.label_prompts`; 0.65 against the class names alone).
# Refining 10% scored as refining a fifth did within one TEST image, for half the extra tower
# work (BENCHMARKS.md, six views for the unsure).
UNSURE_BELOW = 0.72


@contextlib.contextmanager
def inference_mode(device: Device | None = None) -> Iterator[None]:
    """No autograd, and the device's autocast (default: the CPU's)."""
    with torch.inference_mode(), (device or resolve_device("cpu")).autocast():
        yield


def prepare_for_inference(model: Clip, device: Device | None = None) -> Clip:
    """Eval mode, on the device (default: the CPU), in its memory format: do this once after loading."""
    device = device or resolve_device("cpu")
    return model.eval().to(device.torch_device, memory_format=device.memory_format)


def embed_images(
    model: Clip, images: torch.Tensor, batch_size: int = 256, device: Device | None = None, mirror: bool = True
) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 -> (N, D) float32 unit vectors.

    With `mirror` (what the product serves) each image's embedding is averaged with its mirror
    image's (`embed_views`): airbench's flip test-time augmentation, better zero-shot accuracy
    and retrieval for twice the encoding work (BENCHMARKS.md). The gallery pays that once when
    it indexes; one upload hardly notices. `mirror=False` encodes the image alone.
    """
    views = _encode(model, images, batch_size, device, mirror)  # (N, V, D)
    return average_views(model, views[:, 0], views[:, 1]) if mirror else views[:, 0]


def embed_views(
    model: Clip, images: torch.Tensor, batch_size: int = 256, device: Device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 32, 32) uint8 -> the (N, D) unit embeddings of the images and of their mirror
    images, for callers that score one view and the served average side by side."""
    views = _encode(model, images, batch_size, device, mirror=True)
    return views[:, 0], views[:, 1]


def _encode(model: Clip, images: torch.Tensor, batch_size: int, device: Device | None, mirror: bool) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 -> (N, V, D): V = 2 (image, mirror image) with `mirror`, else 1. An
    image and its mirror go through the tower in the same batch: one forward pass for both."""
    device = device or device_of(model)
    views = 2 if mirror else 1
    chunks = []
    with inference_mode(device):
        for start in range(0, len(images), batch_size):
            batch = to_float(images[start : start + batch_size].to(device.torch_device))
            if mirror:
                batch = torch.cat([batch, batch.flip(-1)])
            embeddings = model.encode_image(batch.contiguous(memory_format=device.memory_format))  # (V*B, D)
            chunks.append(torch.stack(embeddings.chunk(views), dim=1).cpu())  # (B, V, D)
    return torch.cat(chunks) if chunks else torch.empty(0, views, model.config.dim)


def average_views(model: Clip, embeddings: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """The flip-averaged embedding, from the (N, D) embeddings of images and of their mirrors."""
    return model.unit(embeddings + mirrored)


def embed_six_views(
    model: Clip, images: torch.Tensor, flip_averaged: torch.Tensor, device: Device | None = None
) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 images and their (N, D) `embed_images` vectors -> (N, D) unit vectors
    over airbench94's six test-time views: the image and the image moved one pixel up-left and
    one down-right, each with its mirror; the unshifted pair weighs half, each shifted pair a
    quarter. Both shifted pairs of every image go through the tower in one pass."""
    shifted = torch.cat([shift(images, dx, dy) for dx, dy in SHIFTED_VIEWS])
    pairs = embed_images(model, shifted, device=device).view(len(SHIFTED_VIEWS), len(images), -1)
    unshifted_weight = 1 - SHIFTED_WEIGHT * len(SHIFTED_VIEWS)
    return model.unit(unshifted_weight * flip_averaged + SHIFTED_WEIGHT * pairs.sum(0))


def refine_unsure(
    model: Clip,
    images: torch.Tensor,
    embeddings: torch.Tensor,
    label_embeddings: torch.Tensor,
    below: float = UNSURE_BELOW,
    device: Device | None = None,
) -> torch.Tensor:
    """Test-time augmentation only where the model is unsure: the (N, D) `embed_images` vectors
    of `images`, those whose top probability over the labels is below `below` replaced by their
    six-view vectors (`embed_six_views`); `below=0` changes none. -> (N, D)"""
    unsure = label_probabilities(model, embeddings, label_embeddings).amax(dim=1) < below
    if not unsure.any():
        return embeddings
    refined = embeddings.clone()
    refined[unsure] = embed_six_views(model, images[unsure], embeddings[unsure], device)
    return refined


def embed_texts(model: Clip, texts: Sequence[str]) -> torch.Tensor:
    """Texts -> (N, D) float32 unit vectors.

    In float32 on any device, without the autocast images get: the frozen sentence tower runs in
    float32 anyway, and its projection, one (384, D) matrix, took 2.6 times as long under bf16
    autocast on the CPU (125 against 47 us for a lone query, the search's first-seen path), for
    nothing at that size. The scratch tower is small enough for float32 too."""
    with torch.inference_mode():
        return model.encode_text(list(texts)).cpu()


def embed_labels(model: Clip, labels: Sequence[str]) -> torch.Tensor:
    """One embedding per label: the renormalised mean over its prompt ensemble
    (`CaptionSet.label_prompts` of the model's caption set). -> (L, D)"""
    ensembles = [model.captions.label_prompts(label) for label in labels]
    per_prompt = embed_texts(model, [prompt for ensemble in ensembles for prompt in ensemble])  # (P, D)
    means = [prompts.mean(dim=0) for prompts in per_prompt.split([len(ensemble) for ensemble in ensembles])]
    return torch.nn.functional.normalize(torch.stack(means), dim=-1)


def label_probabilities(model: Clip, image_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> torch.Tensor:
    """(N, D) x (L, D) -> (N, L) softmax over labels at the model's learned temperature."""
    with torch.inference_mode():
        scale = model.scale().to(image_embeddings.device)
        return (scale * image_embeddings @ label_embeddings.T).softmax(dim=-1)


def rank_labels(
    model: Clip, image_embeddings: torch.Tensor, label_embeddings: torch.Tensor, labels: Sequence[str], top_k: int
) -> list[Ranking]:
    """(N, D) images x (L, D) labels -> per image its top_k labels by probability, most likely first."""
    probabilities = label_probabilities(model, image_embeddings, label_embeddings)  # (N, L)
    scores, order = probabilities.topk(min(top_k, len(labels)), dim=1)
    return [
        [(labels[i], score) for i, score in zip(row_order.tolist(), row_scores.tolist(), strict=True)]
        for row_order, row_scores in zip(order, scores, strict=True)
    ]


# "3 x query - 2 x negative", which clip-retrieval's users found to work (REFERENCES.md).
NEGATIVE_WEIGHT = 2 / 3


def compose_query(
    query: torch.Tensor, negative: torch.Tensor | None = None, refinement: torch.Tensor | None = None
) -> torch.Tensor:
    """One search vector from unit (D,) vectors: a text or image `query`, a text it must not
    match (`negative`: "dog" but not "grass") and a text that refines an image query ("but
    red"). -> (D,) unit vector.

    Refinement is the mean of the two unit vectors, so image and words weigh alike; the
    negative is subtracted at NEGATIVE_WEIGHT, which moves the query away from it without
    turning it into a search for the negative's opposite.
    """
    if refinement is not None:
        query = query + refinement
    if negative is not None:
        query = torch.nn.functional.normalize(query, dim=-1) - NEGATIVE_WEIGHT * negative
    return torch.nn.functional.normalize(query, dim=-1)


def parse_labels(text: str) -> list[str]:
    """'cat, dog,,  bird ' -> ['cat', 'dog', 'bird'] (order kept, duplicates dropped)."""
    labels = [part.strip() for part in text.split(",")]
    return list(dict.fromkeys(label for label in labels if label))
