"""The image tower with airbench94's classification head, for what trains on class labels alone:
the cross-entropy anchor (`benchmarks/cross_entropy_anchor.py`) and the proxy that picks hard
examples (`hard_examples`)."""

from __future__ import annotations

import torch
from torch import nn

from .config import ImageEncoderConfig
from .image_encoder import ImageEncoder

# airbench94's classifier scales its logits down: the head starts near uniform predictions.
LOGIT_SCALE = 1 / 9


class Classifier(nn.Module):
    """(B, 3, 32, 32) floats in [0, 1] -> (B, classes) logits: the tower, then a linear layer
    without bias to the classes."""

    def __init__(self, config: ImageEncoderConfig, classes: int) -> None:
        super().__init__()
        self.visual = ImageEncoder(config)
        self.head = nn.Linear(self.visual.output_dim, classes, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(images)) * LOGIT_SCALE
