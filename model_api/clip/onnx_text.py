"""The frozen sentence tower run by ONNX Runtime: the same function as `FrozenSentenceEncoder`
(texts -> unit sentence embeddings) at less than half its CPU time per query (6.0 vs 14.0 ms;
BENCHMARKS.md, first-seen text queries): the cost of a query the service has not seen before.

The PyTorch model stays the reference and the source: the graph is exported from it with
torch.onnx the first time this tower is served and kept on disk under a key of its files (or
weights), so later starts load it in a fraction of a second without loading the PyTorch model
at all, and other towers export their own. Token ids come from the sentence-transformers
model's own Rust tokenizer, saved beside the graph and called directly (`direct_tokenizer`):
both paths see the same ids, without the 0.1-0.4 ms of Python the library's general
preprocessing spends on each lone query.

The graph ends at the unit sentence embedding; the CLIP's trained projection and
standardisation stay outside it (in PyTorch, or folded into one numpy product for the service's
queries, `served_model.QueryEncoder`). They are one 384x256 product per query, they belong to a
checkpoint rather than to the tower, and outside the graph one export serves every checkpoint
trained on this tower.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F
from torch import nn

from .files import write_atomically
from .model import Clip
from .onnx_runtime import open_session, quiet_exporter, weights_key
from .text_encoder import FrozenSentenceEncoder, PretrainedTextEncoder, TextEncoderUnavailableError

log = logging.getLogger(__name__)

# onnx-int8: the same graph with int8 weights and products in small blocks (`quantized_graph`),
# about half the CPU per query.
TextBackend = Literal["onnx", "onnx-int8", "torch"]
INPUTS = ("input_ids", "attention_mask")
# Not "embedding": the exporter gives that name to one of BERT's weights, and a graph with two
# values of one name does not load.
OUTPUT = "sentence_embedding"
# What the exported graph computes; part of the cache key, so changing it re-exports.
GRAPH = "transformer+mean-pooling+l2-normalise/v1"
BATCH = 256  # texts per run, as the PyTorch path batches them


class MeanPooledTower(nn.Module):
    """The sentence-transformers pipeline this backend supports (transformer, mean pooling over
    the attention mask, L2 normalisation) as one module to export."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, D) unit vectors."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return F.normalize((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9), dim=-1)


def exportable_transformer(sentence_model: Any) -> nn.Module:
    """The Hugging Face transformer inside `sentence_model`, if the model is one `MeanPooledTower`
    reproduces; a clear error otherwise (the torch backend runs any sentence encoder)."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(sentence_model)
    if (
        len(modules) == 3
        and isinstance(modules[0], Transformer)
        and isinstance(modules[1], Pooling)
        and modules[1].get_config_dict().get("pooling_mode") == "mean"
        and isinstance(modules[2], Normalize)
    ):
        return modules[0].auto_model
    raise TextEncoderUnavailableError(
        "the onnx text backend exports mean-pooled, normalised sentence encoders only; "
        f"this one is {[type(module).__name__ for module in modules]}: use CLIP_TEXT_BACKEND=torch"
    )


@contextmanager
def eager_attention(transformer: Any) -> Iterator[None]:
    """Export the attention as plain matmul and softmax, which ONNX Runtime fuses into its own
    attention kernel (~4% faster per query than the exported SDPA graph; BENCHMARKS.md)."""
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    try:
        yield
    finally:
        transformer.set_attn_implementation(previous)


def export(sentence_model: Any, transformer: nn.Module, path: Path) -> None:
    """Write the tower's graph to `path` (atomically: an interrupted export leaves no file)."""
    sample = sentence_model.preprocess(["a photo of a cat.", "a dog"])
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    with eager_attention(transformer), quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            MeanPooledTower(transformer).eval(),
            tuple(sample[name] for name in INPUTS),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_shapes={name: {0: batch, 1: length} for name in INPUTS},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    write_atomically(path, lambda tmp: program.save(str(tmp)))


