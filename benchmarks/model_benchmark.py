"""Inference speed of the shipped checkpoint on this CPU.

  python benchmarks/model_benchmark.py [--checkpoint DIR] [--json OUT.json]

Measures image-encoding throughput at batch 256 and single-image latency, each for one view
and for the flip-averaged embedding the product serves (image and mirror image), and
text-encoding latency per query, for fp32 NCHW, fp32 channels_last and bf16 channels_last. The product uses
channels_last, with bf16 only where the CPU has bf16 kernels (`product_precision` says which).
Images are random uint8 tensors: speed does not depend on content.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import median_seconds, save_json  # noqa: E402  (this folder is on sys.path when run as a script)

from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.hardware import Device, bf16_is_fast  # noqa: E402
from model_api.clip.inference import embed_images, embed_texts  # noqa: E402


def cpu_device(bf16: bool, memory_format: torch.memory_format = torch.channels_last) -> Device:
    return Device(torch.device("cpu"), torch.bfloat16 if bf16 else None, memory_format)


def measure(model, device: Device) -> dict[str, float]:
    """One view is the image tower's own speed; flip-averaged (image and mirror in one batch) is
    what the product computes per image."""
    batch = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    one = batch[:1]

    def images_seconds(images: torch.Tensor, mirror: bool, repeats: int) -> float:
        return median_seconds(lambda: embed_images(model, images, device=device, mirror=mirror), repeats=repeats)

    queries = [f"a photo of a thing number {i}" for i in range(200)]
    text_seconds = statistics.median(
        median_seconds(lambda q=q: embed_texts(model, [q]), repeats=1, warmup=1) for q in queries
    )
    return {
        "images_per_s_batch256": 256 / images_seconds(batch, mirror=False, repeats=20),
        "images_per_s_batch256_flip_averaged": 256 / images_seconds(batch, mirror=True, repeats=20),
        "single_image_ms": images_seconds(one, mirror=False, repeats=200) * 1000,
        "single_image_flip_averaged_ms": images_seconds(one, mirror=True, repeats=200) * 1000,
        "text_query_ms": text_seconds * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/clip-cifar10"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model, _ = load_checkpoint(args.checkpoint)  # channels_last, as served
    results = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "product_precision": "bf16_channels_last" if bf16_is_fast() else "fp32_channels_last",
        "fp32_channels_last": measure(model, cpu_device(bf16=False)),
        "bf16_channels_last": measure(model, cpu_device(bf16=True)),
        "fp32_nchw": measure(
            model.to(memory_format=torch.contiguous_format),
            cpu_device(bf16=False, memory_format=torch.contiguous_format),
        ),
    }
    print(json.dumps(results, indent=2))
    save_json(results, args.json)


if __name__ == "__main__":
    main()
