"""Out-of-distribution scores, their calibration and how a checkpoint keeps it."""

from __future__ import annotations

import pytest
import torch

from model_api.clip.checkpoint import load_checkpoint, weights_sha256
from model_api.clip.inference import embed_images, embed_labels
from model_api.clip.ood import (
    OOD_FILE,
    OodCalibration,
    calibrate,
    fit_class_gaussians,
    joint_thresholds,
    read_calibration,
    save_calibration,
)
from tests.conftest import TINY_RECIPE


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)[0]


def test_distance_is_mahalanobis_to_the_nearest_class_mean():
    means = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    precision = torch.diag(torch.tensor([1.0, 0.25]))  # the second axis varies twice as much
    calibration = OodCalibration(means, precision, 1.0, 0.0, 0.05, "sha")
    points = torch.tensor([[3.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    assert calibration.distances(points).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_gaussians_recover_the_class_means_and_the_shared_spread():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(5000)
    centres = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    points = centres[labels] + torch.randn(10000, 3, generator=generator) * torch.tensor([0.1, 0.2, 0.4])
    means, precision = fit_class_gaussians(points, labels, 2)
    assert means.tolist() == [pytest.approx(row, abs=0.02) for row in centres.tolist()]
    assert torch.diag(precision).tolist() == pytest.approx([100, 25, 6.25], rel=0.1)


def test_a_direction_the_classes_hardly_vary_in_still_counts():
    # Trained embeddings vary ~1e-6 within a class along most directions: an image off the class
    # along one of them is unlike every training image, and a fixed ridge of 1e-4 would hide it.
    generator = torch.Generator().manual_seed(0)
    spread = torch.tensor([0.1] * 8 + [0.003] * 8)  # standard deviations: half the space is quiet
    labels = torch.zeros(20000, dtype=torch.long)
    points = torch.randn(20000, 16, generator=generator) * spread
    means, precision = fit_class_gaussians(points, labels, 1)
    calibration = OodCalibration(means, precision, 1.0, 0.0, 0.05, "sha")
    off_quietly = torch.zeros(1, 16)
    off_quietly[0, -1] = 0.03  # ten standard deviations along a quiet axis
    assert calibration.distances(off_quietly).item() > 6  # 2.9 with a ridge of 1e-4


def test_joint_thresholds_flag_the_chosen_share_together():
    generator = torch.Generator().manual_seed(0)
    distance, similarity = torch.rand(2000, generator=generator), torch.rand(2000, generator=generator)
    distance_threshold, similarity_threshold = joint_thresholds(distance, similarity, 0.05)
    flagged = (distance > distance_threshold) | (similarity < similarity_threshold)
    # At most the share; below it by at most two images (one step of q can add one to each flag).
    assert 0.05 - 2 / 2000 <= flagged.float().mean().item() <= 0.05
    # Neither score alone takes the whole share: both flags are in use.
    assert 0.02 < (distance > distance_threshold).float().mean().item() < 0.05


def test_calibration_flags_the_chosen_share_of_held_out_images(tiny_model, tiny_data, tiny_checkpoint):
    calibration, held_out = calibrate(tiny_model, tiny_data, TINY_RECIPE.val_size, "sha", false_flag_rate=0.1)
    flagged = (held_out.unusual | held_out.unmatched).float().mean().item()
    assert 0.1 - 2 / TINY_RECIPE.val_size <= flagged <= 0.1


def test_a_drawn_non_cifar_image_is_flagged_and_test_images_mostly_are_not(tiny_model, tiny_data, tiny_checkpoint):
    calibration = read_calibration(tiny_checkpoint, weights_sha256(tiny_checkpoint))
    classes = embed_labels(tiny_model, tiny_model.captions.classes)
    checkerboard = ((torch.arange(32)[:, None] // 4 + torch.arange(32)[None, :] // 4) % 2 * 255).to(torch.uint8)
    drawn = checkerboard.expand(1, 3, 32, 32)
    [verdict] = calibration.verdicts(embed_images(tiny_model, drawn), classes)
    assert verdict.flagged and verdict.unusual
    test_scores = calibration.score(embed_images(tiny_model, tiny_data.test.images), classes)
    assert (test_scores.unusual | test_scores.unmatched).float().mean().item() < 0.25


def test_labels_unlike_the_image_say_none_fits(tiny_model, tiny_checkpoint):
    calibration = read_calibration(tiny_checkpoint, weights_sha256(tiny_checkpoint))
    image = torch.nn.functional.normalize(torch.randn(1, tiny_model.config.embed_dim), dim=-1)
    [fits] = calibration.verdicts(image, image)  # a label embedded exactly where the image is
    [opposite] = calibration.verdicts(image, -image)
    assert not fits.unmatched and opposite.unmatched


def test_a_calibration_is_read_only_for_the_weights_it_was_fitted_on(tiny_checkpoint, tmp_path):
    sha = weights_sha256(tiny_checkpoint)
    saved = read_calibration(tiny_checkpoint, sha)
    assert saved is not None and saved.weights_sha256 == sha
    assert read_calibration(tiny_checkpoint, "0" * 64) is None
    save_calibration(saved, tmp_path)
    reread = read_calibration(tmp_path, sha)
    assert reread.distance_threshold == saved.distance_threshold
    assert torch.equal(reread.precision, saved.precision)
    (tmp_path / OOD_FILE).unlink()
    assert read_calibration(tmp_path, sha) is None