def graph_key(reference: FrozenSentenceEncoder) -> str:
    """16 hex digits naming the tower and what the graph computes with it. From the model's files
    where they are on disk, so that finding an earlier export loads nothing (reading them takes a
    fraction of a second); else from the weights of the loaded model."""
    directory = reference.directory
    if directory is None:
        return weights_key(exportable_transformer(reference.model), GRAPH)
    digest = hashlib.sha256(GRAPH.encode())
    for path in sorted(path for path in directory.rglob("*") if path.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_export(reference: FrozenSentenceEncoder, cache_dir: Path) -> tuple[Path, Path]:
    """The tower's ONNX graph and its `direct_tokenizer` in `cache_dir`, written first from the
    loaded model if this tower has none yet. -> (graph, tokenizer JSON)"""
    stem = f"sentence-tower-{graph_key(reference)}"
    graph, tokenizer = Path(cache_dir) / f"{stem}.onnx", Path(cache_dir) / f"{stem}.tokenizer.json"
    if not (graph.exists() and tokenizer.exists()):
        log.info("exporting the text tower to %s (once for this tower)", graph)
        sentence_model = reference.model
        export(sentence_model, exportable_transformer(sentence_model), graph)
        direct = direct_tokenizer(sentence_model)  # with its truncation and padding
        write_atomically(tokenizer, lambda tmp: direct.save(str(tmp)))
    return graph, tokenizer


def quantized_graph(graph: Path) -> Path:
    """The int8 twin of the fp32 `graph` beside it, quantised first if it has none yet.

    Every matrix product's weights go to int8 in blocks of INT8_BLOCK inputs, each block with its
    own scale, and accuracy level 4 lets ONNX Runtime quantise the activations per block as well
    and multiply in int8. Small blocks keep BERT's few large activations from flattening the rest:
    per-channel dynamic quantisation (one scale per tensor for activations) agreed with the fp32
    tower to a mean cosine of 0.994, these blocks to 0.9997, at about the same speed (BENCHMARKS.md, int8).
    """
    # Imported here: the quantiser pulls in onnx's model tooling, which the default fp32 path never needs.
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    path = graph.with_name(f"{graph.stem}-int8-blocks{INT8_BLOCK}.onnx")
    if not path.exists():
        log.info("quantising the text tower to %s (once for these weights)", path)
        # The quantiser logs each of the ~300 nodes it leaves alone at INFO.
        logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
        quantizer = MatMulNBitsQuantizer(
            str(graph), bits=8, block_size=INT8_BLOCK, is_symmetric=True, accuracy_level=INT8_ACCURACY_LEVEL
        )
        quantizer.process()
        write_atomically(path, lambda tmp: quantizer.model.save_model_to_file(str(tmp)))
    return path


INT8_BLOCK = 32  # inputs per scale; MiniLM's widths, 384 and 1536, are multiples of it
INT8_ACCURACY_LEVEL = 4  # ONNX Runtime's MatMulNBits: 4 computes in int8 (0 in fp32, ten times slower here)


def direct_tokenizer(sentence_model: Any) -> tokenizers.Tokenizer:
    """A copy of the sentence model's Rust tokenizer that truncates and pads as the model's own
    `preprocess` does: to its max_seq_length, and to the longest text of a batch. A copy, so the
    reference path, which sets these options on its tokenizer at each call, never sees ours."""
    transformer = sentence_model[0]
    tokenizer = transformer.tokenizer
    direct = tokenizers.Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    direct.enable_truncation(transformer.max_seq_length)
    direct.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    return direct


class OnnxSentenceEncoder:
    """`FrozenSentenceEncoder`'s function through ONNX Runtime. Not an nn.Module either, for
    the same reason: nothing here trains or belongs in a checkpoint."""

    def __init__(self, reference: FrozenSentenceEncoder, cache_dir: Path, threads: int = 1, int8: bool = False) -> None:
        """reference: the PyTorch tower, exported from the first time (`cached_export`); later
        starts read the export alone and never load it. int8: run the graph with int8 weights
        (`quantized_graph`)."""
        graph, tokenizer = cached_export(reference, cache_dir)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer))
        self.session = open_session(quantized_graph(graph) if int8 else graph, threads)
        self.dim = self.session.get_outputs()[0].shape[-1]
        if self.dim != reference.config.embedding_dim:
            raise TextEncoderUnavailableError(
                f"the exported sentence encoder {graph.name} gives {self.dim}-d embeddings; "
                f"this tower expects {reference.config.embedding_dim}-d"
            )

    def vocabulary(self) -> list[str]:
        """The tokenizer's tokens, as `FrozenSentenceEncoder.vocabulary`."""
        return list(self.tokenizer.get_vocab())

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Texts -> (N, embedding_dim) float32 unit vectors."""
        chunks = [self._run(texts[start : start + BATCH]) for start in range(0, len(texts), BATCH)]
        return torch.from_numpy(np.concatenate(chunks)) if chunks else torch.empty(0, self.dim)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        inputs = {
            "input_ids": np.array([encoding.ids for encoding in encodings], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64),
        }
        return self.session.run([OUTPUT], inputs)[0]


def use_text_backend(model: Clip, backend: TextBackend, cache_dir: Path, threads: int = 1) -> Clip:
    """Run `model`'s frozen sentence tower on `backend`; the scratch tower, small and trained,
    always runs in PyTorch. -> the same model."""
    if backend != "torch" and isinstance(model.text, PretrainedTextEncoder):
        model.text.frozen = OnnxSentenceEncoder(model.text.frozen, cache_dir, threads, int8=backend == "onnx-int8")
    return model
