import json

import pytest
import torch

from model_api.clip.checkpoint import CheckpointError, load_checkpoint, read_metrics, save_checkpoint, weights_sha256
from model_api.clip.model import Clip
from model_api.clip.text_encoder import MODEL_PATH_ENV
from tests.conftest import TINY_MINILM_MODEL, TINY_MODEL


def test_round_trip_gives_identical_outputs(tmp_path) -> None:
    model = Clip(TINY_MODEL).eval()
    save_checkpoint(model, tmp_path, {"classes": ["a", "b"]})
    loaded, config = load_checkpoint(tmp_path)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), model.encode_image(images), rtol=0, atol=0)
        torch.testing.assert_close(loaded.encode_text(["x", "yz"]), model.encode_text(["x", "yz"]), rtol=0, atol=0)
    assert config["classes"] == ["a", "b"] and config["model"]["embed_dim"] == TINY_MODEL.embed_dim


def test_metrics_include_a_test_report_only_for_these_weights(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL), tmp_path, {"metrics": {"val_accuracy": 0.5}})
    assert read_metrics(tmp_path) == {"val_accuracy": 0.5}
    report = {"accuracy": 0.9, "checkpoint_sha256": weights_sha256(tmp_path)}
    (tmp_path / "test_report.json").write_text(json.dumps(report))
    assert read_metrics(tmp_path) == {"val_accuracy": 0.5, "test": report}
    save_checkpoint(Clip(TINY_MODEL), tmp_path, {"metrics": {"val_accuracy": 0.6}})  # retrained: report is stale
    assert read_metrics(tmp_path) == {"val_accuracy": 0.6}


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_corrupt_weights_are_a_clear_error(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL), tmp_path, {})
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_checkpoint(tmp_path)


def test_config_that_does_not_match_weights_is_refused(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL), tmp_path, {})
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["embed_dim"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def test_weights_file_holds_no_pickle(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MODEL), tmp_path, {})
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    header_size = int.from_bytes((tmp_path / "model.safetensors").read_bytes()[:8], "little")
    assert json.loads((tmp_path / "model.safetensors").read_bytes()[8 : 8 + header_size])


def test_checkpoint_records_its_text_tower(tmp_path) -> None:
    save_checkpoint(Clip(TINY_MINILM_MODEL), tmp_path, {})
    text = json.loads((tmp_path / "config.json").read_text())["model"]["text"]
    assert text["kind"] == "minilm" and text["model_name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert load_checkpoint(tmp_path)[0].config.text.kind == "minilm"


@pytest.mark.parametrize(("saved", "claimed"), [(TINY_MODEL, "minilm"), (TINY_MINILM_MODEL, "scratch")])
def test_weights_of_another_text_tower_are_refused(tmp_path, saved, claimed) -> None:
    save_checkpoint(Clip(saved), tmp_path, {})
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["text"]["kind"] = claimed
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"do not fit the '{claimed}' text tower"):
        load_checkpoint(tmp_path)


def test_minilm_checkpoint_without_its_encoder_names_the_path(tmp_path, monkeypatch) -> None:
    save_checkpoint(Clip(TINY_MINILM_MODEL), tmp_path / "ckpt", {})
    monkeypatch.setenv(MODEL_PATH_ENV, str(tmp_path / "gone"))
    with pytest.raises(CheckpointError, match=f"{MODEL_PATH_ENV}={tmp_path / 'gone'}"):
        load_checkpoint(tmp_path / "ckpt")
