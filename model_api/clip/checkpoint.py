"""Checkpoints: `model.safetensors` (weights), `config.json` (architecture, recipe, metrics) and
`captions.json` (the caption set it was trained on: classes, prompt templates, words).

Loading rebuilds the model from those files alone and never unpickles. Every file is written to
a temporary name and renamed, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .captions import CAPTIONS_FILE, CaptionSet, CaptionSetError
from .config import ClipConfig
from .files import write_atomically, write_text_atomically
from .hardware import Device
from .inference import prepare_for_inference
from .model import Clip

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TEST_REPORT_FILE = "test_report.json"  # `main.py --mode TEST --report` beside the weights


class CheckpointError(RuntimeError):
    """The checkpoint is missing, unreadable or does not match its config."""


def save_checkpoint(model: Clip, directory: Path, metadata: dict[str, Any]) -> None:
    """metadata: training recipe, data fingerprint, metrics..."""
    directory.mkdir(parents=True, exist_ok=True)
    model.captions.write(directory / CAPTIONS_FILE)
    weights = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    write_atomically(directory / WEIGHTS_FILE, lambda tmp: save_file(weights, str(tmp)))
    config = {"model": model.config.to_dict(), **metadata}
    write_text_atomically(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")


def read_config(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(directory) / CONFIG_FILE).read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"no checkpoint at {directory} (missing {CONFIG_FILE})") from error
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"unreadable {CONFIG_FILE} in {directory}: {error}") from error


def check_weights_match_tower(model: Clip, weights: dict[str, Any], directory: Path) -> None:
    """Weights saved with one text tower cannot be loaded into another: say which tower the
    config names instead of listing every missing tensor."""
    missing, unexpected = model.state_dict().keys() - weights.keys(), weights.keys() - model.state_dict().keys()
    if missing or unexpected:
        text = model.config.text
        raise CheckpointError(
            f"checkpoint {directory}: its weights do not fit the {text.kind!r} text tower its config names "
            f"({text.model_name if text.kind == 'minilm' else 'trained from scratch'}); "
            f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )


def read_captions(directory: Path) -> CaptionSet:
    try:
        return CaptionSet.read(Path(directory) / CAPTIONS_FILE)
    except CaptionSetError as error:
        raise CheckpointError(
            f"checkpoint {directory} has no readable {CAPTIONS_FILE} ({error}); a checkpoint trained before "
            f"caption sets were saved with it was trained on model_api/clip/cifar10_captions.json: copy it "
            f"there as {CAPTIONS_FILE}"
        ) from error


def load_checkpoint(
    directory: Path | str, text_encoder_path: Path | None = None, device: Device | None = None
) -> tuple[Clip, dict[str, Any]]:
    """-> (model ready for inference, the config.json contents).

    text_encoder_path: a local copy of the pretrained sentence encoder the config names, if not
    the packaged copy or the hub. device: where the model computes (default: the CPU).
    """
    directory = Path(directory)
    config = read_config(directory)
    captions = read_captions(directory)
    try:
        model = Clip(ClipConfig.from_dict(config["model"]), captions, text_encoder_path)
        weights = load_file(str(directory / WEIGHTS_FILE))
        check_weights_match_tower(model, weights, directory)
        model.load_state_dict(weights)
    except CheckpointError:
        raise
    except Exception as error:  # safetensors, shape, config and text-tower errors all mean "cannot load"
        raise CheckpointError(f"cannot load checkpoint {directory}: {error}") from error
    return prepare_for_inference(model, device), config


def weights_sha256(directory: Path | str) -> str:
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_FILE, "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metrics(directory: Path | str) -> dict[str, Any]:
    """The training metrics from config.json and, under "test", the TEST report kept beside the
    weights, but only if it was measured on these very weights (a retrained checkpoint's old
    report would otherwise pass for its own)."""
    directory = Path(directory)
    metrics = dict(read_config(directory).get("metrics", {}))
    try:
        report = json.loads((directory / TEST_REPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return metrics
    if report.get("checkpoint_sha256") == weights_sha256(directory):
        metrics["test"] = report
    return metrics
