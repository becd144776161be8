import math

import torch

from model_api.clip.muon import Muon, orthogonalize


def test_orthogonalize_sends_every_singular_value_near_one() -> None:
    torch.manual_seed(0)
    for shape in ((64, 216), (216, 64)):
        badly_conditioned = torch.randn(*shape) @ torch.diag(torch.logspace(-2, 0, shape[1]))
        singular_values = torch.linalg.svdvals(orthogonalize(badly_conditioned))
        assert orthogonalize(badly_conditioned).shape == shape
        assert 0.6 < singular_values.min() and singular_values.max() < 1.25


def test_orthogonalize_keeps_the_direction_of_the_update() -> None:
    torch.manual_seed(0)
    gradient = torch.randn(32, 72)
    assert torch.nn.functional.cosine_similarity(orthogonalize(gradient).flatten(), gradient.flatten(), dim=0) > 0.5


def test_muon_step_renormalises_the_filters_and_descends() -> None:
    torch.manual_seed(0)
    filters = torch.nn.Parameter(torch.randn(16, 8, 3, 3) * 5)
    target = torch.randn(16, 8, 3, 3)
    optimizer = Muon([filters], lr=0.05, momentum=0.6)
    distances = []
    for _ in range(30):
        # A scale-free objective, like a conv feeding a BatchNorm: only the direction counts.
        loss = -torch.nn.functional.cosine_similarity(filters.flatten(), target.flatten(), dim=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        distances.append(loss.item())
        # Norm sqrt(out_channels) before each update, which adds at most lr * |update|.
        assert abs(filters.norm().item() - math.sqrt(16)) < 0.05 * math.sqrt(16) + 1e-6
    assert distances[-1] < -0.9 < distances[0]
