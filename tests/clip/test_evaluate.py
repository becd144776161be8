import torch

from model_api.clip.data import Split
from model_api.clip.evaluate import confusion_matrix, evaluate, retrieval_metrics
from model_api.clip.inference import embed_images, embed_labels, prepare_for_inference, refine_unsure
from model_api.clip.model import Clip
from tests.conftest import CAPTIONS, TINY_MODEL


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


def test_served_embeddings_ignore_mirroring_and_equal_one_view_for_symmetric_images() -> None:
    torch.manual_seed(0)
    model = prepare_for_inference(Clip(TINY_MODEL, CAPTIONS))
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    served = embed_images(model, images)
    assert torch.allclose(served, embed_images(model, images.flip(-1)), atol=1e-5)
    assert not torch.allclose(served, embed_images(model, images, mirror=False), atol=1e-3)
    symmetric = torch.cat([images[..., :16], images[..., :16].flip(-1)], dim=-1)
    assert torch.allclose(embed_images(model, symmetric), embed_images(model, symmetric, mirror=False), atol=1e-5)
    assert torch.allclose(served.norm(dim=1), torch.ones(6))


def test_evaluate_scores_the_served_embeddings_and_one_view_apart() -> None:
    torch.manual_seed(0)
    model = prepare_for_inference(Clip(TINY_MODEL, CAPTIONS))
    images, labels = torch.randint(0, 256, (60, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 3, (60,))
    split = Split(images, labels, torch.full((60, 5), -1, dtype=torch.int8))
    classes = ("cat", "dog", "ship")
    report = evaluate(model, split, classes)
    class_embeddings = embed_labels(model, classes)
    flip_averaged = embed_images(model, split.images)
    served = refine_unsure(model, split.images, flip_averaged, class_embeddings)  # as classification serves
    for measured, embeddings in (
        (report["accuracy"], served),
        (report["flip_averaged"]["accuracy"], flip_averaged),
        (report["single_view"]["accuracy"], embed_images(model, split.images, mirror=False)),
    ):
        predictions = (embeddings @ class_embeddings.T).argmax(dim=1)
        accuracy = (predictions == split.labels).float().mean().item()
        assert abs(measured - accuracy) <= 1 / 60  # one near-tie may round the other way
