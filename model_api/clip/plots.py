"""Figures written by main.py: training curve, confusion matrix, prediction bar chart.

Every figure is written atomically (`files.write_atomically`), so a reader never sees half a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from .files import write_atomically  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> None:
    write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=100))
    plt.close(figure)


def training_curve(history: list[dict[str, Any]], path: Path) -> None:
    epochs = [record["epoch"] for record in history]
    figure, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(epochs, [record["loss"] for record in history], "o-", color="tab:blue")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(epochs, [record["val_accuracy"] for record in history], "s-", color="tab:orange")
    accuracy_axis.set_ylabel("validation accuracy", color="tab:orange")
    figure.tight_layout()
    _save(figure, path)


def confusion_matrix(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 6))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, count, ha="center", va="center", fontsize=7, color="white" if count > peak / 2 else "black")
    figure.tight_layout()
    _save(figure, path)


def prediction_chart(image: Image.Image, ranked: list[tuple[str, float]], path: Path) -> None:
    """The image (upscaled without blur) beside a horizontal bar chart of label scores."""
    figure, (image_axis, bar_axis) = plt.subplots(1, 2, figsize=(9, 4), width_ratios=(1, 1.4))
    image_axis.imshow(image, interpolation="nearest")
    image_axis.axis("off")
    labels = [label for label, _ in reversed(ranked)]
    scores = [score for _, score in reversed(ranked)]
    bar_axis.barh(labels, scores, color="tab:blue")
    bar_axis.set_xlim(0, 1)
    bar_axis.set_xlabel("probability")
    figure.tight_layout()
    _save(figure, path)
