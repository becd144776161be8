"""Typed configuration of the model and its training recipe.

Every checkpoint stores a `ClipConfig` as JSON next to its weights, so loading a checkpoint
rebuilds the exact architecture with no other input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ACTIVATIONS = ("gelu", "silu")


@dataclass(frozen=True)
class ImageEncoderConfig:
    """airbench94-style ResNet for 32x32 inputs: a frozen 2x2 whitening stem, then three
    conv-pool-norm groups. No ImageNet 4x stem: CIFAR images are already tiny."""

    whitening_width: int = 24  # 12 eigen-patches, each with + and - sign
    widths: tuple[int, ...] = (64, 256, 256)
    batchnorm_momentum: float = 0.6  # running = momentum * running + (1 - momentum) * batch
    image_size: int = 32
    activation: str = "gelu"  # or "silu", which hiverge's CIFAR-10 speedrun uses (BENCHMARKS.md, ablations)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {ACTIVATIONS}")


TEXT_ENCODER_KINDS = ("scratch", "minilm")


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which text tower to build.

    `scratch`: a byte-level transformer trained from nothing (width, layers, heads, context_length).
    `minilm`: a frozen pretrained sentence encoder (model_name, embedding_dim), LiT-style: only the
    CLIP's text projection trains on top of it. Each kind ignores the other kind's fields.
    """

    # The default: as accurate on CIFAR-10 as the scratch tower, and far better at finding
    # queries no caption holds, since it brings the language it was pretrained on (BENCHMARKS.md).
    kind: str = "minilm"
    width: int = 128  # twice as wide costs about four times the step time (BENCHMARKS.md, defaults)
    layers: int = 3
    heads: int = 4
    context_length: int = 48  # bytes incl. BOS/EOS; longer text is truncated
    # Hub name of the sentence encoder: recorded so a checkpoint names the tower it needs.
    model_name: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dim: int = 384  # the sentence encoder's output size, checked when it loads

    def __post_init__(self) -> None:
        if self.kind not in TEXT_ENCODER_KINDS:
            raise ValueError(f"unknown text encoder kind {self.kind!r}; expected one of {TEXT_ENCODER_KINDS}")


@dataclass(frozen=True)
class ClipConfig:
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embed_dim: int = 256
    # Warmer than CLIP's 0.07, which learned markedly slower in the first steps here (BENCHMARKS.md, defaults).
    init_temperature: float = 0.2
    max_logit_scale: float = 100.0  # CLIP clamps exp(logit_scale) here
    # A joint of trained CLIPs (`joint.join`): the other members' image towers, beside `image`,
    # and every member's weight. Its vectors are the members' embed_dim unit vectors end to end,
    # each times the square root of its weight, so that the cosine of two of them is the
    # members' cosines averaged with these weights. A trained CLIP is one member of weight 1.
    joined_images: tuple[ImageEncoderConfig, ...] = ()
    member_weights: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        towers = 1 + len(self.joined_images)
        if len(self.member_weights) != towers:
            raise ValueError(f"{len(self.member_weights)} member weights for {towers} image towers")
        if min(self.member_weights) <= 0 or abs(sum(self.member_weights) - 1) > 1e-6:
            raise ValueError(f"member weights must be positive and sum to 1, got {self.member_weights}")

    @property
    def dim(self) -> int:
        """Length of the model's vectors: embed_dim for each member."""
        return self.embed_dim * len(self.member_weights)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ClipConfig:
        def image_config(image: dict[str, Any]) -> ImageEncoderConfig:
            return ImageEncoderConfig(**{**image, **({"widths": tuple(image["widths"])} if "widths" in image else {})})

        return cls(
            image=image_config(raw.get("image", {})),
            text=TextEncoderConfig(**raw.get("text", {})),
            joined_images=tuple(image_config(image) for image in raw.get("joined_images", ())),
            member_weights=tuple(raw.get("member_weights", (1.0,))),
            **{k: v for k, v in raw.items() if k not in ("image", "text", "joined_images", "member_weights")},
        )


IMAGE_OPTIMIZERS = ("muon", "sgd")
FLIPS = ("random", "alternating")
POSITIVE_WEIGHTINGS = ("all_claims", "overlap")
UNDECIDED_PAIRS = ("negative", "ignored")


@dataclass(frozen=True)
class TowerRecipe:
    """An image tower's size and the epochs it trains for: `main.py --recipe NAME`."""

    widths: tuple[int, ...]
    epochs: int


DEFAULT_RECIPE = "wide"
RECIPES = {
    # airbench94's widths; with Muon 13 epochs test as SGD's 18 (BENCHMARKS.md, training).
    "quick": TowerRecipe(widths=ImageEncoderConfig.widths, epochs=13),
    # airbench95's widths: about 2.5x the quick tower's multiply-adds per image. The shipped
    # checkpoint: 12 epochs, validation 0.898 against the quick recipe's 0.889 (BENCHMARKS.md).
    "wide": TowerRecipe(widths=(128, 384, 384), epochs=12),
}


