import torch

from model_api.clip.evaluate import confusion_matrix, flip_averaged, retrieval_metrics
from model_api.clip.inference import embed_images, prepare_for_inference
from model_api.clip.model import Clip
from tests.conftest import TINY_MODEL


def test_confusion_matrix_counts_true_rows_predicted_columns() -> None:
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_perfect_ranking_has_precision_and_map_one() -> None:
    labels = torch.tensor([0] * 120 + [1] * 120)
    similarity = torch.stack([(labels == 0).float(), (labels == 1).float()])
    metrics = retrieval_metrics(similarity, labels)
    assert metrics == {"precision_at_10": 1.0, "precision_at_100": 1.0, "mean_average_precision": 1.0}


def test_reversed_ranking_scores_low() -> None:
    labels = torch.tensor([0] * 120 + [1] * 120)
    similarity = torch.stack([(labels == 1).float(), (labels == 0).float()])
    metrics = retrieval_metrics(similarity, labels)
    assert metrics["precision_at_10"] == 0.0 and metrics["mean_average_precision"] < 0.6


def test_flip_averaging_ignores_mirroring_and_changes_nothing_for_symmetric_images() -> None:
    torch.manual_seed(0)
    model = prepare_for_inference(Clip(TINY_MODEL))
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    averaged = flip_averaged(model, images, embed_images(model, images))
    mirrored = images.flip(-1)
    assert torch.allclose(averaged, flip_averaged(model, mirrored, embed_images(model, mirrored)), atol=1e-5)
    symmetric = torch.cat([images[..., :16], images[..., :16].flip(-1)], dim=-1)
    single = embed_images(model, symmetric)
    assert torch.allclose(flip_averaged(model, symmetric, single), single, atol=1e-5)
    assert torch.allclose(averaged.norm(dim=1), torch.ones(6))
