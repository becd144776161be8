"""Request and response models: every field described, so /docs is the API reference."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .clip.inference import Ranking, parse_labels
from .clip.ood import OodVerdict
from .gallery import GalleryItem
from .uploads import FORMAT_NAMES

MAX_TOP_K = 100
MAX_LABELS = 50
MAX_QUERY_CHARS = 500  # the text tower reads 46 UTF-8 bytes; this only bounds the request


def Text(max_length: int) -> Any:  # noqa: N802 - used like a type
    """A stripped, non-blank string of at most max_length characters.

    pydantic already rejects lone surrogates, the one kind of text the tokenizer cannot encode.
    """
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)]


MAX_LABEL_CHARS = 100
# One label would always score 1: a ranking needs something to rank against.
TOO_FEW_LABELS = "Zero-shot classification chooses between labels: give at least two"


def _normalise_labels(values: list[str]) -> list[str]:
    """Each value may itself be comma-separated ("cat, dog"); blanks and duplicates are dropped.

    The one label parser clients have: the UI sends the text as typed and shows this error.
    """
    labels = parse_labels(",".join(values))
    if len(labels) < 2:
        raise ValueError(TOO_FEW_LABELS)
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels, got {len(labels)}")
    if too_long := [label for label in labels if len(label) > MAX_LABEL_CHARS]:
        raise ValueError(f"labels are at most {MAX_LABEL_CHARS} characters: {too_long[0][:20]!r}... is longer")
    return labels


Labels = Annotated[
    # Items are bounded loosely here (one may hold many comma-separated labels); each label is
    # checked after the split.
    list[Annotated[str, StringConstraints(max_length=MAX_LABELS * (MAX_LABEL_CHARS + 2))]],
    AfterValidator(_normalise_labels),
    Field(
        min_length=1,
        max_length=MAX_LABELS,
        description=f"Custom zero-shot labels (default: the model's classes). Repeat the field or separate "
        f"labels with commas; blanks and duplicates are dropped, and at least two distinct labels must remain; "
        f"at most {MAX_LABELS} labels of at most {MAX_LABEL_CHARS} characters.",
    ),
]
ClassifyTopK = Annotated[
    int, Field(ge=1, le=MAX_TOP_K, description="How many labels to return, most likely first (default: all).")
]
SearchTopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many results to return at most.")]
MinScore = Annotated[float, Field(ge=-1.0, le=1.0, description="Drop results whose cosine similarity is below this.")]
MinRelativeScore = Annotated[
    float,
    Field(
        gt=0.0,
        le=1.0,
        description="Drop results scoring below this fraction of the best result's score (e.g. 0.9): a cutoff "
        "that follows each query, where one absolute `min_score` suits some queries and not others.",
    ),
]
Negative = Annotated[
    Text(MAX_QUERY_CHARS), Field(description="What the results should not show, e.g. `grass` for dogs not on grass.")
]
Refinement = Annotated[
    Text(MAX_QUERY_CHARS), Field(description="Words that refine an image query, e.g. `red` for the same but red.")
]
ItemId = Annotated[str, Field(description="Gallery id: `test-<n>` (dataset) or `user-<n>` (upload).", max_length=64)]


def picture_url(item_id: str, kind: Literal["image", "thumbnail"], root_path: str) -> str:
    """A path from the root of the host the client called: root_path is where it reached the API
    ("" direct, "/api" through Nginx; `forwarded_prefix`), so the URL works from there."""
    return f"{root_path}/v1/gallery/{item_id}/{kind}"


IMAGE_URL_DESCRIPTION = (
    "The stored image: an upload's photo as given (longest side at most 1,024 px; JPEG, or PNG for small or "
    "transparent images), a dataset item's 32x32 PNG. A path on the host the request was sent to: "
    "`/v1/gallery/test-3/image` when the API is called directly, `/api/v1/gallery/test-3/image` through the "
    "deployment's Nginx (its `X-Forwarded-Prefix`)."
)
THUMBNAIL_URL_DESCRIPTION = (
    "The image for grids: an upload's thumbnail (longest side at most 256 px), a dataset item's 32x32 PNG; "
    "a path like `image_url`."
)


class Prediction(BaseModel):
    label: str = Field(description="A label (a class name or one of the custom labels).")
    score: float = Field(description="Probability of the label among the labels given (they sum to 1).")


class OutOfDistribution(BaseModel):
    """The two scores behind `out_of_distribution`, each beside its threshold."""

    distance: float = Field(
        description="Mahalanobis distance of the image's embedding to the nearest class of the training images; "
        "the labels asked do not change it. Above `distance_threshold`: unlike the images the model learned."
    )
    distance_threshold: float = Field(description="Calibrated on held-out training images (`clip/ood.py`).")
    label_similarity: float = Field(
        description="Cosine between the image's embedding and the best label's. Below `label_similarity_threshold`: "
        "none of the labels fits the image as well as a class fits its own images."
    )
    label_similarity_threshold: float = Field(description="Calibrated with `distance_threshold`.")
    unusual_image: bool = Field(description="`distance` is above its threshold.")
    no_label_fits: bool = Field(description="`label_similarity` is below its threshold.")

    @classmethod
    def of(cls, verdict: OodVerdict) -> OutOfDistribution:
        return cls(
            distance=verdict.distance,
            distance_threshold=verdict.distance_threshold,
            label_similarity=verdict.similarity,
            label_similarity_threshold=verdict.similarity_threshold,
            unusual_image=verdict.unusual,
            no_label_fits=verdict.unmatched,
        )


class ClassifyResponse(BaseModel):
    predictions: list[Prediction] = Field(description="Labels ranked by probability, most likely first.")
    out_of_distribution: bool | None = Field(
        description="True: the image is unlike the images the model learned or unlike every label, so read the "
        "predictions as 'none of these / low confidence'. Calibrated to be true for a chosen share of held-out "
        "CIFAR-10 images (5% for the shipped checkpoint); null when the checkpoint has no calibration for its weights."
    )
    ood: OutOfDistribution | None = Field(description="Why: the scores and thresholds; null without a calibration.")

    @classmethod
    def of(cls, ranking: Ranking, verdict: OodVerdict | None) -> ClassifyResponse:
        return cls(
            predictions=[Prediction(label=label, score=score) for label, score in ranking],
            out_of_distribution=None if verdict is None else verdict.flagged,
            ood=None if verdict is None else OutOfDistribution.of(verdict),
        )


class ClassifyGalleryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ItemId
    labels: Labels | None = None
    top_k: ClassifyTopK | None = None


class BatchItem(ClassifyResponse):
    filename: str | None = Field(description="The uploaded file's name, as the client sent it.")


class BatchClassifyResponse(BaseModel):
    results: list[BatchItem] = Field(description="One entry per uploaded file, in upload order.")


class SearchOptions(BaseModel):
    """What every search takes besides its query."""

    model_config = ConfigDict(extra="forbid")

    top_k: SearchTopK = 10
    min_score: MinScore | None = None
    min_relative_score: MinRelativeScore | None = None
    negative: Negative | None = None


class TextSearchRequest(SearchOptions):
    query: Text(MAX_QUERY_CHARS) = Field(description="What to look for, in words, e.g. `a red truck`.")


class SimilarSearchRequest(SearchOptions):
    id: ItemId
    text: Refinement | None = None


class SearchResult(BaseModel):
    id: str = Field(description="Gallery id of the match.")
    score: float = Field(description="Cosine similarity to the query in [-1, 1]; higher is closer.")
    label: str | None = Field(description="The item's class, user label or caption; null if none.")
    caption: str | None = Field(None, description="Caption given at upload; null if none.")
    image_url: str = Field(description=IMAGE_URL_DESCRIPTION)
    thumbnail_url: str = Field(description=THUMBNAIL_URL_DESCRIPTION)

    @classmethod
    def of(cls, item: GalleryItem, score: float, root_path: str) -> SearchResult:
        return cls(
            id=item.id,
            score=score,
            label=item.display_label,
            caption=item.caption,
            image_url=picture_url(item.id, "image", root_path),
            thumbnail_url=picture_url(item.id, "thumbnail", root_path),
        )


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(description="Matches, best first.")

    @classmethod
    def of(cls, hits: list[tuple[GalleryItem, float]], root_path: str) -> SearchResponse:
        return cls(results=[SearchResult.of(item, score, root_path) for item, score in hits])


class GalleryItemOut(BaseModel):
    id: str = Field(description="`test-<n>` for dataset images, `user-<n>` for uploads.")
    source: Literal["dataset", "user"] = Field(description="Where the item comes from.")
    label: str | None = Field(description="Dataset class or the label given at upload; null if none.")
    caption: str | None = Field(description="Caption given at upload; null if none.")
    image_url: str = Field(description=IMAGE_URL_DESCRIPTION)
    thumbnail_url: str = Field(description=THUMBNAIL_URL_DESCRIPTION)

    @classmethod
    def of(cls, item: GalleryItem, root_path: str) -> GalleryItemOut:
        return cls(
            id=item.id,
            source=item.source,
            label=item.label,
            caption=item.caption,
            image_url=picture_url(item.id, "image", root_path),
            thumbnail_url=picture_url(item.id, "thumbnail", root_path),
        )


class DuplicatePair(BaseModel):
    first: GalleryItemOut = Field(description="One item of the pair.")
    second: GalleryItemOut = Field(description="The other.")
    similarity: float = Field(description="Cosine similarity of their image vectors in [-1, 1]; 1: the same image.")


class DuplicatesResponse(BaseModel):
    pairs: list[DuplicatePair] = Field(description="Pairs at or above `min_similarity`, most similar first.")


class GalleryPage(BaseModel):
    total: int = Field(description="Items in the listing (with the `source` filter applied).")
    offset: int = Field(description="Index of the first item returned.")
    limit: int = Field(description="Most items asked for.")
    items: list[GalleryItemOut] = Field(
        description="Uploads newest first, then dataset items in order (`source=all`): a new upload is at offset 0."
    )


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


class Ready(BaseModel):
    status: Literal["ready"] = Field(description="`ready`: model and gallery are loaded.")
    gallery_size: int = Field(description="Items searchable now.")
    dataset: str = Field(description="Whether the dataset's test split is in the gallery, and if not why.")
    load_seconds: float = Field(description="Seconds from start of loading to ready.")


class Info(BaseModel):
    model_name: str = Field(description="Name of the checkpoint directory.")
    checkpoint: str = Field(description="Checkpoint path as configured.")
    checkpoint_sha256: str = Field(description="sha256 of the weights file: identifies the model exactly.")
    architecture: dict[str, Any] = Field(description="The checkpoint's model config (towers, embedding size).")
    classes: list[str] = Field(description="The default labels for classification.")
    embedding_dim: int = Field(description="Size of the embedding vectors.")
    gallery_size: int = Field(description="Items searchable now (0 while loading).")
    dataset: str = Field(description="Whether the dataset's test split is in the gallery, and if not why.")
    dataset_loaded: bool = Field(description="True once the dataset's test split is in the gallery.")
    metrics: dict[str, Any] = Field(
        description="Training metrics from the checkpoint; under `test`, the TEST report measured on these weights."
    )
    search: Literal["exact", "faiss-ivf"] = Field(description="How the index searches at the current size.")
    writes_enabled: bool = Field(
        description="Whether `POST`/`DELETE /v1/gallery` can succeed: false when the server has no CLIP_API_KEY."
    )
    image_types: list[str] = Field(
        description=f"File extensions of the accepted uploads ({FORMAT_NAMES}), e.g. `png`, for file pickers; "
        "the API itself tells the format from the bytes, not the name."
    )


class Error(BaseModel):
    detail: str = Field(description="What went wrong, in one sentence.")
    errors: list[dict[str, Any]] | None = Field(None, description="422 only: each invalid field and why.")


_ERROR_MEANINGS = {
    400: "The upload is not a readable image (empty, corrupt, truncated or a decompression bomb).",
    401: "The X-API-Key header is missing.",
    403: "The API key is wrong, writes are disabled, or the item cannot be changed.",
    404: "No gallery item has this id.",
    413: "The upload is larger than CLIP_MAX_UPLOAD_BYTES.",
    415: f"The upload is not an accepted image type ({FORMAT_NAMES}).",
    422: "A field is missing or invalid (`errors` lists each one), or an Idempotency-Key came with another upload.",
    503: "The model or gallery is still loading (or failed to load; see /ready), or the gallery database is down.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all with the `Error` body."""
    return {code: {"model": Error, "description": _ERROR_MEANINGS[code]} for code in codes}
