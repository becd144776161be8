"""Does text search see the image, not only its class? Precision@10 of attribute queries.

  .venv/bin/python benchmarks/attribute_search_benchmark.py --checkpoint checkpoints/clip-cifar10 \
      [--data ../shared/data/cifar10] [--queries benchmarks/attribute_queries.json] [--json OUT.json]

Two query sets over the 10,000 test images, searched with the flip-averaged embeddings the
product serves; an image counts for a query when it is of the query's class and the pixel
reader (`model_api.clip.attributes`) found what the query names in it:
- generated: for every (class, attribute value) with at least MIN_RELEVANT test images, one
  query from the reader's own vocabulary ("a photo of a red automobile.", "a photo of an
  airplane in the sky.", "a dark photo of a cat."), grouped by attribute kind;
- --queries: a hand-written set (default benchmarks/attribute_queries.json, written before any
  result was seen), reported whole.
For judging by eye (the reader is right about three times in four), --written-sheets and
--generated-sheets draw the hand-written queries' and the generated colour queries' top 10 on
blind sheets: one query a row, the class alone under each image, never what the reader found,
so that a person judges the pixels. Sheets show dataset images, so they go under .cache/.
Beside each P@10 stands its class-only base rate: the share of the class's test images that
have the attribute, which is what a search that only knows the class scores on average.

The reader names no colour for about half the images and no scene for most, so an image of the
query's class it is silent on is not known to lack the attribute, yet P@10 counts it as wrong.
P@10 over judged images ("judged_precision_at_10") leaves those images out of the ranking before
taking the top 10 (a condensed list, the usual way to score a ranking against incomplete
judgements); it stands beside P@10, never for it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attribute_report import contact_sheet  # noqa: E402  (this folder is on sys.path when run as a script)
from reporting import add_data_arguments, save_json  # noqa: E402

from model_api.clip.attributes import COLOURS, LIGHTS, NONE_CODE, SCENES  # noqa: E402
from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.data import Split, load_cifar10  # noqa: E402
from model_api.clip.inference import embed_images, embed_labels, embed_texts  # noqa: E402

QUERIES = Path(__file__).with_name("attribute_queries.json")
MIN_RELEVANT = 20  # fewer relevant images than this and a query's P@10 says little
# Column of each attribute kind in the reader's codes, and its vocabulary.
# Zero-shot with labels that name a colour and a group of classes ("a red vehicle").
GROUPS = {"vehicle": ("airplane", "automobile", "ship", "truck"), "animal": ("bird", "cat", "deer", "dog", "horse")}
GROUP_COLOURS = ("red", "white", "black", "blue", "brown")
KINDS = {"colour": (0, COLOURS), "scene": (2, SCENES), "light": (3, LIGHTS)}
# The kinds whose "none" means the reader would not say; light's means "neither dark nor bright".
SILENT_WHEN_NONE = ("colour", "scene")
SCENE_PHRASES = {
    "sky": "in the sky",
    "water": "on the water",
    "grass": "on the grass",
    "white background": "on a white background",
}


def relevant(split: Split, classes: tuple[str, ...], want: dict[str, Any]) -> torch.Tensor:
    """(N,) bool: test images of the wanted class with every wanted attribute."""
    mask = split.labels == classes.index(want["class"])
    for kind, (column, names) in KINDS.items():
        if kind in want:
            mask &= split.attributes[:, column] == names.index(want[kind])
    if want.get("black_and_white"):
        mask &= split.attributes[:, 4] == 1
    return mask


def reader_silent(split: Split, want: dict[str, Any]) -> torch.Tensor:
    """(N,) bool: images on which the reader names nothing of a kind `want` asks for. Of the
    wanted class, those are the images whose relevance it did not decide."""
    silent = torch.zeros(len(split.labels), dtype=torch.bool)
    for kind in SILENT_WHEN_NONE:
        if kind in want:
            silent |= split.attributes[:, KINDS[kind][0]] == NONE_CODE
    return silent


def generated_queries(split: Split, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """One query per (class, attribute value) that has at least MIN_RELEVANT images."""
    queries = []
    for name in classes:
        article = "an" if name[0] in "aeiou" else "a"
        for kind, (_, names) in KINDS.items():
            for value in names:
                want = {"class": name, kind: value}
                if int(relevant(split, classes, want).sum()) < MIN_RELEVANT:
                    continue
                text = {
                    "colour": f"a photo of {'an' if value[0] in 'aeiou' else 'a'} {value} {name}.",
                    "scene": f"a photo of {article} {name} {SCENE_PHRASES.get(value)}.",
                    "light": f"a {value} photo of {article} {name}.",
                }[kind]
                queries.append({"query": text, "kind": kind, **want})
        want = {"class": name, "black_and_white": True}
        if int(relevant(split, classes, want).sum()) >= MIN_RELEVANT:
            text = f"a black and white photo of {article} {name}."
            queries.append({"query": text, "kind": "black_and_white", **want})
    return queries


def score(queries: list[dict[str, Any]], similarity: torch.Tensor, split: Split, classes) -> list[dict[str, Any]]:
    """Each query with its P@10, its class-only base rate and how many images it could find."""
    top10 = similarity.topk(10, dim=1).indices  # (Q, 10)
    results = []
    for query, row, scores in zip(queries, top10, similarity, strict=True):
        wanted = relevant(split, classes, query)
        in_class = split.labels == classes.index(query["class"])
        undecided = in_class & reader_silent(split, query)
        judged_top10 = scores.masked_fill(undecided, -torch.inf).topk(10).indices
        results.append(
            {
                **query,
                "precision_at_10": wanted[row].float().mean().item(),
                "judged_precision_at_10": wanted[judged_top10].float().mean().item(),
                "class_only_base_rate": (wanted.sum() / in_class.sum()).item(),
                "class_precision_at_10": in_class[row].float().mean().item(),
                "relevant_images": int(wanted.sum()),
            }
        )
    return results


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "queries": len(results),
        "precision_at_10": statistics.mean(r["precision_at_10"] for r in results),
        "judged_precision_at_10": statistics.mean(r["judged_precision_at_10"] for r in results),
        "class_only_base_rate": statistics.mean(r["class_only_base_rate"] for r in results),
        "class_precision_at_10": statistics.mean(r["class_precision_at_10"] for r in results),
    }


def colour_group_accuracy(model, images: torch.Tensor, split: Split, classes: tuple[str, ...]) -> dict[str, Any]:
    """Per group, zero-shot over "a {colour} {group}" labels on the group's images whose main
    colour is one of them; right when the label's colour is the image's."""
    results = {}
    for group, members in GROUPS.items():
        in_group = torch.isin(split.labels, torch.tensor([classes.index(c) for c in members]))
        colours = [c for c in GROUP_COLOURS if int((in_group & (split.attributes[:, 0] == COLOURS.index(c))).sum())]
        codes = torch.tensor([COLOURS.index(c) for c in colours])
        chosen = in_group & torch.isin(split.attributes[:, 0].long(), codes)
        labels = [f"a {colour} {group}" for colour in colours]
        predicted = (images[chosen] @ embed_labels(model, labels).T).argmax(dim=1)
        truth = (split.attributes[chosen, 0].long()[:, None] == codes[None, :]).float().argmax(dim=1)
        results[group] = {
            "labels": labels,
            "images": int(chosen.sum()),
            "accuracy": (predicted == truth).float().mean().item(),
        }
    return results


def draw_top10(queries: list[dict[str, Any]], similarity: torch.Tensor, split: Split, classes, path: Path) -> None:
    """One row per query: its top 10, each tile with its rank and class only, so that a person
    judges the pixels, not the reader."""
    top10 = similarity.topk(10, dim=1).indices  # (Q, 10)
    captions = []
    for q, query in enumerate(queries):
        for rank, index in enumerate(top10[q].tolist()):
            heading = f"{q}: {query['query']}"[:16] if rank == 0 else f"{q}.{rank + 1}"
            captions.append([f"{heading} {classes[split.labels[index]]}"[:18]])
    contact_sheet(split.images[top10.flatten()], captions, path)


SHEET_ROWS = 13  # queries per sheet, few enough to read at a glance: 52 generated colour queries make four


def draw_sheets(
    queries, similarity: torch.Tensor, split: Split, classes, rows: list[int], folder: Path, stem: str
) -> None:
    """The top 10 of queries[rows] on blind sheets of SHEET_ROWS queries each, folder/stem_NN.png,
    NN the position in `rows` of the sheet's first query."""
    for start in range(0, len(rows), SHEET_ROWS):
        chosen = rows[start : start + SHEET_ROWS]
        path = folder / f"{stem}_{start:02d}.png"
        draw_top10([queries[q] for q in chosen], similarity[chosen], split, classes, path)


