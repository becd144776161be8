import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from model_api.clip.checkpoint import load_checkpoint
from model_api.clip.data import to_float
from model_api.clip.hardware import resolve_device
from model_api.clip.model import Clip
from model_api.clip.train import (
    STATE_FILE,
    CaptionSampler,
    DataCaptionMismatchError,
    ResumeMismatchError,
    Trainer,
    build_optimizers,
    epoch_flips,
    lr_factor,
)
from tests.conftest import CAPTIONS, TINY_DEVICE, TINY_MINILM_MODEL, TINY_MODEL, TINY_RECIPE, needs_cuda


def test_tiny_run_lowers_the_loss_and_writes_a_loadable_checkpoint(tiny_run) -> None:
    history = json.loads((tiny_run / "history.json").read_text())
    assert len(history) == TINY_RECIPE.epochs
    assert history[-1]["loss"] < history[0]["loss"]
    model, config = load_checkpoint(tiny_run / "best")
    assert model.captions.classes[0] == "airplane" and config["tokenizer"] == "utf8-bytes"
    assert config["data"]["fingerprint"] and "val_accuracy" in config["metrics"]
    assert (tiny_run / "training_curve.png").stat().st_size > 1000


def test_tiny_run_learns_the_synthetic_classes(tiny_run) -> None:
    _, config = load_checkpoint(tiny_run / "best")
    assert config["metrics"]["val_accuracy"] > 0.3  # chance is 0.1


