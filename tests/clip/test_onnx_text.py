"""The ONNX Runtime text path against its PyTorch reference, on the real MiniLM tower (exported
once per test session) with an initialised CLIP on top."""

from __future__ import annotations

import copy
import subprocess
import sys
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
    graph_key,
    use_text_backend,
)
from model_api.clip.text_encoder import FrozenSentenceEncoder, TextEncoderUnavailableError
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL, TINY_MODEL

REPO = Path(__file__).resolve().parents[2]

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


def test_the_saved_tokenizer_gives_the_ids_the_sentence_model_would(models) -> None:
    reference, fast = models
    sentence_model = reference.text.frozen.model
    texts = [*QUERIES, "", "  spaces around  ", "Tab\tand\nnewline", "word " * 400]  # the last is truncated
    for tokenizer in (direct_tokenizer(sentence_model), fast.text.frozen.tokenizer):  # as made, as read back
        for batch in [*([text] for text in texts), texts]:  # each alone, then all padded together
            want = sentence_model.preprocess(batch)
            got = tokenizer.encode_batch(batch)
            assert [encoding.ids for encoding in got] == want["input_ids"].tolist()
            assert [encoding.attention_mask for encoding in got] == want["attention_mask"].tolist()
    assert sorted(fast.text.frozen.vocabulary()) == sorted(reference.text.frozen.vocabulary())


def test_fast_path_embeds_labels_as_the_reference_does(models) -> None:
    reference, fast = models
    labels = list(CAPTIONS.classes)
    assert cosines(embed_labels(fast, labels), embed_labels(reference, labels)).min() >= 0.999


def test_the_export_is_kept_and_reused_without_loading_the_tower(models, onnx_dir: Path) -> None:
    reference, _ = models
    graph, tokenizer = sorted(onnx_dir.iterdir())
    assert (graph.suffix, tokenizer.name) == (".onnx", f"{graph.stem}.tokenizer.json")
    written = [path.stat().st_mtime_ns for path in (graph, tokenizer)]
    unloaded = FrozenSentenceEncoder(reference.text.config)  # the package's copy: a directory
    again = OnnxSentenceEncoder(unloaded, onnx_dir)
    assert "model" not in vars(unloaded)  # found by its files, never loaded
    assert sorted(onnx_dir.iterdir()) == [graph, tokenizer]
    assert [path.stat().st_mtime_ns for path in (graph, tokenizer)] == written
    assert again(["a cat"]).shape == (1, 384)


def test_a_served_start_on_the_export_never_imports_sentence_transformers(models, onnx_dir: Path) -> None:
    """About 5 s of a start went to that import (BENCHMARKS.md, a fresh clone)."""
    script = f"""
import sys
from model_api.clip.model import Clip
from model_api.clip.onnx_text import use_text_backend
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL
model = use_text_backend(Clip(TINY_MINILM_MODEL, CAPTIONS).eval(), "onnx", {str(onnx_dir)!r})
assert model.encode_text(["a dgo"]).shape == (1, TINY_MINILM_MODEL.embed_dim)
assert "sentence_transformers" not in sys.modules, "imported"
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)


def test_other_towers_get_another_graph(models, tmp_path: Path) -> None:
    frozen = models[0].text.frozen
    transformer = exportable_transformer(frozen.model)
    changed = copy.deepcopy(transformer)
    with torch.no_grad():
        changed.encoder.layer[0].output.dense.bias[0] += 1e-3
    assert weights_key(changed, GRAPH) != weights_key(transformer, GRAPH)  # a hub tower's key
    assert weights_key(copy.deepcopy(transformer), GRAPH) == weights_key(transformer, GRAPH)
    assert weights_key(transformer, GRAPH + "/changed") != weights_key(transformer, GRAPH)
    # A tower on disk is named by its files: the same files anywhere, one key; a file changed, another.
    copied = tmp_path / "model"
    for path in frozen.directory.rglob("*"):
        if path.is_file():
            (copied / path.relative_to(frozen.directory)).parent.mkdir(parents=True, exist_ok=True)
            (copied / path.relative_to(frozen.directory)).symlink_to(path)
    config = frozen.config
    assert graph_key(FrozenSentenceEncoder(config, copied)) == graph_key(frozen)
    (copied / "sentence_bert_config.json").unlink()
    (copied / "sentence_bert_config.json").write_text('{"max_seq_length": 128, "do_lower_case": false}')
    assert graph_key(FrozenSentenceEncoder(config, copied)) != graph_key(frozen)


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
    int8_graph, tokenizer = fp32.with_name(f"{fp32.stem}-int8-blocks32.onnx"), fp32.with_suffix(".tokenizer.json")
    assert sorted(tmp_path.iterdir()) == sorted([fp32, int8_graph, tokenizer])
    assert cosines(embed_texts(int8, QUERIES), embed_texts(reference, QUERIES)).min() >= 0.995