def run(
    checkpoint: Path,
    queries_path: Path,
    data_source: str,
    cache_dir: Path,
    written_sheets: Path | None = None,
    generated_sheets: Path | None = None,
) -> dict[str, Any]:
    model, _ = load_checkpoint(checkpoint)
    data = load_cifar10(data_source, cache_dir)
    images = embed_images(model, data.test.images)  # (N, D)
    results: dict[str, Any] = {"checkpoint": str(checkpoint)}
    for name, queries in (
        ("generated", generated_queries(data.test, data.classes)),
        ("written", json.loads(queries_path.read_text())["queries"]),
    ):
        similarity = embed_texts(model, [query["query"] for query in queries]) @ images.T  # (Q, N)
        scored = score(queries, similarity, data.test, data.classes)
        if name == "written" and written_sheets:
            draw_sheets(queries, similarity, data.test, data.classes, list(range(len(queries))), written_sheets, name)
        if name == "generated" and generated_sheets:
            colour = [q for q, query in enumerate(queries) if query["kind"] == "colour"]
            draw_sheets(queries, similarity, data.test, data.classes, colour, generated_sheets, "generated_colour")
        kinds = sorted({r.get("kind", "written") for r in scored})
        results[name] = {
            "all": summary(scored),
            "by_kind": {kind: summary([r for r in scored if r.get("kind", "written") == kind]) for kind in kinds},
            "queries": scored,
        }
    results["colour_group_zero_shot"] = colour_group_accuracy(model, images, data.test, data.classes)
    return results


