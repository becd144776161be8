"""Out-of-distribution flags: when an image is unlike the images the model learned, or unlike
every label it is asked to choose between, a zero-shot ranking is a guess and should say so.

Two scores of the served (flip-averaged) image embedding:

- `distance`: Mahalanobis distance to the nearest class mean, with one covariance shared by the
  classes (Lee et al. 2018), both fitted on training images. It depends on the image alone: "the
  model has not seen images like this". On the shipped checkpoint it separated non-CIFAR images
  from test images far better than the best label's cosine or softmax (BENCHMARKS.md).
- `similarity`: cosine to the best label's prompt-ensemble embedding. It depends on the labels:
  with typed labels, "none of these fits", e.g. a cat asked about "car, plane".

Both thresholds sit at the same quantile of their scores over held-out in-distribution images
(the images training held out for model selection, scored against the model's own classes),
chosen so that the two together flag `false_flag_rate` of those images. The calibration is kept
beside the weights (`ood.safetensors`) with the weights' sha256, so serving needs no data and a
retrained checkpoint never uses another's calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file
from sklearn.covariance import ledoit_wolf

from .data import Cifar10
from .files import write_atomically
from .inference import embed_images, embed_labels
from .model import Clip

OOD_FILE = "ood.safetensors"
DEFAULT_FALSE_FLAG_RATE = 0.05


@dataclass(frozen=True)
class OodScores:
    distance: torch.Tensor  # (N,) Mahalanobis distance to the nearest class mean
    similarity: torch.Tensor  # (N,) cosine to the best label
    unusual: torch.Tensor  # (N,) bool: distance above its threshold
    unmatched: torch.Tensor  # (N,) bool: similarity below its threshold


@dataclass(frozen=True)
class OodVerdict:
    """One image's scores beside their thresholds."""

    distance: float
    distance_threshold: float
    similarity: float
    similarity_threshold: float

    @property
    def unusual(self) -> bool:
        return self.distance > self.distance_threshold

    @property
    def unmatched(self) -> bool:
        return self.similarity < self.similarity_threshold

    @property
    def flagged(self) -> bool:
        return self.unusual or self.unmatched


