"""The loaded CLIP as the service uses it: embed images and text, classify, cache repeated text.

Everything model-specific goes through the library's public functions (`model_api.clip`), so
serving embeds exactly as evaluation does.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .clip.checkpoint import load_checkpoint, read_metrics, weights_sha256
from .clip.hardware import resolve_device
from .clip.inference import (
    IMAGE_EMBEDDING,
    UNSURE_BELOW,
    Ranking,
    compose_query,
    embed_images,
    embed_labels,
    embed_texts,
    rank_labels,
    refine_unsure,
)
from .clip.model import Clip
from .clip.onnx_image import OnnxImageTower, use_image_backend
from .clip.onnx_text import use_text_backend
from .clip.ood import OodVerdict, read_calibration
from .micro_batch import MicroBatcher
from .settings import Settings

# A captioned upload is also indexed for text search as normalize(image + CAPTION_WEIGHT * caption).
# Measured on the shipped checkpoint (12 drawn 32x32 uploads with captions such as "my hand drawn
# red car", among the 10,000 test images): the image vector alone ranks an upload median 3,632th
# for its own caption; with this second vector at w = 1 the worst is 37th, at 1.5 and 2 every one
# is 1st, and at 2 a shorter query ("red car") finds it median 1st (2nd at 1.5). A caption alone
# (w -> infinity) pushes uploads into the top 10 of plain class prompts ("a photo of a truck"),
# which w = 2 never did. The tiny test model agrees (worst rank 2 of 62 at w = 2).
CAPTION_WEIGHT = 2.0
# How a stored caption vector was made: part of its key, so a change re-embeds the uploads once.
CAPTION_EMBEDDING = f"{IMAGE_EMBEDDING}+caption*{CAPTION_WEIGHT:g}"


class LruCache:
    """Thread-safe least-recently-used map from text to its (D,) embedding."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: torch.Tensor) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get_many(self, keys: Sequence[str], compute: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """Embeddings of keys (K, D), computing only the misses, in one batch."""
        found = {key: value for key in keys if (value := self.get(key)) is not None}
        misses = list(dict.fromkeys(key for key in keys if key not in found))
        if misses:
            # Computed outside the lock so one slow batch does not block cached lookups.
            found.update(zip(misses, compute(misses), strict=True))
            for key in misses:
                self.put(key, found[key])
        return torch.stack([found[key] for key in keys])


class QueryEncoder:
    """Search queries -> (N, D) unit vectors, as `embed_texts` computes them, with the CLIP's text
    projection and standardisation applied as one affine map in numpy (`Clip.folded_text_head`).

    A first-seen query is a lone row, for which torch's dispatch of the projection, the
    standardisation and the normalisation is the cost: 0.50 ms at p50 once other work has left
    the caches cold, as it has between two requests, against 0.17 ms for numpy's one product
    (in process, idle; BENCHMARKS.md, first-seen text queries). The normalisation is the model's
    own (`Clip.unit`, per member of a joint CLIP): 0.04 ms more than numpy's, measured beside a
    training run, for one definition of the model's vectors."""

    def __init__(self, model: Clip) -> None:
        self.model = model
        weight, bias = model.folded_text_head()
        self.weight, self.bias = weight.cpu().numpy(), bias.cpu().numpy()

    def __call__(self, texts: list[str]) -> torch.Tensor:
        text = self.model.text
        with torch.inference_mode():
            features = text(text.prepare_queries(texts).to(self.model.logit_scale.device)).float().cpu().numpy()
        return self.model.unit(torch.from_numpy(features @ self.weight + self.bias))


def image_tower_thread(threads: int) -> ThreadPoolExecutor:
    """One thread that runs every image through the tower with `threads` torch threads of its
    own, while the rest of the process keeps the count it had (torch_threads, one by default).

    torch's thread count belongs to each thread, and a thread started later takes the last one
    set anywhere, so the count is set on the new thread, and then set back on this one before any
    other thread starts."""
    own = torch.get_num_threads()
    tower = ThreadPoolExecutor(
        1, thread_name_prefix="image-tower", initializer=torch.set_num_threads, initargs=(threads,)
    )
    tower.submit(torch.get_num_threads).result()  # starts the thread, which sets its count
    torch.set_num_threads(own)
    return tower


