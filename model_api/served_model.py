"""The loaded CLIP as the service uses it: embed images and text, classify, cache repeated text.

Everything model-specific goes through the library's public functions (`model_api.clip`), so
serving embeds exactly as evaluation does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .clip.checkpoint import load_checkpoint, read_metrics, weights_sha256
from .clip.inference import IMAGE_EMBEDDING, Ranking, embed_images, embed_labels, embed_texts, rank_labels
from .clip.model import Clip


class LruCache:
    """Thread-safe least-recently-used map from text to its (D,) embedding."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str], compute: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """Embeddings of keys (K, D), computing only the misses, in one batch."""
        with self._lock:
            found = {key: self._entries[key] for key in keys if key in self._entries}
            for key in found:
                self._entries.move_to_end(key)
        misses = list(dict.fromkeys(key for key in keys if key not in found))
        if misses:
            # Computed outside the lock so one slow batch does not block cached lookups.
            found.update(zip(misses, compute(misses), strict=True))
            with self._lock:
                for key in misses:
                    self._entries[key] = found[key]
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return torch.stack([found[key] for key in keys])


class ServedModel:
    def __init__(self, model: Clip, config: dict[str, Any], checkpoint: Path, cache_size: int) -> None:
        """model: as `load_checkpoint` returns it, ready for inference."""
        self.model = model
        self.config = config
        self.checkpoint = checkpoint
        self.sha256 = weights_sha256(checkpoint)
        # Identifies what made a stored image vector: these weights, embedding as `embed_images` does.
        self.vectors_id = f"{self.sha256[:16]}-{IMAGE_EMBEDDING}"
        self.metrics = read_metrics(checkpoint)  # read once: /v1/info serves them on every page view
        self._texts = LruCache(cache_size)
        self._labels = LruCache(cache_size)

    @classmethod
    def load(cls, checkpoint: Path, cache_size: int, text_encoder_path: Path | None = None) -> ServedModel:
        model, config = load_checkpoint(checkpoint, text_encoder_path)
        return cls(model, config, checkpoint, cache_size)

    @property
    def classes(self) -> list[str]:
        """The default labels: the classes of the caption set the checkpoint was trained on."""
        return list(self.model.captions.classes)

    @property
    def dim(self) -> int:
        return self.model.config.embed_dim

    def image_vectors(self, images: torch.Tensor) -> np.ndarray:
        """(N, 3, 32, 32) uint8 -> (N, D) float32 unit vectors."""
        return embed_images(self.model, images).numpy()

    def text_vector(self, text: str) -> np.ndarray:
        """(D,) unit vector of a search query; repeated queries come from the cache."""
        return self._texts.get_many([text], lambda texts: embed_texts(self.model, texts))[0].numpy()

    def classify(self, vectors: np.ndarray, labels: Sequence[str] | None, top_k: int | None) -> list[Ranking]:
        """(N, D) image vectors -> per image the top_k (label, probability), most likely first.

        labels default to the model's classes; each label's prompt-ensemble embedding is cached.
        """
        labels = list(labels or self.classes)
        label_vectors = self._labels.get_many(labels, lambda missing: embed_labels(self.model, missing))  # (L, D)
        return rank_labels(self.model, torch.from_numpy(vectors), label_vectors, labels, top_k or len(labels))
