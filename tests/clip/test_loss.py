import torch
import torch.nn.functional as F

from model_api.clip.loss import LabelAwareContrastiveLoss, label_positives


def embeddings(n: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_matched_pairs_score_lower_than_shuffled() -> None:
    loss = LabelAwareContrastiveLoss()
    images = embeddings(8)
    texts = F.normalize(images + 0.1 * embeddings(8, seed=1), dim=-1)
    labels = torch.arange(8)
    matched = loss(images, texts, torch.tensor(10.0), label_positives(labels, labels))
    shuffled = loss(
        images,
        texts[torch.randperm(8, generator=torch.Generator().manual_seed(2))],
        torch.tensor(10.0),
        label_positives(labels, labels),
    )
    assert matched < shuffled


def test_same_class_pairs_are_positives() -> None:
    """Two images of one class and two captions of it: pairing either caption with either
    image is equally right, so swapping captions within the class changes nothing."""
    loss = LabelAwareContrastiveLoss()
    images, texts = embeddings(4), embeddings(4, seed=3)
    labels = torch.tensor([0, 0, 1, 1])
    original = loss(images, texts, torch.tensor(5.0), label_positives(labels, labels))
    swapped = loss(images, texts[[1, 0, 3, 2]], torch.tensor(5.0), label_positives(labels, labels))
    torch.testing.assert_close(original, swapped)


def test_label_aware_loss_prefers_classes_over_instances() -> None:
    """Plain CLIP targets (unique labels) reward telling same-class items apart; the
    label-aware loss rewards grouping them by class instead."""
    basis = torch.eye(16)
    by_instance = basis[:4]  # every image-caption pair its own direction
    by_class = basis[[0, 0, 2, 2]]  # both items of a class on one direction
    classes, instances, scale = torch.tensor([0, 0, 1, 1]), torch.arange(4), torch.tensor(50.0)
    loss = LabelAwareContrastiveLoss()
    same_class, same_instance = label_positives(classes, classes), label_positives(instances, instances)
    assert loss(by_class, by_class, scale, same_class) < loss(by_instance, by_instance, scale, same_class)
    assert loss(by_instance, by_instance, scale, same_instance) < loss(by_class, by_class, scale, same_instance)


def test_rows_without_positives_are_ignored() -> None:
    images, texts = embeddings(3), embeddings(2, seed=4)
    positives = label_positives(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    value = LabelAwareContrastiveLoss()(images, texts, torch.tensor(5.0), positives)
    assert torch.isfinite(value)


def test_label_smoothing_raises_the_floor() -> None:
    points = embeddings(2)[torch.tensor([0, 1])]
    labels = torch.tensor([0, 1])
    sharp = LabelAwareContrastiveLoss(0.0)(points, points, torch.tensor(50.0), label_positives(labels, labels))
    smooth = LabelAwareContrastiveLoss(0.2)(points, points, torch.tensor(50.0), label_positives(labels, labels))
    assert smooth > sharp


def test_an_ignored_pair_neither_helps_nor_hurts() -> None:
    """Caption 1 is ignored for image 0 and a negative for image 1, which has no positive: where
    it lies then changes nothing. Counted as image 0's negative, it would."""
    loss = LabelAwareContrastiveLoss(0.1)
    images, scale = embeddings(2), torch.tensor(5.0)
    positives = torch.tensor([[True, False], [False, False]])
    ignored = torch.tensor([[False, True], [False, False]])
    near, far = torch.stack([images[0], images[0]]), torch.stack([images[0], -images[0]])
    near.requires_grad_(True)
    ignoring = loss(images, near, scale, positives, ignored)
    torch.testing.assert_close(ignoring, loss(images, far, scale, positives, ignored))
    assert loss(images, near, scale, positives) > loss(images, far, scale, positives)
    ignoring.backward()
    assert torch.isfinite(near.grad).all()


def test_ignoring_nothing_is_the_plain_loss() -> None:
    loss = LabelAwareContrastiveLoss(0.1)
    images, texts, labels = embeddings(4), embeddings(4, seed=5), torch.tensor([0, 0, 1, 1])
    positives, nothing = label_positives(labels, labels), torch.zeros(4, 4, dtype=torch.bool)
    plain = loss(images, texts, torch.tensor(5.0), positives)
    torch.testing.assert_close(loss(images, texts, torch.tensor(5.0), positives, nothing), plain)
