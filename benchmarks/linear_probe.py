"""Where a checkpoint's zero-shot accuracy is lost: in the text side or in the image tower?

  python benchmarks/linear_probe.py [--checkpoint DIR] [--data PATH] [--json OUT.json]

Fits a logistic-regression classifier (a linear probe, L-BFGS) on the image tower's outputs for
the 45,000 training images the checkpoint trained on, and scores it on the 10,000 test images,
next to zero-shot classification with the class prompts. If the probe is no better than
zero-shot, the text side's class embeddings are as good a linear classifier as the image
embeddings allow, and accuracy can only come from a better image tower. The probe's accuracy
on its own training images shows how far the tower overfits. One view per image: this compares
classifiers on the same features, not the served embedding.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import add_data_arguments, save_json  # noqa: E402  (this folder is on sys.path when run as a script)

from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.config import TrainConfig  # noqa: E402
from model_api.clip.data import load_cifar10, to_float  # noqa: E402
from model_api.clip.inference import embed_labels, inference_mode  # noqa: E402

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "clip-cifar10"


def tower_features(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The image tower's pooled features, before the projection into the shared space."""
    with inference_mode():
        chunks = [
            model.visual(to_float(images[start : start + batch_size]).contiguous(memory_format=torch.channels_last))
            for start in range(0, len(images), batch_size)
        ]
    return torch.cat(chunks).float()


def linear_probe(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor
) -> dict[str, float]:
    """Multinomial logistic regression on standardised features, lightly L2-regularised."""
    mean, std = train.mean(dim=0), train.std(dim=0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    classes = int(train_labels.max()) + 1
    weight = torch.zeros(train.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train @ weight + bias, train_labels) + 1e-4 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return {
            "train_accuracy": ((train @ weight + bias).argmax(1) == train_labels).float().mean().item(),
            "test_accuracy": ((test @ weight + bias).argmax(1) == test_labels).float().mean().item(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    model, config = load_checkpoint(args.checkpoint)
    data = load_cifar10(args.data, args.cache_dir)
    val_size = config.get("train", {}).get("val_size", TrainConfig.val_size)
    train, _ = data.train_val(val_size, seed=0)  # the split training used: no validation image
    test = data.test

    # Each image goes through the tower once: its embedding is the projection of its features.
    train_features, test_features = tower_features(model, train.images), tower_features(model, test.images)
    with inference_mode():
        train_embeddings, test_embeddings = model.project_image(train_features), model.project_image(test_features)
    class_embeddings = embed_labels(model, data.classes)
    zero_shot = ((test_embeddings @ class_embeddings.T).argmax(1) == test.labels).float().mean().item()
    results = {
        "checkpoint": str(args.checkpoint),
        "train_images": len(train),
        "test_images": len(test),
        "zero_shot_accuracy": zero_shot,
        "probe_on_embeddings": linear_probe(train_embeddings, train.labels, test_embeddings, test.labels),
        "probe_on_tower_features": linear_probe(train_features, train.labels, test_features, test.labels),
    }
    print(json.dumps(results, indent=2))
    save_json(results, args.json)


if __name__ == "__main__":
    main()