def print_summary(results: dict[str, Any]) -> None:
    for name in ("generated", "written"):
        part = results[name]
        for kind, figures in {**part["by_kind"], "all": part["all"]}.items():
            print(
                f"{name:<9} {kind:<16} {figures['queries']:>3} queries  P@10 {figures['precision_at_10']:.3f}  "
                f"over judged images {figures['judged_precision_at_10']:.3f}  "
                f"class-only base rate {figures['class_only_base_rate']:.3f}  "
                f"class P@10 {figures['class_precision_at_10']:.3f}"
            )
    for figures in results["colour_group_zero_shot"].values():
        print(f"zero-shot over {figures['labels']}: {figures['accuracy']:.3f} on {figures['images']} images")
    for r in results["written"]["queries"]:
        print(
            f"  {r['precision_at_10']:.1f} (base {r['class_only_base_rate']:.2f}, {r['relevant_images']:>3} images)  "
            f"{r['query']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/clip-cifar10"))
    parser.add_argument("--queries", type=Path, default=QUERIES)
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="write every figure and the per-query results here")
    parser.add_argument(
        "--written-sheets", type=Path, help="folder (under .cache/) for blind sheets of the written queries"
    )
    parser.add_argument(
        "--generated-sheets", type=Path, help="folder (under .cache/) for blind sheets of the generated colour queries"
    )
    args = parser.parse_args()
    results = run(args.checkpoint, args.queries, args.data, args.cache_dir, args.written_sheets, args.generated_sheets)
    print_summary(results)
    save_json(results, args.json)


if __name__ == "__main__":
    main()
