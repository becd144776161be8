"""Label-aware contrastive loss (UniCL, Yang et al. 2022).

Plain CLIP loss makes image i's only positive its own caption, so with ten classes a batch of
256 holds ~25 same-class "negatives" per image. Here every image-caption pair the caller marks
as a positive counts, and the target distribution spreads evenly over them: pairs that share a
label (`label_positives`), or that share a label and whose caption says nothing the image
contradicts (`train.caption_positives`). Pairs whose match nobody knows (`train.undecided_pairs`)
may be left out of both softmaxes. With unique labels it reduces to the CLIP loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _soft_cross_entropy(
    logits: torch.Tensor, positives: torch.Tensor, smoothing: float, ignored: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of -sum(target * log_softmax), target uniform over each row's positives
    (mixed with `smoothing` of a uniform distribution). Ignored pairs take no part: out of the
    softmax and the smoothing alike. Rows without positives are skipped."""
    counts = positives.sum(dim=1, keepdim=True)
    target = positives / counts.clamp(min=1)
    kept = (~ignored).float()
    target = (1 - smoothing) * target + smoothing * kept / kept.sum(dim=1, keepdim=True).clamp(min=1)
    log_probs = F.log_softmax(logits.masked_fill(ignored, float("-inf")), dim=1).masked_fill(ignored, 0.0)
    per_row = -(target * log_probs).sum(dim=1)
    has_positive = counts.squeeze(1) > 0
    return per_row[has_positive].mean()


def label_positives(image_labels: torch.Tensor, text_labels: torch.Tensor) -> torch.Tensor:
    """(B_i,) x (B_t,) labels -> (B_i, B_t) bool: same label."""
    return image_labels[:, None] == text_labels[None, :]


class LabelAwareContrastiveLoss(nn.Module):
    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self,
        image_embeddings: torch.Tensor,  # (B_i, D), unit vectors
        text_embeddings: torch.Tensor,  # (B_t, D), unit vectors
        logit_scale: torch.Tensor,  # scalar
        positives: torch.Tensor,  # (B_i, B_t) bool or weights: which captions describe which images
        ignored: torch.Tensor | None = None,  # (B_i, B_t) bool: pairs neither positive nor negative
    ) -> torch.Tensor:
        logits = logit_scale * image_embeddings @ text_embeddings.T  # (B_i, B_t)
        positives = positives.float()
        if ignored is None:
            ignored = torch.zeros_like(positives, dtype=torch.bool)
        image_to_text = _soft_cross_entropy(logits, positives, self.label_smoothing, ignored)
        text_to_image = _soft_cross_entropy(logits.T, positives.T, self.label_smoothing, ignored.T)
        return (image_to_text + text_to_image) / 2
