"""Test-time augmentation, in full and only where the model is unsure (issue 17, part 2).

  python benchmarks/tta_benchmark.py --checkpoint checkpoints/clip-cifar10 --data ../shared/data/cifar10 \
      --json benchmarks/results/tta-wide-attr-seed0.json

Zero-shot accuracy over the test images for:
  one view          the image alone
  flip              image and mirror, embeddings averaged (what the product serves)
  six views         airbench94's: mirror x {no shift, 1 px up-left, 1 px down-right}, weights
                    0.5 / 0.25 / 0.25 for the unshifted and each shifted pair
  gated             one view for the images the model is sure of; flip or six views for the
                    given share of least sure ones (lowest top probability on one view), as
                    hiverge's CIFAR-10 speedrun does for its 25% least confident
  served gate       what classification serves (`refine_unsure`): flip for every image, six
                    views below a top probability on it, at the default and at thresholds
                    taken from the validation images
with the tower's image encodings per test image each costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reporting import add_data_arguments, save_json  # noqa: E402  (this folder is on sys.path as a script)

from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.inference import (  # noqa: E402
    UNSURE_BELOW,
    embed_images,
    embed_labels,
    embed_six_views,
    label_probabilities,
)

UNSURE_SHARES = (0.1, 0.25, 0.5)


def accuracy(embeddings: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor) -> float:
    return ((embeddings @ classes.T).argmax(1) == labels).float().mean().item()


def run(args: argparse.Namespace) -> dict:
    model, config = load_checkpoint(args.checkpoint)
    data = load_cifar10(args.data, args.cache_dir)
    test = data.test
    classes = embed_labels(model, model.captions.classes)
    one = embed_images(model, test.images, mirror=False)
    flip = embed_images(model, test.images)
    six = embed_six_views(model, test.images, flip)
    confidence = label_probabilities(model, one, classes).amax(1)  # (N,) top probability, one view
    results = {
        "checkpoint": str(args.checkpoint),
        "images": len(test),
        "one_view": {"accuracy": accuracy(one, classes, test.labels), "encodings_per_image": 1},
        "flip": {"accuracy": accuracy(flip, classes, test.labels), "encodings_per_image": 2},
        "six_views": {"accuracy": accuracy(six, classes, test.labels), "encodings_per_image": 6},
        "gated": [],
    }
    order = confidence.argsort()  # least sure first
    for share in UNSURE_SHARES:
        unsure = order[: round(share * len(test))]
        for name, views, augmented in (("flip", 2, flip), ("six_views", 6, six)):
            mixed = one.clone()
            mixed[unsure] = augmented[unsure]
            results["gated"].append(
                {
                    "unsure_share": share,
                    "augmentation": name,
                    # The threshold a server would apply: top probabilities below it get the views.
                    "confidence_below": confidence[order[len(unsure)]].item(),
                    "accuracy": accuracy(mixed, classes, test.labels),
                    "encodings_per_image": 1 + share * (views - 1),  # the one view is reused
                }
            )
    results["served_gate"] = served_gate(model, config, data, classes, flip, six, test.labels)
    return results


def served_gate(model, config: dict, data, classes, flip, six, labels) -> list[dict]:
    """The gate the product applies (`refine_unsure`): flip-averaged vectors for every image, six
    views for those whose top probability on them is below a threshold. Thresholds: the served
    default and the validation images' quantiles (the checkpoint's own held-out training images),
    so that no test figure chooses them."""
    _, val = data.train_val(config["train"]["val_size"])  # split as train.py splits it
    val_confidence = label_probabilities(model, embed_images(model, val.images), classes).amax(1)
    confidence = label_probabilities(model, flip, classes).amax(1)
    thresholds = [UNSURE_BELOW] + [val_confidence.quantile(share).item() for share in UNSURE_SHARES]
    rows = []
    for below in thresholds:
        unsure = confidence < below
        mixed = torch.where(unsure[:, None], six, flip)
        rows.append(
            {
                "confidence_below": below,
                "validation_share_below": (val_confidence < below).float().mean().item(),
                "test_share_below": unsure.float().mean().item(),
                "accuracy": accuracy(mixed, classes, labels),
                "encodings_per_image": 2 + 4 * unsure.float().mean().item(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints" / "clip-cifar10")
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = run(args)
    for name in ("one_view", "flip", "six_views"):
        figures = results[name]
        print(f"{name:<10} accuracy {figures['accuracy']:.4f}  encodings/image {figures['encodings_per_image']}")
    for gated in results["gated"]:
        print(
            f"gated {gated['augmentation']:<9} on the {gated['unsure_share']:.0%} least sure "
            f"(top probability < {gated['confidence_below']:.3f}): accuracy {gated['accuracy']:.4f}, "
            f"encodings/image {gated['encodings_per_image']:.2f}"
        )
    for gated in results["served_gate"]:
        print(
            f"served gate: six views below top probability {gated['confidence_below']:.3f} on the flip "
            f"average ({gated['validation_share_below']:.0%} of validation, {gated['test_share_below']:.0%} of test): "
            f"accuracy {gated['accuracy']:.4f}, encodings/image {gated['encodings_per_image']:.2f}"
        )
    save_json(results, args.json)


if __name__ == "__main__":
    main()
