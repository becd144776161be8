"""Training on several processes (torchrun): which rows of a batch each process takes, and the
collectives that make every process's update the one a single process would make.

Every process holds the whole model and dataset and draws the same epoch permutation,
augmentation and captions (same seeds), then trains on its own interleaved shard of each global
batch. The contrastive loss needs the whole batch, so the embeddings are gathered and every
process computes the same global loss; DistributedDataParallel averages the gradients, so every
process takes the same step. BatchNorm normalises each process's shard with its own statistics
(DDP's default; `SyncBatchNorm` has no CPU kernel); the running statistics are averaged after
each step, so the weights, buffers and weight average stay identical on every process.

`main.py` reads the ranks torchrun sets in the environment; this module takes them as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .hardware import Device


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, checkpoints and plots."""
        return self.rank == 0

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> this process's rows: every world_size-th from its rank on. Interleaving keeps
        shards within one row of each other in size, and the first rows of a batch (the ones
        that get captions) spread over every process."""
        return rows[self.rank :: self.world_size]

    def gathered_order(self, count: int) -> torch.Tensor:
        """(count,) positions in the batch of the rows `gather` returns: shard 0's, then shard 1's..."""
        return torch.cat([torch.arange(rank, count, self.world_size) for rank in range(self.world_size)])


SINGLE_PROCESS = Ranks()


def start(device: Device, rank: int, world_size: int) -> Ranks:
    """Joins the process group torchrun set up (its address comes from the environment: env://);
    gloo on the CPU, nccl between GPUs. One process alone joins nothing."""
    if world_size == 1:
        return SINGLE_PROCESS
    if device.type == "cuda":
        torch.cuda.set_device(device.torch_device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return Ranks(rank, world_size)


def stop(ranks: Ranks) -> None:
    if ranks.world_size > 1:
        dist.destroy_process_group()


def wrap(model: nn.Module, device: Device, ranks: Ranks) -> nn.Module:
    """The module to train through: DDP, which all-reduces gradients, when there are several
    processes. Buffers are not copied from rank 0 before each forward: `average_batchnorm_statistics`
    averages them after each step instead, so every shard's statistics count."""
    if ranks.world_size == 1:
        return model
    device_ids = [device.torch_device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


class _GatherRows(torch.autograd.Function):
    """Forward: every process's rows, in rank order. Backward: every process computed the same
    loss from the same gathered rows, so the gradient reaching this process's rows is the same
    on every process, and the global loss's gradient with respect to them is world_size times
    it; DDP's average over processes then yields exactly the single-process gradient."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, ranks: Ranks, count: int) -> torch.Tensor:  # type: ignore[override]
        sizes = [len(range(rank, count, ranks.world_size)) for rank in range(ranks.world_size)]
        padded = rows.new_zeros((max(sizes), *rows.shape[1:]))  # all_gather wants equal shapes
        padded[: len(rows)] = rows
        pieces = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(pieces, padded.contiguous())
        ctx.ranks, ctx.start, ctx.size = ranks, sum(sizes[: ranks.rank]), len(rows)
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        return grad[ctx.start : ctx.start + ctx.size] * ctx.ranks.world_size, None, None


def gather(rows: torch.Tensor, ranks: Ranks, count: int) -> torch.Tensor:
    """This process's shard (B_r, ...) of a batch of `count` rows -> all of them (count, ...) in
    `ranks.gathered_order`, differentiable."""
    return rows if ranks.world_size == 1 else _GatherRows.apply(rows, ranks, count)


@torch.no_grad()
def average_batchnorm_statistics(model: nn.Module, ranks: Ranks) -> None:
    """Running means and variances, averaged over the processes in one all-reduce."""
    if ranks.world_size == 1:
        return
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    statistics = [buffer for norm in norms for buffer in (norm.running_mean, norm.running_var)]
    flat = torch.cat([buffer.flatten() for buffer in statistics])
    dist.all_reduce(flat)
    flat /= ranks.world_size
    for buffer, averaged in zip(statistics, flat.split([b.numel() for b in statistics]), strict=True):
        buffer.copy_(averaged.view_as(buffer))