def interrupt_after(finished_epochs: int, trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `trainer` as if killed during the epoch after `finished_epochs`."""
    finish_epoch = Trainer.run_epoch

    def killed(run: Trainer) -> dict[str, float]:
        if run.epoch == finished_epochs:
            raise KeyboardInterrupt
        return finish_epoch(run)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "run_epoch", killed)
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()


def test_resume_continues_after_the_last_finished_epoch(tiny_data, tmp_path, monkeypatch) -> None:
    recipe = replace(TINY_RECIPE, epochs=2)
    interrupt_after(1, Trainer(tiny_data, TINY_MODEL, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE), monkeypatch)
    first_epoch = json.loads((tmp_path / "history.json").read_text())
    resumed = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE)
    resumed.resume()
    assert resumed.epoch == 1
    resumed.fit()
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and history[0] == first_epoch[0]
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["epoch"] == 2


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tiny_data, tmp_path, monkeypatch) -> None:
    recipe = replace(TINY_RECIPE, epochs=3)
    whole = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path / "whole", CAPTIONS, device=TINY_DEVICE)
    whole.fit()
    cut = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path / "cut", CAPTIONS, device=TINY_DEVICE)
    interrupt_after(2, cut, monkeypatch)
    resumed = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path / "cut", CAPTIONS, device=TINY_DEVICE)
    resumed.resume()  # every optimizer's momentum and the weight average come back
    assert resumed.epoch == 2
    resumed.fit()
    for name, weights in whole.model.state_dict().items():
        assert torch.equal(weights, resumed.model.state_dict()[name]), name


def test_a_run_resumes_only_with_the_model_and_recipe_that_started_it(tiny_data, tmp_path) -> None:
    Trainer(tiny_data, TINY_MODEL, replace(TINY_RECIPE, epochs=1), tmp_path, CAPTIONS, device=TINY_DEVICE).fit()
    wider = replace(TINY_MODEL, image=replace(TINY_MODEL.image, widths=(8, 16, 32)))
    with pytest.raises(ResumeMismatchError, match="another model .*image differ"):
        Trainer(tiny_data, wider, replace(TINY_RECIPE, epochs=1), tmp_path, CAPTIONS, device=TINY_DEVICE).resume()
    with pytest.raises(ResumeMismatchError, match="another recipe .*epochs differ"):
        Trainer(tiny_data, TINY_MODEL, replace(TINY_RECIPE, epochs=2), tmp_path, CAPTIONS, device=TINY_DEVICE).resume()
    bf16 = replace(TINY_DEVICE, autocast_dtype=torch.bfloat16)
    moved = Trainer(tiny_data, TINY_MODEL, replace(TINY_RECIPE, epochs=1), tmp_path, CAPTIONS, device=bf16)
    moved.resume()  # the precision follows the machine: a run may move to another one
    assert moved.epoch == 1


def test_a_state_written_before_devices_were_chosen_resumes(tiny_data, tmp_path) -> None:
    recipe = replace(TINY_RECIPE, epochs=1)
    Trainer(tiny_data, TINY_MODEL, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE).fit()
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    del state["scaler"]  # such states had no loss scaler, and their recipe said whether it ran in bf16
    state["recipe"] = json.dumps({**json.loads(state["recipe"]), "bf16": True})
    # Nor did they know the fields added since: they trained with those fields' defaults.
    state["recipe"] = json.dumps({k: v for k, v in json.loads(state["recipe"]).items() if k != "flip"})
    model_config = json.loads(state["model_config"])
    del model_config["image"]["activation"]
    state["model_config"] = json.dumps(model_config)
    torch.save(state, tmp_path / STATE_FILE)
    resumed = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE)
    resumed.resume()
    assert resumed.epoch == 1


@needs_cuda
def test_a_tiny_run_on_the_gpu_keeps_its_data_there_and_loads_on_the_cpu(tiny_data, tmp_path) -> None:
    trainer = Trainer(
        tiny_data, TINY_MODEL, replace(TINY_RECIPE, epochs=4), tmp_path, CAPTIONS, device=resolve_device("cuda")
    )
    assert trainer.images.is_cuda and trainer.model.logit_scale.is_cuda
    trainer.fit()
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    _, config = load_checkpoint(tmp_path / "best")
    assert config["trained_on"]["device"] == "cuda:0" and config["trained_on"]["precision"].endswith("autocast")
    moved = Trainer(tiny_data, TINY_MODEL, replace(TINY_RECIPE, epochs=4), tmp_path, CAPTIONS, device=TINY_DEVICE)
    moved.resume()  # a GPU run continues on the CPU
    assert moved.epoch == 4


def test_a_caption_set_for_other_classes_is_refused(tiny_data, tmp_path) -> None:
    reordered = replace(CAPTIONS, classes=CAPTIONS.classes[::-1])
    with pytest.raises(DataCaptionMismatchError, match="not the dataset's"):
        Trainer(tiny_data, TINY_MODEL, TINY_RECIPE, tmp_path, reordered)


@pytest.mark.parametrize("undecided", ["negative", "ignored"])
def test_training_with_attribute_captions_lowers_the_loss(tiny_data, tmp_path, undecided) -> None:
    recipe = replace(TINY_RECIPE, epochs=4, attribute_caption_share=1.0, undecided_pairs=undecided)
    trainer = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE)
    trainer.fit()
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    built = list(trainer.captions.built)
    words = [phrase for phrases in CAPTIONS.scene_phrases.values() for phrase in phrases]
    words += [word for colour_words in CAPTIONS.colour_words.values() for word in colour_words]
    openers = [*CAPTIONS.black_and_white_openers, *(o for os in CAPTIONS.light_openers.values() for o in os)]
    words += [opener.split("{}")[0] for opener in openers]
    assert built and all(any(word in caption for word in words) for caption in built)


def test_attribute_captions_are_drawn_for_images_with_attributes_only(tiny_data) -> None:
    sampler = CaptionSampler(Clip(TINY_MODEL, CAPTIONS), attribute_share=1.0)
    labels = torch.tensor([0, 1])
    codes = torch.tensor([[-1, -1, -1, -1, 0], [-1, -1, 0, -1, 0]], dtype=torch.int8)  # nothing; the sky
    inputs, claims = sampler.sample(labels, codes, torch.Generator().manual_seed(0))
    assert len(inputs) == 2 and claims.tolist() == [[-1] * 5, [-1, -1, 0, -1, -1]]


def test_learning_rate_schedule_is_triangular() -> None:
    factors = [lr_factor(step, 100, TINY_RECIPE) for step in range(101)]
    peak = max(range(101), key=factors.__getitem__)
    assert factors[0] == 0.2 and abs(factors[100] - TINY_RECIPE.final_lr_fraction) < 1e-9
    assert 20 <= peak <= 25


def test_tiny_run_with_the_pretrained_text_tower(tiny_data, tmp_path) -> None:
    Trainer(tiny_data, TINY_MINILM_MODEL, replace(TINY_RECIPE, epochs=6), tmp_path, CAPTIONS, device=TINY_DEVICE).fit()
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    model, config = load_checkpoint(tmp_path / "best")
    assert config["model"]["text"]["kind"] == "minilm" and config["tokenizer"] == config["model"]["text"]["model_name"]
    assert (tmp_path / "best" / "model.safetensors").stat().st_size < 1_000_000  # frozen encoder not saved


def test_each_image_side_weight_has_exactly_one_optimizer() -> None:
    model = Clip(TINY_MODEL, CAPTIONS)
    filters = {id(p) for n, p in model.visual.named_parameters() if n.endswith("weight") and p.requires_grad}
    for image_optimizer in ("muon", "sgd"):
        optimizers = build_optimizers(model, replace(TINY_RECIPE, image_optimizer=image_optimizer))
        in_sgd = [id(p) for group in optimizers.sgd.param_groups for p in group["params"]]
        in_muon = [] if optimizers.muon is None else [id(p) for p in optimizers.muon.param_groups[0]["params"]]
        assert len(in_sgd + in_muon) == len(set(in_sgd + in_muon))  # no weight stepped twice
        assert set(in_muon) == (filters if image_optimizer == "muon" else set())
        assert filters <= set(in_sgd + in_muon) and id(model.image_projection.weight) in in_sgd


def test_an_unknown_image_optimizer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image optimizer"):
        replace(TINY_RECIPE, image_optimizer="adam")


def test_alternating_flip_mirrors_each_image_on_every_other_epoch() -> None:
    alternating = replace(TINY_RECIPE, flip="alternating")
    first, second, third = (epoch_flips(1000, alternating, epoch) for epoch in range(3))
    assert torch.equal(second, ~first) and torch.equal(third, first)
    assert 400 < int(first.sum()) < 600  # a random half starts mirrored
    assert epoch_flips(1000, TINY_RECIPE, 0) is None  # random flip draws its coins per epoch


def test_unknown_choices_and_out_of_range_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown flip"):
        replace(TINY_RECIPE, flip="sometimes")
    with pytest.raises(ValueError, match="contrast_jitter"):
        replace(TINY_RECIPE, contrast_jitter=1.5)
    with pytest.raises(ValueError, match="attribute_caption_share"):
        replace(TINY_RECIPE, attribute_caption_share=2.0)
    with pytest.raises(ValueError, match="unknown undecided_pairs"):
        replace(TINY_RECIPE, undecided_pairs="maybe")


def test_a_tiny_run_with_alternating_flip_contrast_jitter_and_silu_lowers_the_loss(tiny_data, tmp_path) -> None:
    recipe = replace(TINY_RECIPE, flip="alternating", contrast_jitter=0.2)
    model = replace(TINY_MODEL, image=replace(TINY_MODEL.image, activation="silu"))
    trainer = Trainer(tiny_data, model, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE)
    trainer.fit()
    losses = [record["loss"] for record in trainer.history]
    assert losses[-1] < losses[0]
    assert isinstance(trainer.model.visual.act, torch.nn.SiLU)
    model, _ = load_checkpoint(tmp_path / "best")
    assert isinstance(model.visual.act, torch.nn.SiLU)  # the checkpoint rebuilds the tower it trained


def test_hard_example_selection_lowers_the_loss_and_resumes_to_the_same_weights(
    tiny_data, tmp_path, monkeypatch
) -> None:
    recipe = replace(TINY_RECIPE, epochs=3, hard_example_share=0.5)
    whole = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path / "whole", CAPTIONS, device=TINY_DEVICE)
    whole.fit()
    losses = [record["loss"] for record in whole.history]
    assert losses[-1] < losses[0]
    cut = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path / "cut", CAPTIONS, device=TINY_DEVICE)
    interrupt_after(2, cut, monkeypatch)
    resumed = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path / "cut", CAPTIONS, device=TINY_DEVICE)
    resumed.resume()  # the proxy and its optimizer come back too
    resumed.fit()
    for name, weights in whole.model.state_dict().items():
        assert torch.equal(weights, resumed.model.state_dict()[name]), name
    for name, weights in whole.selector.proxy.state_dict().items():
        assert torch.equal(weights, resumed.selector.proxy.state_dict()[name]), name


def test_the_selector_keeps_the_images_the_proxy_scores_worst(tiny_data, tmp_path) -> None:
    recipe = replace(TINY_RECIPE, hard_example_share=0.25)
    trainer = Trainer(tiny_data, TINY_MODEL, recipe, tmp_path, CAPTIONS, device=TINY_DEVICE)
    images, labels = to_float(tiny_data.train.images[:40]), tiny_data.train.labels[:40]
    with torch.no_grad():
        before = F.cross_entropy(trainer.selector.proxy(images), labels, reduction="none")
    chosen = trainer.selector.select(images, labels)
    assert chosen.tolist() == sorted(before.topk(10).indices.tolist())
