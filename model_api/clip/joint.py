"""Several trained CLIPs served as one: a joint CLIP.

Its image tower is the members' towers side by side, its projections theirs stacked, and its
vectors their unit vectors end to end, each scaled by the square root of the member's weight
(`Clip.unit`). The cosine of two such vectors is the members' cosines averaged with those
weights: zero-shot labels, text search and image search all score as an ensemble would, from
one vector per image and one index. Two towers that err on different images correct each other
(BENCHMARKS.md, two checkpoints as one).

The members must share what the text side and the labels depend on: the frozen sentence
encoder (their text features are then computed once), the caption set and the embedding width.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from .model import Clip


class JoinError(ValueError):
    """The checkpoints cannot be joined."""


def check_joinable(members: Sequence[Clip], weights: Sequence[float]) -> None:
    if len(members) < 2 or len(weights) != len(members):
        raise JoinError(f"join takes two or more checkpoints and a weight each, got {len(members)} and {len(weights)}")
    first = members[0].config
    for member in members:
        config = member.config
        if config.joined_images:
            raise JoinError("a joint checkpoint cannot be joined again: join its members")
        if config.text.kind != "minilm" or config.text != first.text:
            raise JoinError("the members must share one frozen sentence encoder (text.kind minilm, same model)")
        if config.embed_dim != first.embed_dim or config.max_logit_scale != first.max_logit_scale:
            raise JoinError("the members must have the same embed_dim and max_logit_scale")
        if member.captions != members[0].captions:
            raise JoinError("the members must be trained on the same caption set")


def join(members: Sequence[Clip], weights: Sequence[float]) -> Clip:
    """Trained CLIPs (as `load_checkpoint` gives them, PyTorch towers) and their weights (any
    positive numbers, normalised to sum 1) -> one CLIP on the CPU, in eval mode, that scores every
    pair as the weighted mean of the members' cosines."""
    check_joinable(members, weights)
    members = [member.cpu() for member in members]
    weights = [weight / sum(weights) for weight in weights]
    first = members[0]
    config = dataclasses.replace(
        first.config,
        joined_images=tuple(member.config.image for member in members[1:]),
        member_weights=tuple(weights),
    )
    # From where the first member's encoder came (a --text-encoder-path copy included), then
    # replaced by that very encoder, so it is loaded once.
    joint = Clip(config, first.captions, first.text.frozen.directory)
    joint.text = first.text
    with torch.no_grad():
        for tower, member in zip(joint.visual.towers, members, strict=True):
            tower.load_state_dict(member.visual.state_dict())
        # Each member's features map to its own block of the vector and nowhere else.
        joint.image_projection.weight.copy_(torch.block_diag(*(member.image_projection.weight for member in members)))
        joint.text_projection.weight.copy_(torch.cat([member.text_projection.weight for member in members]))
        for norm in ("image_norm", "text_norm"):
            for statistic in ("running_mean", "running_var"):
                stacked = torch.cat([getattr(getattr(member, norm), statistic) for member in members])
                getattr(getattr(joint, norm), statistic).copy_(stacked)
        # One temperature for the averaged cosines: the members' scales averaged alike.
        scale = sum(weight * member.scale().item() for weight, member in zip(weights, members, strict=True))
        joint.logit_scale.fill_(math.log(scale))
    return joint.eval()
