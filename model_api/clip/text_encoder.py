"""Text tower trained from scratch: byte tokens -> pre-LN transformer -> mean-pooled feature."""

from __future__ import annotations

import torch
from torch import nn

from .config import TextEncoderConfig
from .tokenizer import PAD, ByteTokenizer


class ScratchTextEncoder(nn.Module):
    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = ByteTokenizer(config.context_length)
        self.token_embedding = nn.Embedding(self.tokenizer.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.randn(config.context_length, config.width) * 0.01)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            dim_feedforward=4 * config.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.width)
        self.output_dim = config.width

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, width) features, averaged over the non-padding tokens."""
        tokens = tokens[:, : int((tokens != PAD).sum(dim=1).max())]  # drop all-padding columns
        padding = tokens == PAD  # (B, T)
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        x = self.final_norm(self.transformer(x, src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
