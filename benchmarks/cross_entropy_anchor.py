"""The anchor: the project's image tower trained as a plain classifier with cross-entropy.

  python benchmarks/cross_entropy_anchor.py [--epochs 10] [--seed 0] [--image-optimizer sgd]
      [--data PATH] [--json OUT.json]

What the contrastive objective costs, if anything: the same tower (`ImageEncoder`, airbench94's
net), data (the same 45,000 training images and 5,000 held out), batch augmentation, optimizers,
schedule and weight averaging as `main.py --mode TRAIN`, with airbench94's head in place of the
projection, captions and text tower: a linear layer without bias to the ten classes, its logits
scaled by 1/9, and label-smoothed cross-entropy. PyPI's `airbench` cannot run here: it imports
torchvision and puts its net on CUDA in half precision. Reports validation accuracy after each
epoch, and on the 10,000 test images the last weights' accuracy with one view and with airbench's
flip test-time augmentation (the logits of each image and its mirror image summed).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, when run as a script

from benchmarks.reporting import add_data_arguments, save_json  # noqa: E402
from model_api.clip.classifier import LOGIT_SCALE, Classifier  # noqa: E402
from model_api.clip.config import IMAGE_OPTIMIZERS, ImageEncoderConfig, TrainConfig  # noqa: E402
from model_api.clip.data import Cifar10, Split, load_cifar10, to_float  # noqa: E402
from model_api.clip.hardware import Device, resolve_device  # noqa: E402
from model_api.clip.train import (  # noqa: E402
    WeightAverager,
    averaging_decay,
    epoch_draw,
    image_optimizers,
    remember_base_lrs,
    set_learning_rates,
)

# airbench94's epochs (9.9 there), whole: the triangular schedule runs over whole epochs here.
ANCHOR_EPOCHS = 10


class Anchor:
    """One cross-entropy training run with the project's recipe."""

    def __init__(self, data: Cifar10, config: ImageEncoderConfig, recipe: TrainConfig, device: Device) -> None:
        self.recipe, self.device = recipe, device
        self.train_split, self.val_split = data.train_val(recipe.val_size, seed=0)
        self.images = self.train_split.images.to(device.torch_device)  # (N, 3, 32, 32) uint8
        torch.manual_seed(recipe.seed)
        self.net = Classifier(config, len(data.classes)).to(device.torch_device, memory_format=device.memory_format)
        self.net.visual.init_whitening(to_float(self.images[:5000]))
        muon, sgd = image_optimizers(self.net.visual, [self.net.head.weight], recipe)
        self.optimizers = (sgd,) if muon is None else (muon, sgd)
        remember_base_lrs(self.optimizers)
        self.averager = WeightAverager(self.net)
        self.steps_per_epoch = math.ceil(len(self.train_split) / recipe.batch_size)
        self.total_steps = recipe.epochs * self.steps_per_epoch

    def train_step(self, images: torch.Tensor, chosen: torch.Tensor) -> float:
        """images (N, 3, 32, 32) uint8, the epoch's augmented images; chosen (B,) the batch's rows."""
        batch = to_float(images[chosen.to(self.device.torch_device)])
        labels = self.train_split.labels[chosen].to(self.device.torch_device)
        with self.device.autocast():
            logits = self.net(batch.contiguous(memory_format=self.device.memory_format))
        # A batch mean, as the recipe's learning rates assume (`image_optimizers`).
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.recipe.label_smoothing)
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss.item()

    def run_epoch(self, epoch: int) -> dict[str, float]:
        self.net.train()
        _, images, order = epoch_draw(self.images, self.recipe, epoch)
        losses, started = [], time.perf_counter()
        for index, start in enumerate(range(0, len(order), self.recipe.batch_size)):
            step = epoch * self.steps_per_epoch + index + 1
            set_learning_rates(self.optimizers, step, self.total_steps, epoch, self.recipe)
            losses.append(self.train_step(images, order[start : start + self.recipe.batch_size]))
            decay = averaging_decay(step, self.total_steps, epoch, self.recipe)
            if decay is not None:
                self.averager.update(self.net, decay)
        if epoch + 1 == self.recipe.epochs and self.recipe.epochs > self.recipe.ema_start_epoch:
            self.averager.update(self.net, decay=1.0)  # finish on the averaged weights, as train.py does
        seconds = time.perf_counter() - started
        return {"loss": sum(losses) / len(losses), "seconds": seconds, "images_per_s": len(order) / seconds}

    @torch.no_grad()
    def accuracy(self, split: Split, batch_size: int = 1000) -> dict[str, float]:
        """One view per image, and the logits of the image and its mirror image summed."""
        self.net.eval()
        one_view, flipped = [], []
        for start in range(0, len(split), batch_size):
            batch = to_float(split.images[start : start + batch_size].to(self.device.torch_device))
            batch = batch.contiguous(memory_format=self.device.memory_format)
            with self.device.autocast():
                logits, mirrored = self.net(batch).float(), self.net(batch.flip(-1)).float()
            one_view.append(logits.argmax(1).cpu())
            flipped.append((logits + mirrored).argmax(1).cpu())
        labels = split.labels
        return {
            "one_view": (torch.cat(one_view) == labels).float().mean().item(),
            "flip_averaged": (torch.cat(flipped) == labels).float().mean().item(),
        }

    def fit(self) -> list[dict[str, float]]:
        history = []
        for epoch in range(self.recipe.epochs):
            record = {"epoch": epoch + 1, **self.run_epoch(epoch), "val": self.accuracy(self.val_split)}
            history.append(record)
            val = record["val"]
            print(
                f"epoch {epoch + 1}/{self.recipe.epochs} loss {record['loss']:.4f} val {val['one_view']:.4f} "
                f"(flip {val['flip_averaged']:.4f}) {record['images_per_s']:.0f} img/s {record['seconds']:.0f}s",
                flush=True,
            )
        return history


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=ANCHOR_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-optimizer", choices=IMAGE_OPTIMIZERS, default="sgd", help="airbench94: sgd")
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    data = load_cifar10(args.data, args.cache_dir)
    recipe = replace(TrainConfig(), epochs=args.epochs, seed=args.seed, image_optimizer=args.image_optimizer)
    device = resolve_device("cpu")
    load_before, started_at, started = os.getloadavg(), utc_now(), time.perf_counter()
    anchor = Anchor(data, ImageEncoderConfig(), recipe, device)
    history = anchor.fit()
    train_seconds = time.perf_counter() - started
    test = anchor.accuracy(data.test)
    print(f"TEST one view {test['one_view']:.4f}, flip-averaged {test['flip_averaged']:.4f}", flush=True)
    save_json(
        {
            "command": " ".join(sys.argv),
            "machine": {
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                **device.describe(),
                "load_average_1_5_15_min_at_start": load_before,
                "load_average_1_5_15_min_at_end": os.getloadavg(),
            },
            "started": started_at,
            "finished": utc_now(),
            "wall_seconds_init_and_training": train_seconds,
            "median_images_per_s": sorted(record["images_per_s"] for record in history)[len(history) // 2],
            "recipe": recipe.to_dict(),
            "head": {"logit_scale": LOGIT_SCALE, "loss": "cross-entropy, label smoothing"},
            "data": {"source": data.source, "fingerprint": data.fingerprint, "train_images": len(anchor.train_split)},
            "history": history,
            "test": test,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
