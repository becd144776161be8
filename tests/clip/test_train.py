import json
from dataclasses import replace

import torch

from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.train import STATE_FILE, Trainer, lr_factor
from tests.conftest import TINY_MINILM_MODEL, TINY_MODEL, TINY_RECIPE


def test_tiny_run_lowers_the_loss_and_writes_a_loadable_checkpoint(tiny_run) -> None:
    history = json.loads((tiny_run / "history.json").read_text())
    assert len(history) == TINY_RECIPE.epochs
    assert history[-1]["loss"] < history[0]["loss"]
    model, config = load_checkpoint(tiny_run / "best")
    assert config["classes"][0] == "airplane" and config["tokenizer"] == "utf8-bytes"
    assert config["data"]["fingerprint"] and "val_accuracy" in config["metrics"]
    assert (tiny_run / "training_curve.png").stat().st_size > 1000


def test_tiny_run_learns_the_synthetic_classes(tiny_run) -> None:
    _, config = load_checkpoint(tiny_run / "best")
    assert config["metrics"]["val_accuracy"] > 0.3  # chance is 0.1


def test_resume_continues_after_the_last_finished_epoch(tiny_data, tmp_path) -> None:
    recipe = replace(TINY_RECIPE, epochs=2)
    Trainer(tiny_data, TINY_MODEL, replace(recipe, epochs=1), tmp_path).fit()  # "interrupted" after epoch 1
    first_epoch = json.loads((tmp_path / "history.json").read_text())
    resumed = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path)
    resumed.resume()
    assert resumed.epoch == 1
    resumed.fit()
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and history[0] == first_epoch[0]
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["epoch"] == 2


def test_learning_rate_schedule_is_triangular() -> None:
    factors = [lr_factor(step, 100, TINY_RECIPE) for step in range(101)]
    peak = max(range(101), key=factors.__getitem__)
    assert factors[0] == 0.2 and abs(factors[100] - TINY_RECIPE.final_lr_fraction) < 1e-9
    assert 20 <= peak <= 25


def test_tiny_run_with_the_pretrained_text_tower(tiny_data, tmp_path) -> None:
    Trainer(tiny_data, TINY_MINILM_MODEL, replace(TINY_RECIPE, epochs=6), tmp_path).fit()
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    model, config = load_checkpoint(tmp_path / "best")
    assert config["model"]["text"]["kind"] == "minilm" and config["tokenizer"] == config["model"]["text"]["model_name"]
    assert (tmp_path / "best" / "model.safetensors").stat().st_size < 1_000_000  # frozen encoder not saved
