"""CLIP: an image tower and a text tower meeting in one L2-normalised embedding space.

The model returns embeddings and the logit scale; the loss lives in `loss.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .captions import CaptionSet
from .config import ClipConfig, ImageEncoderConfig
from .image_encoder import ImageEncoder
from .text_encoder import PretrainedTextEncoder, ScratchTextEncoder


def build_text_encoder(
    config: ClipConfig, captions: CaptionSet, text_encoder_path: Path | None
) -> ScratchTextEncoder | PretrainedTextEncoder:
    """`TextEncoderConfig` validates the kind, so there is no third case."""
    if config.text.kind == "minilm":
        return PretrainedTextEncoder(config.text, captions.all_class_captions(), text_encoder_path)
    return ScratchTextEncoder(config.text)


class ImageTowers(nn.Module):
    """A joint CLIP's image towers side by side: (B, 3, 32, 32) floats in [0, 1] -> (B,
    output_dim) features, each tower's end to end."""

    def __init__(self, configs: tuple[ImageEncoderConfig, ...]) -> None:
        super().__init__()
        self.towers = nn.ModuleList(ImageEncoder(config) for config in configs)
        self.output_dim = sum(tower.output_dim for tower in self.towers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([tower(images) for tower in self.towers], dim=1)


ImageTower = ImageEncoder | ImageTowers


def build_image_tower(config: ClipConfig) -> ImageTower:
    """A trained CLIP's one tower, or a joint's several."""
    if not config.joined_images:
        return ImageEncoder(config.image)
    return ImageTowers((config.image, *config.joined_images))


class Clip(nn.Module):
    def __init__(self, config: ClipConfig, captions: CaptionSet, text_encoder_path: Path | None = None) -> None:
        """captions: the caption set it trains (or was trained) on; its classes, prompt templates
        and words are what the model classifies with and corrects queries to.
        text_encoder_path: a local copy of the pretrained sentence encoder, if not the packaged one."""
        super().__init__()
        self.config = config
        self.captions = captions
        self.visual = build_image_tower(config)
        self.text = build_text_encoder(config, captions, text_encoder_path)
        self.image_projection = nn.Linear(self.visual.output_dim, config.dim, bias=False)
        self.text_projection = nn.Linear(self.text.output_dim, config.dim, bias=False)
        # Standardising each embedding dimension over the batch (no learned affine) makes the
        # collapse of a tower to one constant vector impossible. Without it, both towers
        # collapsed within ten steps: at initialisation all captions embed alike (they share
        # most bytes), so flattening the logits was the fastest way down the loss.
        self.image_norm = nn.BatchNorm1d(config.dim, affine=False)
        self.text_norm = nn.BatchNorm1d(config.dim, affine=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.init_temperature)))
        # Not saved: the config's member weights say it.
        member_scales = torch.tensor(config.member_weights).sqrt()
        self.register_buffer("member_scales", member_scales, persistent=False)

    def unit(self, vectors: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> the model's vectors: each member's block of embed_dim made a unit vector
        and scaled by the square root of its weight, so the whole has norm 1 (for a trained CLIP,
        one member, simply the unit vector)."""
        blocks = F.normalize(vectors.unflatten(-1, (len(self.member_scales), self.config.embed_dim)), dim=-1)
        return (blocks * self.member_scales[:, None].to(blocks.dtype)).flatten(-2)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 32, 32) floats in [0, 1] -> (B, dim) unit vectors."""
        return self.project_image(self.visual(images))

    def project_image(self, features: torch.Tensor) -> torch.Tensor:
        """The image tower's pooled features (B, visual.output_dim) -> (B, dim) unit vectors."""
        return self.unit(self.image_norm(self.image_projection(features).float()))

    def encode_prepared(self, inputs: torch.Tensor) -> torch.Tensor:
        """The text tower's prepared inputs (token ids or frozen embeddings) -> (B, dim) unit vectors."""
        return self.unit(self.text_norm(self.text_projection(self.text(inputs)).float()))

    @torch.no_grad()
    def folded_text_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The text projection and the standardisation after it, as in eval mode (running
        statistics), folded into one affine map: a (text.output_dim, dim) weight and a (dim,) bias
        such that, in eval mode, encode_prepared(x) = unit(text(x) @ weight + bias)."""
        std = torch.sqrt(self.text_norm.running_var + self.text_norm.eps)
        return (self.text_projection.weight / std[:, None]).T.float(), (-self.text_norm.running_mean / std).float()

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text users typed (queries, labels) -> (B, dim) unit vectors."""
        device = self.logit_scale.device
        return self.encode_prepared(self.text.prepare_queries(texts).to(device))

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped as in CLIP so the temperature cannot collapse."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(
        self, images: torch.Tensor, text_inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_prepared(text_inputs), self.scale()
