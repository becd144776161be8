"""Where a first-seen upload's classification spends its time in process, stage by stage.

  python benchmarks/classify_breakdown.py --checkpoints checkpoints/clip-cifar10 DIR ... \
      --data ../shared/data/cifar10 [--images 600] [--json OUT.json]

Each checkpoint is loaded as the API loads it (`ServedModel.load`, the image backend its settings
resolve to on this machine), then CIFAR-10 test images go through `ServedModel.classify` one at a
time, and through each of its stages on their own: the served embedding (image and mirror on
the image tower's thread), the extra views for an unsure image, the out-of-distribution verdict
and the label ranking. p50 and p90 per stage, the first tenth of the images not counted. What
HTTP adds (upload parsing, PNG decoding, JSON) is `api_benchmark.py`'s; the difference between
the two is that.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import add_data_arguments, latency_summary, save_json  # noqa: E402  (this folder is on sys.path as a script)

from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.inference import embed_labels, rank_labels, refine_unsure  # noqa: E402
from model_api.served_model import ServedModel  # noqa: E402
from model_api.settings import Settings  # noqa: E402


def milliseconds(call: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """call(*args) and how long it took, in ms."""
    started = time.perf_counter()
    result = call(*args)
    return result, (time.perf_counter() - started) * 1e3


def breakdown(checkpoint: Path, images, warmup: int) -> dict:
    served = ServedModel.load(Settings(checkpoint=checkpoint))
    model, classes = served.model, served.classes
    labels = embed_labels(model, classes)
    stages: dict[str, list[float]] = {name: [] for name in ("classify", "embed", "refine", "ood", "rank")}
    unsure = 0
    for index in range(len(images)):
        image = images[index : index + 1]
        stages["classify"].append(milliseconds(served.classify, image, None, None)[1])
        vector, ms = milliseconds(served.image_vectors, image)
        vector = torch.from_numpy(vector)
        stages["embed"].append(ms)
        # On this thread, not the tower's: the same work on ONNX Runtime, whose session has its own threads.
        refined, ms = milliseconds(refine_unsure, model, image, vector, labels, served.unsure_below)
        stages["refine"].append(ms)
        unsure += int(not torch.equal(refined, vector))
        if served.ood is not None:
            stages["ood"].append(milliseconds(served.ood.verdicts, vector, labels)[1])
        stages["rank"].append(milliseconds(rank_labels, model, refined, labels, classes, len(classes))[1])
    served.close()
    return {
        "checkpoint": str(checkpoint),
        "image_backend": type(model.visual).__name__ + (" int8" if getattr(model.visual, "int8", False) else ""),
        "dim": model.config.dim,
        "ood_calibrated": served.ood is not None,
        "unsure_share": unsure / len(images),
        "stages": {name: latency_summary(ms[warmup:]) for name, ms in stages.items() if ms},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    add_data_arguments(parser)
    parser.add_argument("--images", type=int, default=600, help="test images, classified one at a time")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    images = load_cifar10(args.data, args.cache_dir).test.images[: args.images]
    results = [breakdown(checkpoint, images, warmup=args.images // 10) for checkpoint in args.checkpoints]
    for result in results:
        stages = "  ".join(f"{name} {ms['p50_ms']:.2f}/{ms['p90_ms']:.2f}" for name, ms in result["stages"].items())
        print(f"{result['checkpoint']} ({result['image_backend']}, D={result['dim']}): p50/p90 ms  {stages}")
    save_json({"runs": results}, args.json)


if __name__ == "__main__":
    main()