@dataclass(frozen=True)
class Classification:
    ranking: Ranking
    ood: OodVerdict | None  # None when the checkpoint carries no calibration for its weights


class ServedModel:
    def __init__(
        self,
        model: Clip,
        config: dict[str, Any],
        checkpoint: Path,
        cache_size: int,
        text_batch_size: int,
        image_threads: int = 1,
        unsure_below: float = UNSURE_BELOW,
    ) -> None:
        """model: as `load_checkpoint` returns it, ready for inference; text_batch_size: most
        first-seen queries embedded in one batch; image_threads: threads of the image tower
        (PyTorch's or ONNX Runtime's); unsure_below: top probability under which classification
        takes six views (`refine_unsure`)."""
        self.model = model
        self.unsure_below = unsure_below
        self.config = config
        self.checkpoint = checkpoint
        self.sha256 = weights_sha256(checkpoint)
        # Identifies what made a stored image vector: these weights, embedding as `embed_images`
        # does, in int8 or not (an int8 vector is close to the float one, mean cosine 0.9995, not equal).
        int8 = isinstance(model.visual, OnnxImageTower) and model.visual.int8
        self.vectors_id = f"{self.sha256[:16]}-{IMAGE_EMBEDDING}{'-int8' if int8 else ''}"
        self.caption_vectors_id = f"{self.sha256[:16]}-{CAPTION_EMBEDDING}"
        self.metrics = read_metrics(checkpoint)  # read once: /v1/info serves them on every page view
        self.ood = read_calibration(checkpoint, self.sha256)
        self._texts = LruCache(cache_size)
        self._labels = LruCache(cache_size)
        # Concurrent first-seen queries share one forward pass (`micro_batch`).
        self._text_batcher = MicroBatcher(QueryEncoder(model), text_batch_size, name="text-batcher")
        # On ONNX Runtime the tower runs on image_threads of the session's own; torch then only
        # prepares the batch and projects the features, and a second torch thread spun against
        # the session's (12.7 against 9.4 ms an upload; BENCHMARKS.md, image tower on ONNX Runtime).
        self._image_tower = image_tower_thread(1 if isinstance(model.visual, OnnxImageTower) else image_threads)

    @classmethod
    def load(cls, settings: Settings) -> ServedModel:
        """The checkpoint the settings name, its text tower on the runtime they choose."""
        device = resolve_device(settings.device)  # CLIP_DEVICE
        model, config = load_checkpoint(settings.checkpoint, settings.text_encoder_path, device)
        use_text_backend(model, settings.text_backend, settings.onnx_dir, settings.text_threads)
        use_image_backend(model, settings.image_backend, settings.onnx_dir, settings.image_threads, settings.checkpoint)
        served = cls(
            model,
            config,
            settings.checkpoint,
            settings.text_cache_size,
            settings.text_batch_size,
            settings.image_threads,
            settings.unsure_below,
        )
        served.warm_up()
        return served

    def warm_up(self) -> None:
        """Takes once, before the service says it is ready, the one-off costs a user's first
        search and first classification would otherwise pay: the spelling index (built at its
        first use), each tower's first run, and the default labels' embeddings. Without it the
        first search after a start took 487 ms and the first classification 550 ms."""
        self.text_vector("a photo")
        self.classify(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), None, None)

    def close(self) -> None:
        """Answers the queries already queued, then stops the batching and image threads."""
        self._text_batcher.close()
        self._image_tower.shutdown()

    @property
    def classes(self) -> list[str]:
        """The default labels: the classes of the caption set the checkpoint was trained on."""
        return list(self.model.captions.classes)

    @property
    def dim(self) -> int:
        return self.model.config.dim

    @property
    def search_device(self) -> torch.device | None:
        """Where the gallery's exact search multiplies: the model's GPU, else numpy on the CPU."""
        where = self.model.logit_scale.device
        return where if where.type == "cuda" else None

    def image_vectors(self, images: torch.Tensor) -> np.ndarray:
        """(N, 3, 32, 32) uint8 -> (N, D) float32 unit vectors, computed on the image tower's thread."""
        return self._image_tower.submit(embed_images, self.model, images).result().numpy()

    def caption_vectors(self, image_vectors: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        """(N, D) image vectors and their N captions -> (N, D) unit vectors for text search.

        Captions are embedded as queries are (spelling corrected alike), so a query of the
        caption's own words meets its vector; not cached, as a caption is seldom typed again.
        """
        texts = embed_texts(self.model, list(captions))  # (N, D)
        return self.model.unit(torch.from_numpy(image_vectors) + CAPTION_WEIGHT * texts).numpy()

    def text_vector(self, text: str) -> np.ndarray:
        """(D,) unit vector of a search query; repeated queries come from the cache. Blocks: for
        routes that run in the thread pool."""
        return self._text_future(text).result().numpy()

    async def text_vector_async(self, text: str) -> np.ndarray:
        """`text_vector` for routes on the event loop: it waits for the query's batch with no
        thread of the pool held."""
        return (await asyncio.wrap_future(self._text_future(text))).numpy()

    def _text_future(self, text: str) -> Future[torch.Tensor]:
        """The query's (D,) embedding: a done future when cached, else one its batch completes
        (and the cache then keeps)."""
        embedding: Future[torch.Tensor] = Future()
        cached = self._texts.get(text)
        if cached is not None:
            embedding.set_result(cached)
            return embedding

        def keep(batch: Future[torch.Tensor]) -> None:
            if (error := batch.exception()) is not None:
                embedding.set_exception(error)
                return
            self._texts.put(text, batch.result()[0])
            embedding.set_result(batch.result()[0])

        self._text_batcher.submit([text]).add_done_callback(keep)
        return embedding

    def search_vector(
        self, query: np.ndarray, negative: np.ndarray | None = None, refinement: np.ndarray | None = None
    ) -> np.ndarray:
        """(D,) query vector (a text's or an image's) -> (D,) vector to search with, moved away
        from the `negative` text's vector and towards the `refinement` text's."""

        def tensor(vector: np.ndarray | None) -> torch.Tensor | None:
            return None if vector is None else torch.from_numpy(vector)

        return compose_query(torch.from_numpy(query), tensor(negative), tensor(refinement)).numpy()

    def optional_text_vector(self, text: str | None) -> np.ndarray | None:
        return None if text is None else self.text_vector(text)

    async def optional_text_vector_async(self, text: str | None) -> np.ndarray | None:
        return None if text is None else await self.text_vector_async(text)

    def classify(
        self,
        images: torch.Tensor,
        labels: Sequence[str] | None,
        top_k: int | None,
        vectors: np.ndarray | None = None,
    ) -> list[Classification]:
        """(N, 3, 32, 32) uint8 images -> per image the top_k (label, probability), most likely
        first, and whether the image is unlike the training images or every label (`clip/ood.py`).

        `vectors`: the images' `image_vectors` where they are at hand (a gallery item's), else they
        are computed. An image the model is unsure of is classified from six views
        (`refine_unsure`); the out-of-distribution verdict reads the served vector, on which it was
        calibrated. labels default to the model's classes; each label's prompt-ensemble embedding
        is cached.
        """
        labels = list(labels or self.classes)
        label_vectors = self._labels.get_many(labels, lambda missing: embed_labels(self.model, missing))  # (L, D)

        def on_image_tower() -> tuple[torch.Tensor, torch.Tensor]:
            embeddings = embed_images(self.model, images) if vectors is None else torch.from_numpy(vectors)
            return embeddings, refine_unsure(self.model, images, embeddings, label_vectors, self.unsure_below)

        embeddings, refined = self._image_tower.submit(on_image_tower).result()
        rankings = rank_labels(self.model, refined, label_vectors, labels, top_k or len(labels))
        verdicts = self.ood.verdicts(embeddings, label_vectors) if self.ood else [None] * len(rankings)
        return [Classification(ranking, ood) for ranking, ood in zip(rankings, verdicts, strict=True)]
