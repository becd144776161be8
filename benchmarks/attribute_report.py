"""What the pixel attribute reader (model_api.clip.attributes) says about the CIFAR-10 test set.

  .venv/bin/python benchmarks/attribute_report.py --data /work/shared/data/cifar10 --cache-dir .cache/data \
      [--json OUT.json] [--sheet .cache/attributes_contact_sheet.png] [--seed 0] [--sample 100]

Prints, and writes as JSON with --json, the share of images per colour, scene, light and
black-and-white, overall and within each class: the class-only base rate that a search
benchmark on attribute queries compares against ("a red car" by class alone finds red cars at
the rate red is read among automobiles). Also the reader's speed over the 10,000 images.

Draws a contact sheet of a fixed random sample, each image upscaled (nearest neighbour) with
its number, class and attributes written under it, for judging the reader by eye. The sheet
shows dataset images: it goes under .cache/, never into the repository.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import add_data_arguments, save_json  # noqa: E402  (this folder is on sys.path when run as a script)

from model_api.clip.attributes import (  # noqa: E402
    COLOURS,
    LIGHTS,
    SCENES,
    ImageAttributes,
    attribute_codes,
    decode_attributes,
)
from model_api.clip.data import load_cifar10  # noqa: E402

DEFAULT_SHEET = Path(__file__).resolve().parents[1] / ".cache" / "attributes_contact_sheet.png"
TILE = 96  # px per image on the sheet: 3x nearest-neighbour upscaling of 32 px
CAPTION_HEIGHT = 48  # four lines of PIL's default font under each image
COLUMNS = 10


def distribution(attributes: list[ImageAttributes]) -> dict[str, dict[str, float]]:
    """Share of images per value of each attribute kind; 'none' where the reader said nothing.

    Colour counts an image under every colour it names (main or second), so its shares may sum
    past 1; 'main colour' counts the first colour only.
    """
    n = max(len(attributes), 1)

    def shares(values: list[str]) -> dict[str, float]:
        return {value: round(count / n, 4) for value, count in Counter(values).most_common()}

    return {
        "colour": shares([c for a in attributes for c in a.colours] + ["none" for a in attributes if not a.colours]),
        "main colour": shares([a.colours[0] if a.colours else "none" for a in attributes]),
        "scene": shares([a.scene or "none" for a in attributes]),
        "light": shares([a.light or "none" for a in attributes]),
        "black and white": shares(["yes" if a.black_and_white else "no" for a in attributes]),
    }


def measure_speed(images: torch.Tensor, repeats: int = 3) -> float:
    """Images per second of `attribute_codes` over all of `images`: the best of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        attribute_codes(images)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def describe(item: ImageAttributes) -> list[str]:
    """The lines written under an image on the sheet: its colours, then scene, light and tone
    (the vocabularies are disjoint, so no labels are needed; '-' where the reader said nothing)."""
    rest = [item.light or "-", "b&w" if item.black_and_white else ""]
    return ["+".join(item.colours) or "-", item.scene or "-", " ".join(word for word in rest if word)]


def contact_sheet(images: torch.Tensor, captions: list[list[str]], path: Path) -> None:
    """images: (K, 3, 32, 32) uint8; captions: K lists of lines -> a PNG grid at `path`."""
    rows = -(-len(images) // COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + CAPTION_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (image, lines) in enumerate(zip(images, captions, strict=True)):
        x, y = (k % COLUMNS) * TILE, (k // COLUMNS) * (TILE + CAPTION_HEIGHT)
        tile = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((TILE, TILE), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        draw.multiline_text((x + 2, y + TILE + 1), "\n".join(lines), fill="black", spacing=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--sheet", type=Path, default=DEFAULT_SHEET, help="contact sheet PNG (not under docs/)")
    parser.add_argument("--seed", type=int, default=0, help="which random sample the sheet shows")
    parser.add_argument("--sample", type=int, default=100, help="images on the sheet")
    args = parser.parse_args()

    data = load_cifar10(args.data, args.cache_dir)
    images, labels = data.test.images, data.test.labels
    speed = measure_speed(images)
    attributes = decode_attributes(attribute_codes(images))
    overall = distribution(attributes)
    per_class = {
        name: distribution([a for a, label in zip(attributes, labels.tolist(), strict=True) if label == c])
        for c, name in enumerate(data.classes)
    }

    print(f"{len(images)} test images, {speed:.0f} images/s ({torch.get_num_threads()} threads)")
    for kind, shares in overall.items():
        print(f"{kind:>16}: " + ", ".join(f"{value} {share:.1%}" for value, share in shares.items()))
    for name, kinds in per_class.items():
        print(f"\n{name}")
        for kind in ("main colour", "scene", "light"):
            print(f"{kind:>16}: " + ", ".join(f"{value} {share:.1%}" for value, share in kinds[kind].items()))

    sample = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[: args.sample]
    captions = [[f"{k} {data.classes[labels[i]]}", *describe(attributes[i])] for k, i in enumerate(sample.tolist())]
    contact_sheet(images[sample], captions, args.sheet)
    save_json(
        {
            "images": len(images),
            "source": data.source,
            "images_per_second": round(speed),
            "threads": torch.get_num_threads(),
            "vocabulary": {"colour": COLOURS, "scene": SCENES, "light": LIGHTS},
            "overall": overall,
            "per_class": per_class,
            "sheet": {"seed": args.seed, "indices": sample.tolist()},
        },
        args.json,
    )


if __name__ == "__main__":
    main()
