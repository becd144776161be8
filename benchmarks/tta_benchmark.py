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
from model_api.clip.inference import embed_images, embed_labels, label_probabilities  # noqa: E402

UNSURE_SHARES = (0.1, 0.25, 0.5)


def shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 moved dx px right and dy px down, the edge reflected into the gap."""
    h, w = images.shape[-2:]
    padded = torch.nn.functional.pad(images.float(), (1, 1, 1, 1), mode="reflect").to(images.dtype)
    return padded[:, :, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def six_view_embeddings(model, images: torch.Tensor) -> torch.Tensor:
    """(N, D) unit vectors: airbench94's weighted average of three flip-averaged pairs."""
    pairs = [embed_images(model, view) for view in (images, shifted(images, -1, -1), shifted(images, 1, 1))]
    return torch.nn.functional.normalize(0.5 * pairs[0] + 0.25 * pairs[1] + 0.25 * pairs[2], dim=-1)


def accuracy(embeddings: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor) -> float:
    return ((embeddings @ classes.T).argmax(1) == labels).float().mean().item()


def run(args: argparse.Namespace) -> dict:
    model, _ = load_checkpoint(args.checkpoint)
    test = load_cifar10(args.data, args.cache_dir).test
    classes = embed_labels(model, model.captions.classes)
    one = embed_images(model, test.images, mirror=False)
    flip = embed_images(model, test.images)
    six = six_view_embeddings(model, test.images)
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
    return results


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
    save_json(results, args.json)


if __name__ == "__main__":
    main()
