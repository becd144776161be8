"""Contrastive training of the CLIP on CIFAR-10, resumable epoch by epoch.

Recipe (after airbench94 and airbench94_muon, adapted to a contrastive objective): frozen
whitening stem, Muon for the conv filters and Nesterov SGD for the rest of the image side with
a triangular learning-rate schedule, AdamW for the text tower, label-aware contrastive loss with
label smoothing, Lookahead-style weight averaging, flip + translate augmentation, channels_last,
and the autocast precision of the device it trains on (`hardware.Device`: bf16 where the CPU has
bf16 kernels, bf16 or fp16 on a GPU). The data and its augmentation live on that device. Under
torchrun each process trains on its shard of every global batch (`distributed`); rank 0 alone
writes the output directory.

Output directory layout:
  best/            checkpoint with the best validation accuracy (safetensors + config.json)
  last_state.pt    full training state after the last finished epoch (for --resume)
  history.json     one record per epoch
  training_curve.png
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import distributed, plots
from .attributes import NONE_CODE
from .captions import CaptionSet, statable
from .checkpoint import save_checkpoint
from .classifier import Classifier
from .config import ClipConfig, ImageEncoderConfig, TrainConfig
from .data import Cifar10, Split, augment, to_float
from .distil import Teacher, distillation_loss
from .distributed import SINGLE_PROCESS, Ranks, gather
from .files import write_atomically, write_text_atomically
from .hard_examples import PROXY_WIDTHS, HardExampleSelector
from .hardware import Device, resolve_device
from .image_encoder import ImageEncoder
from .inference import embed_images, embed_labels
from .loss import LabelAwareContrastiveLoss, label_positives
from .model import Clip
from .muon import Muon

log = logging.getLogger(__name__)
STATE_FILE = "last_state.pt"


@dataclass
class Optimizers:
    muon: Muon | None  # the conv filters' optimizer, when the recipe says "muon"
    sgd: torch.optim.SGD
    adamw: torch.optim.AdamW

    def all(self) -> tuple[torch.optim.Optimizer, ...]:
        return (self.sgd, self.adamw) if self.muon is None else (self.muon, self.sgd, self.adamw)


def image_optimizers(
    visual: ImageEncoder, head_weights: list[torch.nn.Parameter], recipe: TrainConfig
) -> tuple[Muon | None, torch.optim.SGD]:
    """Muon for the conv filters (or SGD, by the recipe) and SGD (airbench94's per-1024-example
    scaling, for a mean loss) for the head's weights, the BatchNorm biases and the whitening bias.
    head_weights: what maps the tower's features onward (a projection, a classifier)."""
    # airbench94 states lr and decay per 1024 examples of a summed loss; our loss is a batch
    # mean, so the per-example rate is multiplied by the batch size.
    per_example = recipe.batch_size / (1024 * (1 + 1 / (1 - recipe.sgd_momentum)))
    lr = recipe.sgd_lr * per_example
    decay = recipe.sgd_weight_decay * per_example
    norm_biases = [p for n, p in visual.named_parameters() if "groups" in n and n.endswith("bias")]
    filters = [p for n, p in visual.named_parameters() if n.endswith("weight") and p.requires_grad]
    muon = Muon(filters, recipe.muon_lr, recipe.muon_momentum) if recipe.image_optimizer == "muon" else None
    weights = [*head_weights, *(filters if muon is None else [])]
    bias_lr = lr * recipe.bias_lr_scale
    sgd = torch.optim.SGD(
        [
            dict(params=weights, lr=lr, weight_decay=decay / lr, name="weights"),
            dict(params=norm_biases, lr=bias_lr, weight_decay=decay / bias_lr, name="norm_bias"),
            dict(params=[visual.whiten.bias], lr=bias_lr, weight_decay=decay / bias_lr, name="whiten_bias"),
        ],
        momentum=recipe.sgd_momentum,
        nesterov=True,
    )
    return muon, sgd