@dataclass
class TrainConfig:
    """The training recipe. The image side's SGD learning rates follow airbench94's "per 1024
    examples" convention; the text tower and projections use AdamW, which suits transformers
    far better than plain SGD."""

    epochs: int = 13  # with Muon, as accurate as SGD's 18 (BENCHMARKS.md, training)
    batch_size: int = 1024
    seed: int = 0
    val_size: int = 5000
    # Captions in each step's contrast, one per image of the batch's first ones: ~50 per class. The
    # frozen text tower makes them nearly free; 512 rather than 128 lifted scene, light and grouped
    # attribute search without costing accuracy (BENCHMARKS.md, attribute search).
    captions_per_step: int = 512
    # Share of captions built from the image's own attributes (when it has readable ones) rather
    # than drawn from its class's captions: text search then sees colour, scene and light.
    attribute_caption_share: float = 0.5
    # How far an attribute caption is a positive for an image of its class (train.caption_positives):
    # "all_claims" (1 when the image has all it claims, else 0) or "overlap" (the share it has).
    positives: str = "all_claims"
    # An image the reader names no colour (or scene) for, against a caption of its class claiming
    # one: "negative" (it lacks what the caption claims) or "ignored" (left out of the loss; +0.43
    # points TEST on the quick recipe and better colour search by eye, BENCHMARKS.md).
    undecided_pairs: str = "ignored"
    # Conv filters: "muon" (airbench94_muon) or Nesterov SGD like every other image-side weight.
    image_optimizer: str = "muon"
    # Muon's step has a fixed size whatever the loss's scale or the batch: airbench94_muon's rate
    # for batches of 2000, halved for batches of 1024 (the full rate made validation swing; BENCHMARKS.md).
    muon_lr: float = 0.12
    muon_momentum: float = 0.6
    sgd_lr: float = 11.5  # per 1024 examples, airbench94
    sgd_momentum: float = 0.85
    sgd_weight_decay: float = 0.0153
    bias_lr_scale: float = 64.0  # BatchNorm biases learn faster, as in airbench94
    adamw_lr: float = 2e-3
    adamw_weight_decay: float = 0.05
    temperature_lr: float = 2e-2  # the log-scale must travel from log(2) to ~log(30) quickly
    warmup_fraction: float = 0.23  # triangular schedule: peak at this fraction of training
    final_lr_fraction: float = 0.07
    label_smoothing: float = 0.2
    translate: int = 2
    # "alternating" (airbench94): each image is mirrored on every other epoch from a random start,
    # so two epochs show both views; "random" draws a coin per image and epoch.
    flip: str = "random"
    # Each image's contrast scaled by a factor drawn from [1 - c, 1 + c] about its own mean: the
    # mean brightness and the hues stay, so no "dark", "bright" or colour caption is contradicted.
    contrast_jitter: float = 0.0
    # Share of each batch the CLIP trains on, the hardest for a small proxy classifier
    # (hard_examples.py; airbench96_faster keeps 0.5). 1.0: every image, no proxy.
    hard_example_share: float = 1.0
    # A teacher checkpoint (typically a joint one) whose ranking of each step's captions the
    # student learns beside its contrastive loss, with this weight (distil.py); None: no teacher.
    distil_from: str | None = None
    distil_weight: float = 1.0
    whiten_bias_epochs: int = 3
    ema_every: int = 5  # weight averaging, from `ema_start_epoch` on
    ema_start_epoch: int = 3

    def __post_init__(self) -> None:
        if self.image_optimizer not in IMAGE_OPTIMIZERS:
            raise ValueError(f"unknown image optimizer {self.image_optimizer!r}; expected one of {IMAGE_OPTIMIZERS}")
        if self.positives not in POSITIVE_WEIGHTINGS:
            raise ValueError(f"unknown positives {self.positives!r}; expected one of {POSITIVE_WEIGHTINGS}")
        if self.undecided_pairs not in UNDECIDED_PAIRS:
            raise ValueError(f"unknown undecided_pairs {self.undecided_pairs!r}; expected one of {UNDECIDED_PAIRS}")
        if self.flip not in FLIPS:
            raise ValueError(f"unknown flip {self.flip!r}; expected one of {FLIPS}")
        if not 0.0 < self.hard_example_share <= 1.0:
            raise ValueError(f"hard_example_share must be in (0, 1], got {self.hard_example_share}")
        if not 0.0 <= self.attribute_caption_share <= 1.0:
            raise ValueError(f"attribute_caption_share must be in [0, 1], got {self.attribute_caption_share}")
        if not 0.0 <= self.contrast_jitter < 1.0:
            raise ValueError(f"contrast_jitter must be in [0, 1), got {self.contrast_jitter}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
