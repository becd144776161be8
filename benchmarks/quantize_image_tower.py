"""The image tower in int8: made once for a checkpoint, then what it costs and what it saves.

  python benchmarks/quantize_image_tower.py --checkpoint checkpoints/clip-cifar10 --data ../shared/data/cifar10 \
      [--json benchmarks/results/image_int8-NAME.json]

Calibrates ONNX Runtime's static int8 quantisation of the checkpoint's image tower
(`onnx_image.quantize`) on CALIBRATION_IMAGES images of the split training learned from (not the
images it held out, not the test split), and writes the graph beside the weights
(`onnx_image.INT8_FILE`), where the API's `auto` image backend finds it. Then, on the 10,000
test images, the float graph against the int8 one: the cosine between their flip-averaged
embeddings, TEST as `main.py --mode TEST` scores it (as served, flip average, retrieval), and
the time of an upload with its mirror and of 256-image batches on the tower's threads.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import add_data_arguments, median_seconds, save_json  # noqa: E402  (this folder is on sys.path as a script)

from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.evaluate import evaluate  # noqa: E402
from model_api.clip.inference import embed_images  # noqa: E402
from model_api.clip.onnx_image import INT8_FILE, quantize, use_image_backend  # noqa: E402
from model_api.settings import Settings  # noqa: E402

CALIBRATION_IMAGES = 512  # and their mirrors; 512 and 2,048 gave the same ranges within rounding
PAIR_REPEATS = 300


def speed(model, images: torch.Tensor) -> dict[str, float]:
    torch.set_num_threads(1)  # as the served tower's thread on ONNX Runtime
    return {
        "upload_with_mirror_ms": 1000 * median_seconds(lambda: embed_images(model, images[:1]), PAIR_REPEATS),
        "images_per_s": 2560 / median_seconds(lambda: embed_images(model, images[:2560]), 3, warmup=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Settings().checkpoint)
    add_data_arguments(parser)
    parser.add_argument("--threads", type=int, default=Settings().image_threads, help="ONNX Runtime threads")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    model, config = load_checkpoint(args.checkpoint)
    data = load_cifar10(args.data, args.cache_dir)
    train, _ = data.train_val(config["train"]["val_size"], seed=0)
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:CALIBRATION_IMAGES]
    started = time.perf_counter()
    path = quantize(model.visual, train.images[chosen], args.checkpoint / INT8_FILE)
    print(f"wrote {path} in {time.perf_counter() - started:.1f} s")

    cache_dir = Settings().onnx_dir
    towers = {
        backend: use_image_backend(copy.deepcopy(model), backend, cache_dir, args.threads, args.checkpoint)
        for backend in ("onnx", "onnx-int8")
    }
    test = data.test
    vectors = {backend: embed_images(tower, test.images) for backend, tower in towers.items()}
    cosine = (vectors["onnx"] * vectors["onnx-int8"]).sum(dim=1)
    results = {
        "checkpoint": str(args.checkpoint),
        "calibration_images": CALIBRATION_IMAGES,
        "cosine_int8_to_float": {"mean": cosine.mean().item(), "min": cosine.min().item()},
    }
    for backend, tower in towers.items():
        report = evaluate(tower, test, data.classes)
        results[backend] = {
            "accuracy_served": report["accuracy"],
            "accuracy_flip_averaged": report["flip_averaged"]["accuracy"],
            "retrieval": report["retrieval"],
            **speed(tower, test.images),
        }
    print(f"cosine int8 to float: mean {cosine.mean():.4f}, min {cosine.min():.4f}")
    for backend in towers:
        figures, retrieval = results[backend], results[backend]["retrieval"]
        print(
            f"{backend:<10} TEST served {figures['accuracy_served']:.4f}  "
            f"flip {figures['accuracy_flip_averaged']:.4f}  "
            f"P@10 {retrieval['precision_at_10']:.3f}  P@100 {retrieval['precision_at_100']:.3f}  "
            f"upload+mirror {figures['upload_with_mirror_ms']:.2f} ms  {figures['images_per_s']:.0f} images/s"
        )
    save_json(results, args.json)


if __name__ == "__main__":
    main()
