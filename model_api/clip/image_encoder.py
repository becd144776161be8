"""Image tower: an airbench94-style convolutional net for 32x32 images.

Layout (shapes for one 32x32 image):
  whitening conv 2x2, frozen  (3, 32, 32) -> (24, 31, 31)
  group 1: conv-pool-BN-act-conv-BN-act (GELU, or SiLU by config) -> (64, 15, 15)
  group 2                                -> (256, 7, 7)
  group 3                                -> (256, 3, 3)
  max-pool over the 3x3 grid             -> (256,)
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ImageEncoderConfig

# Per-channel statistics of CIFAR-10 train images, in [0, 1] units.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class ConvBN(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, momentum: float) -> None:
        conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        # Identity init on the first in_ch filters: the group starts close to a skip connection.
        nn.init.dirac_(conv.weight[: min(in_ch, out_ch)])
        # BatchNorm scale stays 1 (only the shift trains), as in airbench94.
        norm = nn.BatchNorm2d(out_ch, eps=1e-12, momentum=1 - momentum)
        norm.weight.requires_grad_(False)
        super().__init__(conv, norm)


ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU}


class ConvGroup(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, momentum: float, activation: str) -> None:
        super().__init__()
        self.first = ConvBN(in_ch, out_ch, momentum)
        self.second = ConvBN(out_ch, out_ch, momentum)
        self.pool = nn.MaxPool2d(2)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1, norm1 = self.first
        x = self.act(norm1(self.pool(conv1(x))))  # pool before norm: 4x cheaper norm
        return self.act(self.second(x))


class ImageEncoder(nn.Module):
    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1))
        self.whiten = nn.Conv2d(3, config.whitening_width, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        widths = (config.whitening_width, *config.widths)
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.groups = nn.Sequential(*(ConvGroup(a, b, config.batchnorm_momentum, config.activation) for a, b in pairs))
        self.act = ACTIVATIONS[config.activation]()
        self.output_dim = config.widths[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] -> (B, output_dim) features."""
        x = (images - self.mean) / self.std
        x = self.groups(self.act(self.whiten(x)))
        return torch.amax(x, dim=(2, 3))

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the frozen stem to the eigenbasis of 2x2 patch covariance (airbench94).

        images: (N, 3, H, W) floats in [0, 1], a few thousand training images.
        """
        x = (images - self.mean) / self.std
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1)  # (N, 3, H-1, W-1, 2, 2)
        patches = patches.transpose(1, 3).reshape(-1, 3 * 2 * 2).double()
        patches = patches - patches.mean(dim=0)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        filters = eigenvectors / torch.sqrt(eigenvalues + eps)[:, None]
        filters = filters.view(-1, 3, 2, 2).float()
        count = self.config.whitening_width // 2
        self.whiten.weight.copy_(torch.cat([filters[:count], -filters[:count]]))
