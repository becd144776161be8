"""Open-vocabulary search quality of a checkpoint: queries the text tower never trained on.

  python benchmarks/open_vocab_benchmark.py --checkpoint DIR [--queries FILE] [--json OUT.json]

Reports mean precision@10 over the 10,000 CIFAR-10 test images for the queries in
`open_vocab_queries_heldout.json` (synonyms, hyponyms, descriptions, misspellings, casing;
written by an author who saw neither the training captions nor the first set,
`open_vocab_queries.json`), over all of them and over those that are not a training caption
(`unseen`, the headline figure), the queries that miss, zero-shot accuracy with labels that
group the classes under new words (the file's `label_groupings`, else its one `label_groups`;
e.g. "a creature" vs "a means of transport"; right when the image's class is in the predicted
group), class-prompt retrieval and zero-shot accuracy (`model_api.clip.evaluate`), the
median text-encoding latency of one query at a time (uncached: what a new query costs the
API), and the process's peak RSS after loading the checkpoint. Data: --data, else CIFAR10_DATA as the API reads it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, get_args

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import add_data_arguments, save_json  # noqa: E402  (this folder is on sys.path when run as a script)

from model_api.clip.captions import normalised  # noqa: E402
from model_api.clip.checkpoint import load_checkpoint  # noqa: E402
from model_api.clip.data import load_cifar10  # noqa: E402
from model_api.clip.evaluate import evaluate, ranked_relevance, retrieval_metrics  # noqa: E402
from model_api.clip.inference import embed_images, embed_labels, embed_texts  # noqa: E402
from model_api.clip.model import Clip  # noqa: E402
from model_api.clip.onnx_text import TextBackend, use_text_backend  # noqa: E402

QUERIES = Path(__file__).with_name("open_vocab_queries_heldout.json")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_queries(evaluation_set: dict[str, Any], classes: tuple[str, ...]) -> tuple[list[dict[str, str]], torch.Tensor]:
    """-> (query records, (Q,) index of each query's expected class)."""
    queries = evaluation_set["queries"]
    unknown = {query["class"] for query in queries} - set(classes)
    if unknown:
        raise SystemExit(f"query classes {sorted(unknown)} are not in the dataset's {classes}")
    return queries, torch.tensor([classes.index(query["class"]) for query in queries])


def grouped_zero_shot_accuracy(
    model: Clip,
    image_embeddings: torch.Tensor,
    labels: torch.Tensor,
    groups: dict[str, list[str]],
    classes: tuple[str, ...],
) -> float:
    """Zero-shot over the group labels; right when the image's class is in the predicted group."""
    names = list(groups)
    if sorted(c for members in groups.values() for c in members) != sorted(classes):
        raise SystemExit(f"label_groups must hold each of {classes} exactly once")
    group_of_class = torch.tensor([next(i for i, name in enumerate(names) if c in groups[name]) for c in classes])
    predicted = (image_embeddings @ embed_labels(model, names).T).argmax(dim=1)
    return (predicted == group_of_class[labels]).float().mean().item()


def text_latency_ms(model: Clip, texts: list[str]) -> float:
    """Median over the texts of encoding one text alone, after one warm-up."""
    embed_texts(model, texts[:1])
    timings = []
    for text in texts:
        started = time.perf_counter()
        embed_texts(model, [text])
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def per_query_results(
    model: Clip,
    queries: list[dict[str, str]],
    similarity: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    classes: tuple[str, ...],
) -> list[dict[str, Any]]:
    """P@10 of each query, the class most of its top 10 came from, and whether the query is
    itself a training caption."""
    captions = {normalised(caption) for caption in model.captions.training_captions()[0]}
    top10 = similarity.topk(10, dim=1).indices  # (Q, 10)
    precision = ranked_relevance(similarity, labels, targets)[:, :10].mean(dim=1)  # (Q,)
    return [
        {
            **query,
            "precision_at_10": round(p, 3),
            "top10_majority": classes[Counter(labels[row].tolist()).most_common(1)[0][0]],
            "training_caption": normalised(query["query"]) in captions,
        }
        for query, p, row in zip(queries, precision.tolist(), top10, strict=True)
    ]


def run(
    checkpoint: Path, queries_path: Path, data_source: str, cache_dir: Path, text_backend: TextBackend = "torch"
) -> dict[str, Any]:
    model, config = load_checkpoint(checkpoint)
    use_text_backend(model, text_backend, cache_dir / "onnx")
    rss_after_load = peak_rss_mib()
    data = load_cifar10(data_source, cache_dir)
    evaluation_set = json.loads(queries_path.read_text())
    queries, targets = load_queries(evaluation_set, data.classes)
    image_embeddings = embed_images(model, data.test.images)  # (N, D)
    similarity = embed_texts(model, [query["query"] for query in queries]) @ image_embeddings.T  # (Q, N)
    per_query = per_query_results(model, queries, similarity, data.test.labels, targets, data.classes)
    unseen = torch.tensor([not r["training_caption"] for r in per_query])
    unseen_results = [r for r in per_query if not r["training_caption"]]
    by_kind = {
        kind: statistics.mean(r["precision_at_10"] for r in unseen_results if r["kind"] == kind)
        for kind in sorted({query["kind"] for query in queries})
    }
    class_prompts = evaluate(model, data.test, data.classes)
    groupings = evaluation_set.get("label_groupings", [evaluation_set["label_groups"]])
    grouped = [
        {
            "label_groups": groups,
            "accuracy": grouped_zero_shot_accuracy(model, image_embeddings, data.test.labels, groups, data.classes),
        }
        for groups in groupings
    ]
    return {
        "checkpoint": str(checkpoint),
        "text_encoder": config["model"]["text"]["kind"],
        "text_backend": text_backend,
        "test_images": len(data.test),
        "queries_file": queries_path.name,
        "open_vocab": {**retrieval_metrics(similarity, data.test.labels, targets), "queries": len(queries)},
        "open_vocab_unseen": {
            **retrieval_metrics(similarity[unseen], data.test.labels, targets[unseen]),
            "queries": int(unseen.sum()),
        },
        "open_vocab_unseen_precision_at_10_by_kind": by_kind,
        "class_prompts": class_prompts["retrieval"],
        "zero_shot_accuracy": class_prompts["accuracy"],
        "grouped_zero_shot": {
            "mean_accuracy": statistics.mean(grouping["accuracy"] for grouping in grouped),
            "groupings": grouped,
        },
        "text_query_ms_median": text_latency_ms(model, [query["query"] for query in queries]),
        "peak_rss_mib_after_load": rss_after_load,
        "torch_threads": torch.get_num_threads(),
        "per_query": per_query,
    }


def print_summary(results: dict[str, Any]) -> None:
    open_vocab, unseen, prompts = results["open_vocab"], results["open_vocab_unseen"], results["class_prompts"]
    print(f"{results['checkpoint']} ({results['text_encoder']} text tower), {results['test_images']} test images")
    print(f"open-vocab P@10 {unseen['precision_at_10']:.3f} over the {unseen['queries']} queries that are no caption")
    by_kind = results["open_vocab_unseen_precision_at_10_by_kind"]
    print("  by kind: " + ", ".join(f"{kind} {p:.3f}" for kind, p in by_kind.items()))
    print(f"  all {open_vocab['queries']} queries of {results['queries_file']}: {open_vocab['precision_at_10']:.3f}")
    print(f"class prompts: P@10 {prompts['precision_at_10']:.3f}  P@100 {prompts['precision_at_100']:.3f}")
    print(f"zero-shot accuracy {results['zero_shot_accuracy']:.4f}")
    grouped = results["grouped_zero_shot"]
    print(f"zero-shot accuracy over labels that group the classes: mean {grouped['mean_accuracy']:.4f}")
    for grouping in grouped["groupings"]:
        print(f"  {' / '.join(grouping['label_groups'])}: {grouping['accuracy']:.4f}")
    print(f"text query {results['text_query_ms_median']:.1f} ms (median, one at a time)")
    print(f"peak RSS after loading {results['peak_rss_mib_after_load']:.0f} MiB")
    misses = sorted((r for r in results["per_query"] if r["precision_at_10"] < 1), key=lambda r: r["precision_at_10"])
    print(f"queries below P@10 1.0 ({len(misses)}):")
    for r in misses:
        print(
            f"  {r['precision_at_10']:.1f}  {r['query']!r:<45} want {r['class']:<10} got mostly {r['top10_majority']}"
            + ("  (a training caption)" if r["training_caption"] else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--queries", type=Path, default=QUERIES)
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, help="write every figure and the per-query results here")
    parser.add_argument(
        "--text-backend", choices=get_args(TextBackend), default="torch", help="runtime of the MiniLM tower"
    )
    args = parser.parse_args()
    results = run(args.checkpoint, args.queries, args.data, args.cache_dir, args.text_backend)
    print_summary(results)
    save_json(results, args.json)


if __name__ == "__main__":
    main()
