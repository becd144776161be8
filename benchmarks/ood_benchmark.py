"""Calibrate a checkpoint's out-of-distribution flags and measure them.

  python benchmarks/ood_benchmark.py [--checkpoint DIR] [--rate 0.05] [--no-save] [--json OUT.json]

Fits the class Gaussians on 10,000 training images and the two thresholds on the images training
held out (`model_api/clip/ood.py`), writes them beside the weights (`ood.safetensors`, which the
API reads; `--no-save` only measures), then reports on data the calibration never saw: the share
of the 10,000 test images flagged (false flags) against the share of non-CIFAR images flagged
(`non_cifar.py`: drawn images and crops of the photos installed packages ship), per kind, with
the AUROC of each score and of the max softmax probability as a baseline; the three whole photos
as an upload would send them; and test images asked about label lists without their own class.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from non_cifar import drawn_images, photo_images  # noqa: E402  (this folder is on sys.path as a script)
from reporting import add_data_arguments, save_json  # noqa: E402

from model_api.clip.checkpoint import load_checkpoint, weights_sha256  # noqa: E402
from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.inference import embed_images, embed_labels, label_probabilities  # noqa: E402
from model_api.clip.ood import DEFAULT_FALSE_FLAG_RATE, OodCalibration, calibrate, save_calibration  # noqa: E402
from model_api.settings import Settings  # noqa: E402


def auroc(in_distribution: torch.Tensor, out_of_distribution: torch.Tensor) -> float:
    """Probability that a random in-distribution image scores above a random other one (higher
    score = more in-distribution), from the rank sum (Mann-Whitney U)."""
    ranks = torch.cat([in_distribution, out_of_distribution]).argsort().argsort().double() + 1
    n_in, n_out = len(in_distribution), len(out_of_distribution)
    return ((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out)).item()


def flagged_shares(calibration: OodCalibration, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    scores = calibration.score(images, labels)
    return {
        "images": len(images),
        "flagged": (scores.unusual | scores.unmatched).float().mean().item(),
        "unusual_image": scores.unusual.float().mean().item(),
        "no_label_fits": scores.unmatched.float().mean().item(),
    }


def without_own_class(calibration: OodCalibration, images: torch.Tensor, targets: torch.Tensor, classes: torch.Tensor):
    """Each test image asked about the other nine classes: how often is 'none of these' said?"""
    similarity = images @ classes.T  # (N, C)
    similarity[torch.arange(len(images)), targets] = -2.0  # the own class is not among the labels
    unmatched = similarity.max(dim=1).values < calibration.similarity_threshold
    unusual = calibration.distances(images) > calibration.distance_threshold
    return {"flagged": (unmatched | unusual).float().mean().item(), "no_label_fits": unmatched.float().mean().item()}


def measure(model, calibration: OodCalibration, test, per_kind: int, crops: int) -> dict:
    classes = embed_labels(model, model.captions.classes)
    test_images = embed_images(model, test.images)
    others = {**drawn_images(per_kind), **photo_images(crops)}
    other_images = {name: embed_images(model, images) for name, images in others.items()}
    everything_else = torch.cat(list(other_images.values()))
    test_scores = calibration.score(test_images, classes)
    other_scores = calibration.score(everything_else, classes)

    def softmax_max(images: torch.Tensor) -> torch.Tensor:
        return label_probabilities(model, images, classes).max(dim=1).values

    return {
        "test": flagged_shares(calibration, test_images, classes),
        "non_cifar": flagged_shares(calibration, everything_else, classes),
        "non_cifar_by_kind": {name: flagged_shares(calibration, e, classes) for name, e in other_images.items()},
        "auroc_test_vs_non_cifar": {
            "distance": auroc(-test_scores.distance, -other_scores.distance),
            "label_similarity": auroc(test_scores.similarity, other_scores.similarity),
            "max_softmax_probability": auroc(softmax_max(test_images), softmax_max(everything_else)),
        },
        "whole_photos": {
            name: whole_photo(model, calibration, e[:1], classes)
            for name, e in other_images.items()
            if name in ("portrait", "temple", "flower")
        },
        "test_without_own_class": without_own_class(calibration, test_images, test.labels, classes),
    }


def whole_photo(model, calibration: OodCalibration, image: torch.Tensor, classes: torch.Tensor) -> dict:
    probabilities = label_probabilities(model, image, classes)[0]
    [verdict] = calibration.verdicts(image, classes)
    best = int(probabilities.argmax())
    return {
        "top_label": model.captions.classes[best],
        "probability": probabilities[best].item(),
        "flagged": verdict.flagged,
        "distance": verdict.distance,
        "label_similarity": verdict.similarity,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Settings().checkpoint)
    add_data_arguments(parser)
    parser.add_argument("--rate", type=float, default=DEFAULT_FALSE_FLAG_RATE, help="held-out images to flag")
    parser.add_argument("--per-kind", type=int, default=200, help="drawn images of each kind")
    parser.add_argument("--crops", type=int, default=100, help="random crops of each photo")
    parser.add_argument("--no-save", action="store_true", help="measure without writing ood.safetensors")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    model, config = load_checkpoint(args.checkpoint)
    data = load_cifar10(args.data, args.cache_dir)
    val_size = config["train"]["val_size"]
    calibration, held_out = calibrate(model, data, val_size, weights_sha256(args.checkpoint), args.rate)
    if not args.no_save:
        print(f"wrote {save_calibration(calibration, args.checkpoint)}")
    results = {
        "checkpoint": str(args.checkpoint),
        "false_flag_rate": args.rate,
        "distance_threshold": calibration.distance_threshold,
        "label_similarity_threshold": calibration.similarity_threshold,
        "held_out": {
            "images": val_size,
            "flagged": (held_out.unusual | held_out.unmatched).float().mean().item(),
            "unusual_image": held_out.unusual.float().mean().item(),
            "no_label_fits": held_out.unmatched.float().mean().item(),
        },
        **measure(model, calibration, data.test, args.per_kind, args.crops),
    }
    for key in ("held_out", "test", "non_cifar", "auroc_test_vs_non_cifar", "test_without_own_class"):
        print(key, results[key])
    for name, shares in results["non_cifar_by_kind"].items():
        print(f"  {name:9s} flagged {shares['flagged']:.3f} of {shares['images']}")
    print("whole photos", results["whole_photos"])
    save_json(results, args.json)


if __name__ == "__main__":
    main()
