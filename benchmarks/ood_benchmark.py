"""Calibrate a checkpoint's out-of-distribution flags and measure them.

  python benchmarks/ood_benchmark.py [--checkpoint DIR] [--rate 0.05] [--no-save] [--json OUT.json]

Fits the class Gaussians on 10,000 training images and the two thresholds on the images training
held out (`model_api/clip/ood.py`), embedded by the image tower the API would serve
(`CLIP_IMAGE_BACKEND`, default auto: the checkpoint's int8 graph on a CPU where it has one),
writes them beside the weights (`ood.safetensors`, which the API reads; `--no-save` only
measures), then reports on data the calibration never saw: the share of the 10,000 test images
flagged (false flags) against the share of non-CIFAR images flagged (`non_cifar.py`: drawn
images and crops of the photos installed packages ship), per kind, with the AUROC of each score
and of the max softmax probability as a baseline; the three whole photos as an upload would send
them; and test images asked about typed label lists, with and without a label that fits them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from non_cifar import drawn_images, photo_images  # noqa: E402  (this folder is on sys.path as a script)
from reporting import add_data_arguments, save_json  # noqa: E402

from model_api.clip.checkpoint import load_checkpoint, weights_sha256  # noqa: E402
from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.inference import embed_images, embed_labels, label_probabilities  # noqa: E402
from model_api.clip.onnx_image import use_image_backend  # noqa: E402
from model_api.clip.ood import DEFAULT_FALSE_FLAG_RATE, OodCalibration, calibrate, save_calibration  # noqa: E402
from model_api.settings import Settings  # noqa: E402

HELD_OUT_QUERIES = Path(__file__).with_name("open_vocab_queries_heldout.json")  # its label_groups


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


def typed_labels(model, calibration: OodCalibration, images: torch.Tensor, targets: torch.Tensor) -> dict:
    """Test images asked about label lists a person might type: share flagged, and share flagged
    because no label fits. With a synonym of each class (the caption vocabulary's second word) or
    the held-out queries' class groups, every image has a fitting label; with the nine other
    classes, none has."""
    unusual = calibration.distances(images) > calibration.distance_threshold

    def shares(best_similarity: torch.Tensor) -> dict[str, float]:
        unmatched = best_similarity < calibration.similarity_threshold
        return {
            "flagged": (unmatched | unusual).float().mean().item(),
            "no_label_fits": unmatched.float().mean().item(),
        }

    classes = model.captions.classes
    synonyms = [model.captions.vocabulary[name][1] for name in classes]
    groups = json.loads(HELD_OUT_QUERIES.read_text())["label_groups"]
    others = images @ embed_labels(model, classes).T  # (N, C)
    others[torch.arange(len(images)), targets] = -2.0  # the own class is not among the labels
    return {
        "synonyms": {"labels": synonyms, **shares((images @ embed_labels(model, synonyms).T).max(dim=1).values)},
        "groups": {"labels": list(groups), **shares((images @ embed_labels(model, list(groups)).T).max(dim=1).values)},
        "nine_other_classes": shares(others.max(dim=1).values),
    }


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
        "test_typed_labels": typed_labels(model, calibration, test_images, test.labels),
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
    # Calibrated on the vectors the API serves: an int8 tower's rounding moves an image along the
    # directions the classes hardly vary in, where the distance is most sensitive.
    settings = Settings()
    use_image_backend(model, settings.image_backend, settings.onnx_dir, settings.image_threads, args.checkpoint)
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
    for key in ("held_out", "test", "non_cifar", "auroc_test_vs_non_cifar", "test_typed_labels"):
        print(key, results[key])
    for name, shares in results["non_cifar_by_kind"].items():
        print(f"  {name:9s} flagged {shares['flagged']:.3f} of {shares['images']}")
    print("whole photos", results["whole_photos"])
    save_json(results, args.json)


if __name__ == "__main__":
    main()
