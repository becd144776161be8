"""Hard-example selection (airbench96_faster): a small proxy classifier scores each batch, and
the CLIP trains only on the share of it the proxy finds hardest.

The proxy (airbench96_faster's widths, 32/64/64, about a tenth of the quick tower's work per
image) trains on every whole batch with label-smoothed cross-entropy, so what it calls hard
follows training; the CLIP's step then costs what its smaller batch costs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .classifier import Classifier
from .hardware import Device

PROXY_WIDTHS = (32, 64, 64)


class HardExampleSelector:
    def __init__(
        self, proxy: Classifier, optimizer: torch.optim.Optimizer, share: float, label_smoothing: float, device: Device
    ) -> None:
        """proxy: untrained, on the device; optimizer: its own (the caller schedules its rate);
        share: of each batch kept for the CLIP."""
        self.proxy, self.optimizer, self.share = proxy, optimizer, share
        self.label_smoothing, self.device = label_smoothing, device

    def select(self, batch: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """batch (B, 3, 32, 32) floats in [0, 1] and labels (B,), on the device -> (K,) indices
        into the batch, in batch order, of its K = share * B highest-loss images for the proxy,
        which then takes one step on the whole batch."""
        self.proxy.train()
        with self.device.autocast():
            logits = self.proxy(batch.contiguous(memory_format=self.device.memory_format))
        losses = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing, reduction="none")
        # Batch order, not hardness order: the trainer captions the first rows of a batch.
        hardest = losses.detach().topk(max(1, round(self.share * len(batch)))).indices.sort().values
        self.optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        self.optimizer.step()
        return hardest

    def state_dict(self) -> dict[str, Any]:
        return {"proxy": self.proxy.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.proxy.load_state_dict(state["proxy"])
        self.optimizer.load_state_dict(state["optimizer"])