def remember_base_lrs(optimizers: tuple[torch.optim.Optimizer, ...]) -> None:
    """The schedule scales each group's starting rate."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]


def build_optimizers(model: Clip, recipe: TrainConfig) -> Optimizers:
    """The image side's optimizers (`image_optimizers`), and AdamW for the text tower, its
    projection and the temperature."""
    muon, sgd = image_optimizers(model.visual, [model.image_projection.weight], recipe)
    text_params = [*model.text.parameters(), model.text_projection.weight]
    adamw = torch.optim.AdamW(
        [
            dict(params=text_params, lr=recipe.adamw_lr, weight_decay=recipe.adamw_weight_decay),
            dict(params=[model.logit_scale], lr=recipe.temperature_lr, weight_decay=0.0),
        ]
    )
    optimizers = Optimizers(muon, sgd, adamw)
    remember_base_lrs(optimizers.all())
    return optimizers


def lr_factor(step: int, total: int, recipe: TrainConfig) -> float:
    """Triangular schedule: 0.2 -> 1.0 at warmup_fraction -> final_lr_fraction."""
    progress = step / total
    if progress < recipe.warmup_fraction:
        return 0.2 + 0.8 * progress / recipe.warmup_fraction
    tail = (progress - recipe.warmup_fraction) / (1 - recipe.warmup_fraction)
    return 1.0 + (recipe.final_lr_fraction - 1.0) * tail


def set_learning_rates(
    optimizers: tuple[torch.optim.Optimizer, ...], step: int, total: int, epoch: int, recipe: TrainConfig
) -> None:
    """Every group at its base rate times the schedule; the whitening bias trains for the first
    whiten_bias_epochs epochs only (airbench94)."""
    factor = lr_factor(step, total, recipe)
    whiten_frozen = epoch >= recipe.whiten_bias_epochs
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            frozen = whiten_frozen and group.get("name") == "whiten_bias"
            group["lr"] = 0.0 if frozen else group["base_lr"] * factor


def averaging_decay(step: int, total: int, epoch: int, recipe: TrainConfig) -> float | None:
    """airbench94's weight averaging: every ema_every steps from ema_start_epoch on, the average
    keeps more of itself as training ends. None: no averaging at this step."""
    if epoch >= recipe.ema_start_epoch and step % recipe.ema_every == 0:
        return 0.95**recipe.ema_every * (step / total) ** 3
    return None


def epoch_draw(
    images: torch.Tensor, recipe: TrainConfig, epoch: int
) -> tuple[torch.Generator, torch.Tensor, torch.Tensor]:
    """The epoch's generator, augmented images (N, 3, 32, 32) uint8 and batch order (N,): seeded
    by the run's seed and the epoch, so every process and a resumed run draw the same."""
    generator = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
    flipped = epoch_flips(len(images), recipe, epoch)
    augmented = augment(images, recipe.translate, generator, flipped, recipe.contrast_jitter)
    return generator, augmented, torch.randperm(len(images), generator=generator)


def epoch_flips(count: int, recipe: TrainConfig, epoch: int) -> torch.Tensor | None:
    """(count,) bool, the images mirrored this epoch under alternating flip: a random half at the
    run's start, the other half the next epoch, and so on. None: random flip draws per epoch."""
    if recipe.flip == "random":
        return None
    start = torch.rand(count, generator=torch.Generator().manual_seed(recipe.seed)) < 0.5
    return start ^ bool(epoch % 2)


