"""The ONNX Runtime text path against its PyTorch reference, on the real MiniLM tower (exported
once per test session) with an initialised CLIP on top."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Pooling

from model_api.clip.inference import embed_labels, embed_texts
from model_api.clip.model import Clip
from model_api.clip.onnx_runtime import weights_key
from model_api.clip.onnx_text import (
    GRAPH,
    OnnxSentenceEncoder,
    direct_tokenizer,
    exportable_transformer,
    use_text_backend,
)
from model_api.clip.text_encoder import FrozenSentenceEncoder, TextEncoderUnavailableError
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL, TINY_MODEL

QUERIES = [
    "a photo of a red car.",
    "a dgo on the grass",  # corrected to "dog" first
    "x",
    "a very long description of a small fluffy white cat asleep beside a tree on a warm and sunny afternoon",
    "ein rotes Auto, très rapide 🚗",
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def models(onnx_dir: Path) -> tuple[Clip, Clip]:
    """(reference, fast): the same initialised CLIP twice, the second on ONNX Runtime."""
    torch.manual_seed(0)
    reference = Clip(TINY_MINILM_MODEL, CAPTIONS).eval()
    fast = copy.deepcopy(reference)  # the frozen tower is shared, not copied: it is no submodule
    return reference, use_text_backend(fast, "onnx", onnx_dir)


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def test_fast_path_embeds_queries_as_the_reference_does(models) -> None:
    reference, fast = models
    assert isinstance(fast.text.frozen, OnnxSentenceEncoder)
    assert isinstance(reference.text.frozen, FrozenSentenceEncoder)
    one_by_one = torch.cat([embed_texts(fast, [query]) for query in QUERIES])
    batched = embed_texts(fast, QUERIES)  # padded to the longest query
    expected = embed_texts(reference, QUERIES)
    assert cosines(one_by_one, expected).min() >= 0.999
    assert cosines(batched, expected).min() >= 0.999


def test_the_direct_tokenizer_gives_the_ids_the_sentence_model_would(models) -> None:
    sentence_model = models[0].text.frozen.model
    texts = [*QUERIES, "", "  spaces around  ", "Tab\tand\nnewline", "word " * 400]  # the last is truncated
    for batch in [*([text] for text in texts), texts]:  # each alone, then all padded together
        want = sentence_model.preprocess(batch)
        got = direct_tokenizer(sentence_model).encode_batch(batch)
        assert [encoding.ids for encoding in got] == want["input_ids"].tolist()
        assert [encoding.attention_mask for encoding in got] == want["attention_mask"].tolist()


def test_fast_path_embeds_labels_as_the_reference_does(models) -> None:
    reference, fast = models
    labels = list(CAPTIONS.classes)
    assert cosines(embed_labels(fast, labels), embed_labels(reference, labels)).min() >= 0.999


def test_the_export_is_kept_and_reused(models, onnx_dir: Path) -> None:
    reference, _ = models
    (graph,) = onnx_dir.iterdir()
    written = graph.stat().st_mtime_ns
    again = OnnxSentenceEncoder(reference.text.frozen, onnx_dir)
    assert list(onnx_dir.iterdir()) == [graph] and graph.stat().st_mtime_ns == written
    assert again(["a cat"]).shape == (1, 384)


def test_other_weights_get_another_graph(models) -> None:
    transformer = exportable_transformer(models[0].text.frozen.model)
    changed = copy.deepcopy(transformer)
    with torch.no_grad():
        changed.encoder.layer[0].output.dense.bias[0] += 1e-3
    assert weights_key(changed, GRAPH) != weights_key(transformer, GRAPH)
    assert weights_key(copy.deepcopy(transformer), GRAPH) == weights_key(transformer, GRAPH)
    assert weights_key(transformer, GRAPH + "/changed") != weights_key(transformer, GRAPH)


def test_torch_backend_and_the_scratch_tower_stay_in_pytorch(onnx_dir: Path) -> None:
    minilm = use_text_backend(Clip(TINY_MINILM_MODEL, CAPTIONS), "torch", onnx_dir)
    assert isinstance(minilm.text.frozen, FrozenSentenceEncoder)
    scratch = Clip(TINY_MODEL, CAPTIONS)
    tower = scratch.text
    assert use_text_backend(scratch, "onnx", onnx_dir).text is tower


def test_an_encoder_the_graph_does_not_reproduce_is_refused(models) -> None:
    """CLS pooling is not what the exported graph computes: say so instead of serving it."""
    minilm = models[0].text.frozen.model
    cls_pooled = SentenceTransformer(modules=[minilm[0], Pooling(384, pooling_mode="cls"), minilm[2]], device="cpu")
    with pytest.raises(TextEncoderUnavailableError, match="CLIP_TEXT_BACKEND=torch"):
        exportable_transformer(cls_pooled)


def test_the_int8_backend_quantises_the_graph_once_and_stays_near_the_reference(models, tmp_path: Path) -> None:
    reference, _ = models
    int8 = use_text_backend(copy.deepcopy(reference), "onnx-int8", tmp_path)
    (fp32,) = tmp_path.glob("sentence-tower-????????????????.onnx")
    assert sorted(tmp_path.iterdir()) == sorted([fp32, fp32.with_name(f"{fp32.stem}-int8-blocks32.onnx")])
    assert cosines(embed_texts(int8, QUERIES), embed_texts(reference, QUERIES)).min() >= 0.995
