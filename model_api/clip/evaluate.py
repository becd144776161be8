"""Test-set evaluation: zero-shot accuracy, confusion matrix, class-prompt retrieval, speed."""

from __future__ import annotations

import time
from typing import Any

import torch

from .data import Split
from .inference import average_views, embed_labels, embed_views, refine_unsure
from .model import Clip


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) counts; row = true class, column = predicted class."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def ranked_relevance(
    similarity: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
) -> torch.Tensor:
    """similarity: (Q, N) query x gallery; query q looks for gallery items of class targets[q]
    (default: class q). -> (Q, N) 1.0 where the item at that rank is relevant, best rank first."""
    targets = torch.arange(len(similarity)) if targets is None else targets
    order = similarity.argsort(dim=1, descending=True)  # (Q, N)
    return (labels[order] == targets[:, None]).float()


def retrieval_metrics(
    similarity: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
) -> dict[str, float]:
    """Mean precision@10, precision@100 and mean average precision over the queries
    (arguments as in `ranked_relevance`)."""
    relevant = ranked_relevance(similarity, labels, targets)  # (Q, N)
    hits = relevant.cumsum(dim=1)
    ranks = torch.arange(1, relevant.shape[1] + 1)
    average_precision = (relevant * hits / ranks).sum(dim=1) / relevant.sum(dim=1).clamp(min=1)
    return {
        "precision_at_10": relevant[:, :10].mean().item(),
        "precision_at_100": relevant[:, :100].mean().item(),
        "mean_average_precision": average_precision.mean().item(),
    }


def evaluate(model: Clip, split: Split, classes: tuple[str, ...]) -> dict[str, Any]:
    """Zero-shot accuracy as the product classifies (`refine_unsure` on the flip-averaged
    embeddings), class-prompt retrieval of the flip-averaged embeddings the product searches
    (`embed_images`), under `flip_averaged` the accuracy without the extra views for unsure
    images, and under `single_view` the figures for one view of each image."""
    started = time.perf_counter()
    single_view, mirrored = embed_views(model, split.images)
    image_embeddings = average_views(model, single_view, mirrored)
    seconds = time.perf_counter() - started
    class_embeddings = embed_labels(model, classes)
    classified = refine_unsure(model, split.images, image_embeddings, class_embeddings)
    predictions = (classified @ class_embeddings.T).argmax(dim=1)
    similarity = image_embeddings @ class_embeddings.T  # (N, C)
    confusion = confusion_matrix(split.labels, predictions, len(classes))
    per_class = confusion.diag().float() / confusion.sum(dim=1).clamp(min=1).float()
    single_similarity = single_view @ class_embeddings.T
    return {
        "images": len(split),
        "accuracy": (predictions == split.labels).float().mean().item(),
        "per_class_accuracy": dict(zip(classes, per_class.tolist(), strict=True)),
        "confusion_matrix": confusion.tolist(),
        "retrieval": retrieval_metrics(similarity.T, split.labels),
        "flip_averaged": {
            "accuracy": (similarity.argmax(dim=1) == split.labels).float().mean().item(),
            "refined_share": (classified != image_embeddings).any(dim=1).float().mean().item(),
        },
        "single_view": {
            "accuracy": (single_similarity.argmax(dim=1) == split.labels).float().mean().item(),
            "retrieval": retrieval_metrics(single_similarity.T, split.labels),
        },
        "images_per_s": len(split) / seconds,  # flip-averaged: two views per image
    }