class CaptionSampler:
    """Draws a training caption for each requested image, as rows of the text tower's prepared
    inputs, with the claim each caption makes about its image's attributes.

    A caption is either one of its class's captions (it claims nothing beyond the class) or,
    with probability `attribute_share` when the image has readable attributes, one built from
    them ("a crimson car on the road."). The class captions are prepared once; a built caption
    is prepared the first time it is drawn and kept, so a frozen pretrained tower still embeds
    each distinct caption once per run.
    """

    def __init__(self, model: Clip, attribute_share: float) -> None:
        self.model = model
        captions, labels = model.captions.training_captions()
        self.inputs = model.text.prepare(captions)  # (C, T) token ids or (C, E) frozen embeddings
        labels_tensor = torch.tensor(labels)
        self.by_class = [torch.nonzero(labels_tensor == c).squeeze(1) for c in range(len(model.captions.classes))]
        self.attribute_share = attribute_share if model.captions.describes_attributes else 0.0
        self.built: dict[str, torch.Tensor] = {}

    def sample(
        self, labels: torch.Tensor, codes: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """labels (B,), codes (B, 5) attribute codes -> ((B, ...) prepared inputs, (B, 5) claims, -1: none)."""
        # One seed drawn from the run's generator keeps the captions reproducible and resumable.
        rng = random.Random(int(torch.randint(2**62, (1,), generator=generator)))
        rows, claims, texts = [], [], []
        for label, row in zip(labels.tolist(), codes.tolist(), strict=True):
            if rng.random() < self.attribute_share and statable(row):
                text, claim = self.model.captions.attribute_caption(label, row, rng)
                texts.append(text)
                rows.append(text)
                claims.append(claim)
            else:
                pool = self.by_class[label]
                rows.append(int(pool[rng.randrange(len(pool))]))
                claims.append([NONE_CODE] * len(row))
        self.prepare([text for text in dict.fromkeys(texts) if text not in self.built])
        inputs = torch.stack([self.built[row] if isinstance(row, str) else self.inputs[row] for row in rows])
        return inputs, torch.tensor(claims, dtype=codes.dtype)

    def prepare(self, texts: list[str]) -> None:
        if texts:
            self.built.update(zip(texts, self.model.text.prepare(texts), strict=True))


CLAIMED_COLUMNS = (0, 2, 3, 4)  # main colour, scene, light, black and white; the second colour is never claimed
# Where the reader's "none" means it would not say (an object the colour of its background, a
# scene it cannot see), not that the image lacks the attribute. Light's "none" (neither dark nor
# bright) and black and white's 0 are decisions.
SILENT_COLUMNS = (0, 2)  # main colour, scene


def caption_positives(
    image_labels: torch.Tensor,
    image_codes: torch.Tensor,
    text_labels: torch.Tensor,
    claims: torch.Tensor,
    weighting: str = "all_claims",
) -> torch.Tensor:
    """(B_i, B_t) weights in [0, 1] of each caption as a positive for each image; 0 unless the
    caption's class is the image's.

    all_claims: 1 when everything the caption claims (main colour, scene, light, black and white)
    the reader found in the image, else 0; a caption claiming "red" is thus a negative for the
    other cars of the batch. overlap: the share of its claims the image has ("a red car on the
    grass" is half a positive for a red car in front of the sky); a caption claiming nothing weighs 1.
    """
    same_class = label_positives(image_labels, text_labels).float()
    made = torch.zeros(claims.shape[0])  # (B_t,) claims per caption
    held = torch.zeros(image_codes.shape[0], claims.shape[0])  # (B_i, B_t) of them the image has
    for column in CLAIMED_COLUMNS:
        claim = claims[None, :, column]  # (1, B_t)
        claimed = claim != NONE_CODE
        made += claimed[0]
        held += (claimed & (claim == image_codes[:, None, column])).float()
    if weighting == "all_claims":
        return same_class * (held == made).float()
    return same_class * torch.where(made > 0, held / made.clamp(min=1), 1.0)


def undecided_pairs(
    image_labels: torch.Tensor, image_codes: torch.Tensor, text_labels: torch.Tensor, claims: torch.Tensor
) -> torch.Tensor:
    """(B_i, B_t) bool: a caption of the image's class claiming a colour or scene the reader named
    none for in that image. Whether "a red car" describes a car of unread colour nobody knows;
    about half the images have no colour read, and many are of the claimed one."""
    unknown = torch.zeros(image_codes.shape[0], claims.shape[0], dtype=torch.bool)
    for column in SILENT_COLUMNS:
        unknown |= (claims[None, :, column] != NONE_CODE) & (image_codes[:, None, column] == NONE_CODE)
    return label_positives(image_labels, text_labels) & unknown


class WeightAverager:
    """airbench94's Lookahead-style averaging: every few steps the averaged weights move
    towards the live ones and are copied back into the net."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, decay: float) -> None:
        for name, live in model.state_dict().items():
            if name in self.average:
                self.average[name].lerp_(live, 1 - decay)
                live.copy_(self.average[name])


@torch.no_grad()
def zero_shot_accuracy(
    model: Clip, split: Split, classes: tuple[str, ...], device: Device, ranks: Ranks = SINGLE_PROCESS
) -> float:
    """Each process scores its shard of the split; the mean is taken over all of them."""
    model.eval()
    class_embeddings = embed_labels(model, classes)
    shard = ranks.shard(torch.arange(len(split)))
    # One view: validation runs every epoch, and selecting by it needs no test-time augmentation.
    predictions = (embed_images(model, split.images[shard], device=device, mirror=False) @ class_embeddings.T).argmax(1)
    correct = (predictions == split.labels[shard]).float().to(device.torch_device)
    return gather(correct, ranks, len(split)).mean().item()


def json_form(config: dict[str, Any]) -> dict[str, Any]:
    """A config as it reads back from JSON (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(config))


def saved_recipe(raw: str) -> dict[str, Any]:
    """A state's recipe with today's fields: the ones it predates take their defaults (what it
    trained with), and the ones since dropped go (the precision, `bf16` in older states, follows
    the device, so a run may move to another machine)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in json.loads(raw).items() if k in fields}).to_dict()


def saved_model_config(raw: str | None) -> dict[str, Any] | None:
    """A state's model config with the defaults of fields it predates; None when it has none."""
    return None if raw is None else json_form(ClipConfig.from_dict(json.loads(raw)).to_dict())


class DataCaptionMismatchError(ValueError):
    """The dataset's classes are not the caption set's, in the same order."""


class ResumeMismatchError(ValueError):
    """The saved run was started with another model or recipe than the one asked to resume it."""


class ShardTooSmallError(ValueError):
    """Some process's share of a batch is too small for BatchNorm."""


class Trainer:
    def __init__(
        self,
        data: Cifar10,
        model_config: ClipConfig,
        recipe: TrainConfig,
        output: Path,
        captions: CaptionSet,
        text_encoder_path: Path | None = None,
        device: Device | None = None,
        ranks: Ranks = SINGLE_PROCESS,
    ) -> None:
        """captions: what the text tower trains on; its classes must be the dataset's, in label order.
        device: where it trains (default: the CPU); ranks: this process's place under torchrun."""
        if captions.classes != data.classes:
            raise DataCaptionMismatchError(
                f"the caption set's classes {list(captions.classes)} are not the dataset's {list(data.classes)}"
            )
        self.data, self.model_config, self.recipe, self.output = data, model_config, recipe, output
        self.device, self.ranks = device or resolve_device("cpu"), ranks
        self.train_split, self.val_split = data.train_val(recipe.val_size, seed=0)
        self.check_shards()
        self.images = self.train_split.images.to(self.device.torch_device)  # (N, 3, 32, 32) uint8
        torch.manual_seed(recipe.seed)  # the same initial weights in every process
        self.model = Clip(model_config, captions, text_encoder_path).to(
            self.device.torch_device, memory_format=self.device.memory_format
        )
        self.model.visual.init_whitening(to_float(self.images[:5000]))
        self.network = distributed.wrap(self.model, self.device, ranks)  # what the training steps run through
        self.optimizers = build_optimizers(self.model, recipe)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.device.scales_loss)
        self.averager = WeightAverager(self.model)
        self.selector = self.hard_example_selector(len(data.classes))
        self.teacher = self.load_teacher()
        self.captions = CaptionSampler(self.model, recipe.attribute_caption_share)
        self.loss_fn = LabelAwareContrastiveLoss(recipe.label_smoothing)
        self.steps_per_epoch = math.ceil(len(self.train_split) / recipe.batch_size)
        self.total_steps = recipe.epochs * self.steps_per_epoch
        self.epoch, self.history, self.best_accuracy = 0, [], -1.0

    def hard_example_selector(self, classes: int) -> HardExampleSelector | None:
        """The proxy that picks each batch's hard examples, when the recipe keeps less than all."""
        if self.recipe.hard_example_share == 1.0:
            return None
        if self.ranks.world_size > 1:
            raise ValueError("hard-example selection runs in one process only: drop torchrun or --hard-example-share")
        proxy = Classifier(ImageEncoderConfig(widths=PROXY_WIDTHS), classes).to(
            self.device.torch_device, memory_format=self.device.memory_format
        )
        proxy.visual.init_whitening(to_float(self.images[:5000]))
        # Plain SGD: the proxy is small and only ranks images, so Muon's extra work buys nothing.
        recipe = dataclasses.replace(self.recipe, image_optimizer="sgd")
        _, sgd = image_optimizers(proxy.visual, [proxy.head.weight], recipe)
        remember_base_lrs((sgd,))
        return HardExampleSelector(proxy, sgd, self.recipe.hard_example_share, self.recipe.label_smoothing, self.device)

    def load_teacher(self) -> Teacher | None:
        """The checkpoint the recipe distils from, with its vectors of the training images."""
        if self.recipe.distil_from is None:
            return None
        if self.ranks.world_size > 1:
            raise ValueError("distillation runs in one process only: drop torchrun or --distil-from")
        return Teacher.load(Path(self.recipe.distil_from), self.model, self.images, self.device)

    def all_optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        """Every optimizer the schedule drives: the CLIP's and the proxy's."""
        return (*self.optimizers.all(), *(() if self.selector is None else (self.selector.optimizer,)))

    def check_shards(self) -> None:
        """BatchNorm needs two rows or more in every process's shard, the last batch's included."""
        last_batch = len(self.train_split) % self.recipe.batch_size or self.recipe.batch_size
        if min(last_batch, self.recipe.captions_per_step) < 2 * self.ranks.world_size:
            raise ShardTooSmallError(
                f"{self.ranks.world_size} processes need at least {2 * self.ranks.world_size} images and captions "
                f"per batch (the last batch has {last_batch} images, each batch {self.recipe.captions_per_step} "
                "captions): use fewer processes or another batch size"
            )

    # --- resumable state ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "average": self.averager.average,
            "muon": None if self.optimizers.muon is None else self.optimizers.muon.state_dict(),
            "sgd": self.optimizers.sgd.state_dict(),
            "adamw": self.optimizers.adamw.state_dict(),
            "history": json.dumps(self.history),
            "best_accuracy": self.best_accuracy,
            "recipe": json.dumps(self.recipe.to_dict()),
            "model_config": json.dumps(self.model_config.to_dict()),
            "scaler": self.scaler.state_dict(),  # empty unless fp16 scales the loss
            "selector": None if self.selector is None else self.selector.state_dict(),
        }

    def save_state(self) -> None:
        write_atomically(self.output / STATE_FILE, lambda tmp: torch.save(self.state(), tmp))

    def resume(self) -> None:
        path = self.output / STATE_FILE
        if path.exists():
            self.load_state(path)
        else:
            log.info("no %s in %s: starting from scratch", STATE_FILE, self.output)
        # Each process reads the state itself: on several machines they must all see the same one.
        epochs = gather(torch.tensor([self.epoch], device=self.device.torch_device), self.ranks, self.ranks.world_size)
        if len(set(epochs.tolist())) > 1:
            raise ResumeMismatchError(
                f"the processes found {self.output / STATE_FILE} at different epochs ({epochs.tolist()}): "
                "give every machine the same output directory (a shared filesystem)"
            )

    def load_state(self, path: Path) -> None:
        # Restricted unpickler: tensors and primitives only. A run may move between CPU and GPU.
        state = torch.load(path, weights_only=True, map_location=self.device.torch_device)
        self.check_same_run(state)
        self.model.load_state_dict(state["model"])
        self.averager.average = state["average"]
        if self.optimizers.muon is not None:
            self.optimizers.muon.load_state_dict(state["muon"])
        self.optimizers.sgd.load_state_dict(state["sgd"])
        self.optimizers.adamw.load_state_dict(state["adamw"])
        if state.get("scaler"):  # written by an fp16 run, and only read by one
            self.scaler.load_state_dict(state["scaler"])
        if self.selector is not None:  # the recipe check above says the saved run had one too
            self.selector.load_state_dict(state["selector"])
        self.epoch, self.best_accuracy = state["epoch"], state["best_accuracy"]
        self.history = json.loads(state["history"])
        log.info("resumed after epoch %d (best val accuracy %.4f)", self.epoch, self.best_accuracy)

    def check_same_run(self, state: dict[str, Any]) -> None:
        """A resumed run must keep its model and recipe: the schedule and the weights' shapes depend on them."""
        saved = {"recipe": saved_recipe(state["recipe"]), "model": saved_model_config(state.get("model_config"))}
        current = {"recipe": self.recipe.to_dict(), "model": json_form(self.model_config.to_dict())}
        for part in ("recipe", "model"):
            if saved[part] is None:  # a state written before the model was recorded
                continue
            changed = sorted(k for k in current[part] if saved[part].get(k) != current[part][k])
            if changed:
                raise ResumeMismatchError(
                    f"{self.output / STATE_FILE} was started with another {part} ({', '.join(changed)} differ): "
                    "resume with the flags that started it"
                )

    # --- training ------------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator) -> float:
        """images (N, 3, 32, 32) uint8, the epoch's augmented training images on the device;
        chosen (B,) the global batch's rows of them, of which this process encodes its shard. The
        first captions_per_step images of the batch each get one caption. With hard-example
        selection the batch is first cut to the images the proxy finds hardest. -> the batch's loss."""
        if self.selector is not None:
            batch = to_float(images[chosen.to(self.device.torch_device)])
            hardest = self.selector.select(batch, self.train_split.labels[chosen].to(self.device.torch_device))
            chosen = chosen[hardest.cpu()]
        labels, codes = self.train_split.labels[chosen], self.train_split.attributes[chosen]
        count = self.recipe.captions_per_step
        caption_labels = labels[:count]
        # Drawn from the run's generator, so every process draws the same captions.
        text_inputs, claims = self.captions.sample(caption_labels, codes[:count], generator)
        rows, texts = self.ranks.gathered_order(len(chosen)), self.ranks.gathered_order(len(text_inputs))
        pairs = (labels[rows], codes[rows], caption_labels[texts], claims[texts])
        positives = caption_positives(*pairs, self.recipe.positives)
        if self.recipe.undecided_pairs == "ignored":
            ignored = undecided_pairs(*pairs)
        else:
            ignored = torch.zeros_like(positives, dtype=torch.bool)
        batch = to_float(images[self.ranks.shard(chosen).to(self.device.torch_device)])
        with self.device.autocast():
            image_emb, text_emb, scale = self.network(
                batch.contiguous(memory_format=self.device.memory_format),
                self.ranks.shard(text_inputs).to(self.device.torch_device),
            )
        image_emb, text_emb = gather(image_emb, self.ranks, len(rows)), gather(text_emb, self.ranks, len(texts))
        on_device = self.device.torch_device
        loss = self.loss_fn(image_emb, text_emb, scale, positives.to(on_device), ignored.to(on_device))
        if self.teacher is not None:
            student_logits = scale * image_emb.float() @ text_emb.float().T
            teacher_logits = self.teacher.logits(chosen.to(on_device), text_inputs.to(on_device))
            loss = loss + self.recipe.distil_weight * distillation_loss(student_logits, teacher_logits)
        for optimizer in self.optimizers.all():
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # DDP all-reduces the gradients here
        for optimizer in self.optimizers.all():
            self.scaler.step(optimizer)
        self.scaler.update()
        distributed.average_batchnorm_statistics(self.model, self.ranks)
        return loss.item()

    def average_weights(self, step: int) -> None:
        decay = averaging_decay(step, self.total_steps, self.epoch, self.recipe)
        if decay is not None:
            self.averager.update(self.model, decay)

    def run_epoch(self) -> dict[str, float]:
        # Every process draws the same augmentation and permutation; each trains on its shard of it.
        generator, images, order = epoch_draw(self.images, self.recipe, self.epoch)
        self.network.train()
        losses, started = [], time.perf_counter()
        batches = range(0, len(order), self.recipe.batch_size)
        progress = tqdm(
            batches, desc=f"epoch {self.epoch + 1}/{self.recipe.epochs}", leave=False, disable=not self.ranks.is_main
        )
        for index, start in enumerate(progress):
            step = self.epoch * self.steps_per_epoch + index + 1
            set_learning_rates(self.all_optimizers(), step, self.total_steps, self.epoch, self.recipe)
            losses.append(self.train_step(images, order[start : start + self.recipe.batch_size], generator))
            self.average_weights(step)
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
        seconds = time.perf_counter() - started
        return {"loss": sum(losses) / len(losses), "seconds": seconds, "images_per_s": len(order) / seconds}

    def fit(self) -> dict[str, Any]:
        while self.epoch < self.recipe.epochs:
            record = self.run_epoch()
            self.epoch += 1
            if self.epoch == self.recipe.epochs and self.recipe.epochs > self.recipe.ema_start_epoch:
                # Finish on the averaged weights; with too few epochs no averaging ran and the
                # average still holds the untrained initial weights.
                self.averager.update(self.model, decay=1.0)
            accuracy = zero_shot_accuracy(self.model, self.val_split, self.data.classes, self.device, self.ranks)
            record.update(epoch=self.epoch, val_accuracy=accuracy)
            self.history.append(record)
            log.info(
                "epoch %d/%d loss %.4f val_acc %.4f %.0f img/s %.0fs",
                self.epoch,
                self.recipe.epochs,
                record["loss"],
                record["val_accuracy"],
                record["images_per_s"],
                record["seconds"],
            )
            improved = record["val_accuracy"] > self.best_accuracy
            self.best_accuracy = max(self.best_accuracy, record["val_accuracy"])
            if self.ranks.is_main:  # every process holds the same state; one writes it
                self.write_epoch(record, improved)
        return {"best_val_accuracy": self.best_accuracy, "epochs": self.epoch}

    def write_epoch(self, record: dict[str, Any], improved: bool) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        if improved:
            save_checkpoint(self.model, self.output / "best", self.metadata(record))
        self.save_state()
        self.write_history()

    def metadata(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "tokenizer": self.model.text.tokenizer_name,
            "train": self.recipe.to_dict(),
            "data": {"source": self.data.source, "fingerprint": self.data.fingerprint},
            "metrics": {"val_accuracy": record["val_accuracy"], "epoch": record["epoch"]},
            "trained_on": {**self.device.describe(), "processes": self.ranks.world_size},
        }

    def write_history(self) -> None:
        write_text_atomically(self.output / "history.json", json.dumps(self.history, indent=2))
        plots.training_curve(self.history, self.output / "training_curve.png")
