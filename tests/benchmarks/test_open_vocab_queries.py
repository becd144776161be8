"""The open-vocabulary evaluation set must test language the text tower never trained on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_api.clip.captions import normalised
from tests.conftest import CAPTIONS

CIFAR10_CLASSES = CAPTIONS.classes

QUERIES = Path(__file__).resolve().parents[2] / "benchmarks" / "open_vocab_queries_heldout.json"


@pytest.fixture(scope="module")
def queries() -> list[dict]:
    return json.loads(QUERIES.read_text())["queries"]


def test_at_least_60_queries_that_are_no_training_caption_cover_every_class(queries) -> None:
    captions = {normalised(caption) for caption in CAPTIONS.training_captions()[0]}
    unseen = [query for query in queries if normalised(query["query"]) not in captions]
    assert len(unseen) >= 60
    assert {query["class"] for query in unseen} == set(CIFAR10_CLASSES)


def test_label_groups_use_words_no_caption_has_and_hold_each_class_once() -> None:
    groups = json.loads(QUERIES.read_text())["label_groups"]
    assert sorted(c for members in groups.values() for c in members) == sorted(CIFAR10_CLASSES)
    words = {word for caption in CAPTIONS.training_captions()[0] for word in normalised(caption).split()}
    assert {word for label in groups for word in label.split() if len(word) > 2} & words == set()


@pytest.mark.parametrize("path", sorted(QUERIES.parent.glob("open_vocab_queries*.json")), ids=lambda path: path.stem)
def test_every_grouping_of_every_query_set_holds_each_class_once_under_labels_no_caption_is(path) -> None:
    evaluation_set = json.loads(path.read_text())
    captions = {normalised(caption) for caption in CAPTIONS.training_captions()[0]}
    for groups in evaluation_set.get("label_groupings", [evaluation_set["label_groups"]]):
        assert sorted(c for members in groups.values() for c in members) == sorted(CIFAR10_CLASSES)
        assert {normalised(label) for label in groups} & captions == set()


def test_every_kind_of_query_is_present(queries) -> None:
    assert {query["kind"] for query in queries} == {"synonym", "hyponym", "description", "misspelling", "casing"}


def test_benchmark_reports_every_figure(tiny_checkpoint, tiny_data_dir, isolated_cache, tmp_path) -> None:
    report = tmp_path / "open_vocab.json"
    env = {**os.environ, "CIFAR10_DATA": str(tiny_data_dir), "CLIP_CACHE_DIR": str(isolated_cache)}
    script = QUERIES.with_name("open_vocab_benchmark.py")
    command = [sys.executable, str(script), "--checkpoint", str(tiny_checkpoint), "--json", str(report)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(report.read_text())
    assert figures["test_images"] == 50 and figures["text_encoder"] == "scratch"
    assert 0 <= figures["open_vocab"]["precision_at_10"] <= 1 and 0 <= figures["zero_shot_accuracy"] <= 1
    (grouping,) = figures["grouped_zero_shot"]["groupings"]  # the default set has one
    assert grouping["accuracy"] == figures["grouped_zero_shot"]["mean_accuracy"] and 0 <= grouping["accuracy"] <= 1
    assert figures["text_query_ms_median"] > 0 and figures["peak_rss_mib_after_load"] > 0
    assert len(figures["per_query"]) == figures["open_vocab"]["queries"]
    unseen = [query for query in figures["per_query"] if not query["training_caption"]]
    assert figures["open_vocab_unseen"]["queries"] == len(unseen) >= 60
    assert "open-vocab P@10" in result.stdout
