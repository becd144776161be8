import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model_api.clip.captions import CAPTIONS_FILE
from model_api.clip.checkpoint import CheckpointError, load_checkpoint, read_metrics, save_checkpoint, weights_sha256
from model_api.clip.inference import prepare_for_inference
from model_api.clip.model import Clip
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL, TINY_MODEL

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "clip-cifar10"


def test_round_trip_gives_identical_outputs(tmp_path) -> None:
    model = prepare_for_inference(Clip(TINY_MODEL, CAPTIONS))  # the memory layout a loaded model has
    save_checkpoint(model, tmp_path, {"metrics": {"val_accuracy": 0.5}})
    loaded, config = load_checkpoint(tmp_path)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), model.encode_image(images), rtol=0, atol=0)
        torch.testing.assert_close(loaded.encode_text(["x", "yz"]), model.encode_text(["x", "yz"]), rtol=0, atol=0)
    assert config["metrics"] == {"val_accuracy": 0.5} and config["model"]["embed_dim"] == TINY_MODEL.embed_dim


def test_a_checkpoint_brings_its_own_caption_set(tmp_path) -> None:
    """Classes, prompt templates and words come from the checkpoint, not from the library's data file."""
    other = replace(
        CAPTIONS,
        classes=("sunflower", "tulip"),
        templates=("a flower: {}.", "{}"),
        vocabulary={"sunflower": ("sunflower", "helianthus"), "tulip": ("tulip",)},
        descriptions={},
    )
    save_checkpoint(Clip(TINY_MODEL, other), tmp_path, {})
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.captions == other
    assert loaded.captions.label_prompts("rose") == ["a flower: rose.", "rose"]


def test_a_checkpoint_without_its_caption_set_names_the_file_to_add(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL, CAPTIONS), tmp_path, {})
    (tmp_path / CAPTIONS_FILE).unlink()
    with pytest.raises(CheckpointError, match=f"no readable {CAPTIONS_FILE}.*cifar10_captions.json"):
        load_checkpoint(tmp_path)


def test_the_shipped_checkpoint_loads_with_the_caption_set_it_was_trained_on() -> None:
    model, config = load_checkpoint(SHIPPED)
    assert model.captions == CAPTIONS and model.captions.describes_attributes
    assert "classes" not in config and "templates" not in config  # one place: captions.json


def test_metrics_include_a_test_report_only_for_these_weights(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL, CAPTIONS), tmp_path, {"metrics": {"val_accuracy": 0.5}})
    assert read_metrics(tmp_path) == {"val_accuracy": 0.5}
    report = {"accuracy": 0.9, "checkpoint_sha256": weights_sha256(tmp_path)}
    (tmp_path / "test_report.json").write_text(json.dumps(report))
    assert read_metrics(tmp_path) == {"val_accuracy": 0.5, "test": report}
    save_checkpoint(
        Clip(TINY_MODEL, CAPTIONS), tmp_path, {"metrics": {"val_accuracy": 0.6}}
    )  # retrained: report is stale
    assert read_metrics(tmp_path) == {"val_accuracy": 0.6}


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_corrupt_weights_are_a_clear_error(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL, CAPTIONS), tmp_path, {})
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_checkpoint(tmp_path)


def test_config_that_does_not_match_weights_is_refused(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL, CAPTIONS), tmp_path, {})
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["embed_dim"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def test_weights_file_holds_no_pickle(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL, CAPTIONS), tmp_path, {})
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    header_size = int.from_bytes((tmp_path / "model.safetensors").read_bytes()[:8], "little")
    assert json.loads((tmp_path / "model.safetensors").read_bytes()[8 : 8 + header_size])


def test_checkpoint_records_its_text_tower(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MINILM_MODEL, CAPTIONS), tmp_path, {})
    text = json.loads((tmp_path / "config.json").read_text())["model"]["text"]
    assert text["kind"] == "minilm" and text["model_name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert load_checkpoint(tmp_path)[0].config.text.kind == "minilm"


@pytest.mark.parametrize(("saved", "claimed"), [(TINY_MODEL, "minilm"), (TINY_MINILM_MODEL, "scratch")])
def test_weights_of_another_text_tower_are_refused(tmp_path, saved, claimed) -> None:
    save_checkpoint(Clip(saved, CAPTIONS), tmp_path, {})
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["text"]["kind"] = claimed
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"do not fit the '{claimed}' text tower"):
        load_checkpoint(tmp_path)


def test_minilm_checkpoint_without_its_encoder_names_the_path(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MINILM_MODEL, CAPTIONS), tmp_path / "ckpt", {})
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'gone'} is not a directory"):
        load_checkpoint(tmp_path / "ckpt", text_encoder_path=tmp_path / "gone")
