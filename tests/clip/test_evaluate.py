import torch

from model_api.clip.evaluate import confusion_matrix, retrieval_metrics


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