@dataclass(frozen=True)
class OodCalibration:
    class_means: torch.Tensor  # (C, D)
    precision: torch.Tensor  # (D, D) inverse of the shared within-class covariance
    distance_threshold: float
    similarity_threshold: float
    false_flag_rate: float  # share of held-out in-distribution images the two flags together raise
    weights_sha256: str  # the weights it was fitted on

    @cached_property
    def _in_float64(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The precision, P m for every class mean m and m P m, in float64, made once: an upload's
        distance then costs one (D, D) product, not a copy of P and a (C, D, D) product more."""
        means, precision = self.class_means.double(), self.precision.double()
        projected_means = means @ precision  # (C, D)
        return precision, projected_means.T, (projected_means * means).sum(1)

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) unit image embeddings -> (N,) distance to the nearest class mean."""
        precision, projected_means, means_term = self._in_float64
        x = embeddings.double()
        # |x - m|^2_P = xPx - 2 xPm + mPm, for every class at once: (N, C)
        squared = ((x @ precision) * x).sum(1, keepdim=True) - 2 * x @ projected_means + means_term
        return squared.min(dim=1).values.clamp(min=0).sqrt().float()

    def score(self, image_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> OodScores:
        """(N, D) images x (L, D) labels -> both scores and both flags per image."""
        distance = self.distances(image_embeddings)
        similarity = (image_embeddings @ label_embeddings.T).max(dim=1).values
        return OodScores(
            distance, similarity, distance > self.distance_threshold, similarity < self.similarity_threshold
        )

    def verdicts(self, image_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> list[OodVerdict]:
        """(N, D) images x (L, D) labels -> one verdict per image."""
        scores = self.score(image_embeddings, label_embeddings)
        return [
            OodVerdict(distance, self.distance_threshold, similarity, self.similarity_threshold)
            for distance, similarity in zip(scores.distance.tolist(), scores.similarity.tolist(), strict=True)
        ]


def fit_class_gaussians(
    embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) embeddings of labelled images -> (C, D) class means and the (D, D) precision of the
    covariance of each image around its own class mean.

    The covariance is shrunk towards a multiple of the identity by Ledoit and Wolf's estimate: most
    of the unit sphere's directions carry a within-class variance of ~1e-6 (a trained checkpoint's
    median eigenvalue), and those quiet directions are where foreign images stand out. A fixed
    ridge of 1e-4, used before, drowned 224 of 256 of them (BENCHMARKS.md, out-of-distribution
    flag); the estimate puts the ridge near 1e-6 from the training images alone."""
    x = embeddings.double()
    means = torch.stack([x[labels == c].mean(dim=0) for c in range(num_classes)])
    covariance, _ = ledoit_wolf((x - means[labels]).numpy(), assume_centered=True)
    return means.float(), torch.linalg.inv(torch.from_numpy(covariance)).float()


def joint_thresholds(distance: torch.Tensor, similarity: torch.Tensor, rate: float) -> tuple[float, float]:
    """Thresholds at the same quantile q of each held-out score (distance from above, similarity
    from below), q found by bisection so that either flag raises `rate` of the images."""
    low, high = 0.0, rate  # q = rate alone would flag more than rate when the flags differ

    def thresholds(q: float) -> tuple[float, float]:
        return torch.quantile(distance, 1 - q).item(), torch.quantile(similarity, q).item()

    for _ in range(40):
        q = (low + high) / 2
        distance_threshold, similarity_threshold = thresholds(q)
        flagged = ((distance > distance_threshold) | (similarity < similarity_threshold)).float().mean().item()
        low, high = (q, high) if flagged <= rate else (low, q)
    return thresholds(low)


def calibrate(
    model: Clip,
    data: Cifar10,
    val_size: int,
    weights_sha256: str,
    false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE,
    fit_size: int = 10_000,
) -> tuple[OodCalibration, OodScores]:
    """Fit the class Gaussians on up to fit_size training images and the thresholds on the
    val_size images training held out (`Cifar10.train_val`, as `train.py` splits them).

    -> (the calibration, its scores on those held-out images).
    """
    train, held_out = data.train_val(val_size, seed=0)
    fit = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:fit_size])
    means, precision = fit_class_gaussians(embed_images(model, fit.images), fit.labels, len(data.classes))
    held_out_embeddings = embed_images(model, held_out.images)
    class_embeddings = embed_labels(model, model.captions.classes)
    # Scored with thresholds that flag nothing, to find the thresholds.
    unfitted = OodCalibration(means, precision, float("inf"), float("-inf"), false_flag_rate, weights_sha256)
    scores = unfitted.score(held_out_embeddings, class_embeddings)
    distance_threshold, similarity_threshold = joint_thresholds(scores.distance, scores.similarity, false_flag_rate)
    calibration = OodCalibration(
        means, precision, distance_threshold, similarity_threshold, false_flag_rate, weights_sha256
    )
    return calibration, calibration.score(held_out_embeddings, class_embeddings)


def save_calibration(calibration: OodCalibration, directory: Path) -> Path:
    path = Path(directory) / OOD_FILE
    tensors = {"class_means": calibration.class_means.contiguous(), "precision": calibration.precision.contiguous()}
    metadata = {
        "distance_threshold": repr(calibration.distance_threshold),
        "similarity_threshold": repr(calibration.similarity_threshold),
        "false_flag_rate": repr(calibration.false_flag_rate),
        "weights_sha256": calibration.weights_sha256,
    }

    def save(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.chmod(0o644)  # safetensors creates it owner-only; the API may run as another user (Compose)

    return write_atomically(path, save)


def read_calibration(directory: Path, weights_sha256: str) -> OodCalibration | None:
    """The calibration beside the weights, or None when there is none or it was fitted on other
    weights (then nothing is flagged rather than flagged by another model's statistics)."""
    path = Path(directory) / OOD_FILE
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as opened:
        metadata = opened.metadata() or {}
    if metadata.get("weights_sha256") != weights_sha256:
        return None
    tensors = load_file(str(path))
    return OodCalibration(
        tensors["class_means"],
        tensors["precision"],
        float(metadata["distance_threshold"]),
        float(metadata["similarity_threshold"]),
        float(metadata["false_flag_rate"]),
        weights_sha256,
    )
