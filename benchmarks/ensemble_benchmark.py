"""Two checkpoints as one: the mean of their cosines (issue 17).

  python benchmarks/ensemble_benchmark.py --checkpoints checkpoints/clip-cifar10 runs/quick-combined-seed0/best \
      --data ../shared/data/cifar10 --json benchmarks/results/ensemble-wide-quick.json

Each image and each class is embedded by both checkpoints (flip-averaged images, class prompts
as served). The ensemble scores an image against a class by w * cos_a + (1 - w) * cos_b: the
cosine of the two unit vectors joined end to end, each scaled by the square root of its weight,
so one index of joined vectors would search exactly as it classifies. Reported for each member
and for the ensemble, on validation (the checkpoints' held-out training images, which choose w)
and on TEST: zero-shot accuracy of the flip-averaged embeddings and class-prompt retrieval; and
for each member alone and the joint at the chosen w, TEST accuracy as classification serves it
(six views for the least sure, `served_gate`).
The members must hold out the same validation images (same seed and val_size).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reporting import add_data_arguments, save_json  # noqa: E402  (this folder is on sys.path as a script)

from model_api.clip.checkpoint import load_checkpoint, read_config  # noqa: E402
from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.evaluate import retrieval_metrics  # noqa: E402
from model_api.clip.inference import embed_images, embed_labels, embed_six_views  # noqa: E402

WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))  # of the first checkpoint
UNSURE_SHARE = 0.1  # the served gate's rule: six views below the validation's least sure 10%


@dataclass
class Member:
    cosines: dict[str, torch.Tensor]  # per split, (N, C): flip-averaged images x class prompts
    six_view_test: torch.Tensor  # (N, C): six-view test images x class prompts
    scale: float  # the learned temperature's inverse


def embed_member(checkpoint: Path, splits: dict) -> Member:
    model, _ = load_checkpoint(checkpoint)
    classes = embed_labels(model, model.captions.classes)
    flip = {name: embed_images(model, split.images) for name, split in splits.items()}
    six = embed_six_views(model, splits["test"].images, flip["test"])
    return Member({name: vectors @ classes.T for name, vectors in flip.items()}, six @ classes.T, model.scale().item())


def served_gate(first: Member, second: Member, weight: float, labels: torch.Tensor) -> dict:
    """Accuracy as classification serves it, for the joint: six views for the test images whose
    top probability (at the members' mean temperature) is below the validation's least sure 10%."""
    scale = weight * first.scale + (1 - weight) * second.scale

    def joint(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return weight * a + (1 - weight) * b

    def confidence(cosines: torch.Tensor) -> torch.Tensor:
        return (scale * cosines).softmax(dim=1).amax(dim=1)

    below = confidence(joint(first.cosines["validation"], second.cosines["validation"])).quantile(UNSURE_SHARE)
    flip = joint(first.cosines["test"], second.cosines["test"])
    unsure = confidence(flip) < below
    served = torch.where(unsure[:, None], joint(first.six_view_test, second.six_view_test), flip)
    return {
        "confidence_below": below.item(),
        "test_share_below": unsure.float().mean().item(),
        "accuracy": (served.argmax(1) == labels).float().mean().item(),
    }


def figures(cosines: torch.Tensor, labels: torch.Tensor) -> dict:
    return {"accuracy": (cosines.argmax(1) == labels).float().mean().item(), **retrieval_metrics(cosines.T, labels)}


def run(args: argparse.Namespace) -> dict:
    data = load_cifar10(args.data, args.cache_dir)
    first, second = args.checkpoints
    held_out = {read_config(checkpoint)["train"]["val_size"] for checkpoint in args.checkpoints}
    if len(held_out) != 1:
        raise SystemExit("the checkpoints hold out different validation images")
    _, val = data.train_val(held_out.pop())  # split as train.py splits it
    splits = {"validation": val, "test": data.test}
    member_a, member_b = embed_member(first, splits), embed_member(second, splits)
    by_weight = {
        weight: {
            name: figures(weight * member_a.cosines[name] + (1 - weight) * member_b.cosines[name], split.labels)
            for name, split in splits.items()
        }
        for weight in WEIGHTS
    }
    chosen = max(WEIGHTS, key=lambda weight: (by_weight[weight]["validation"]["accuracy"], -abs(weight - 0.5)))
    return {
        "checkpoints": [str(first), str(second)],
        "first": by_weight[1.0],
        "second": by_weight[0.0],
        "equal_weights": by_weight[0.5],
        "weight_chosen_on_validation": chosen,
        "chosen": by_weight[chosen],
        "served_gate": {
            "first": served_gate(member_a, member_b, 1.0, data.test.labels),
            "second": served_gate(member_a, member_b, 0.0, data.test.labels),
            "chosen": served_gate(member_a, member_b, chosen, data.test.labels),
        },
        "by_weight": [{"weight": weight, **by_weight[weight]} for weight in WEIGHTS],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, nargs=2, required=True)
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = run(args)
    for row in results["by_weight"]:
        val, test = row["validation"], row["test"]
        print(
            f"w={row['weight']:.1f}  validation {val['accuracy']:.4f}  test {test['accuracy']:.4f}  "
            f"P@10/P@100/mAP {test['precision_at_10']:.3f} / {test['precision_at_100']:.3f} / "
            f"{test['mean_average_precision']:.3f}"
        )
    print(f"weight chosen on validation: {results['weight_chosen_on_validation']}")
    for name, gate in results["served_gate"].items():
        print(
            f"served gate, {name}: six views below top probability {gate['confidence_below']:.3f} "
            f"({gate['test_share_below']:.1%} of test): accuracy {gate['accuracy']:.4f}"
        )
    save_json(results, args.json)


if __name__ == "__main__":
    main()
