"""The cross-entropy anchor trains the project's tower as a classifier with the project's recipe."""

from dataclasses import replace

from benchmarks.cross_entropy_anchor import Anchor
from tests.conftest import TINY_DEVICE, TINY_MODEL, TINY_RECIPE


def test_the_anchor_lowers_its_loss_and_beats_chance_on_tiny_data(tiny_data) -> None:
    recipe = replace(TINY_RECIPE, epochs=3, image_optimizer="sgd")
    anchor = Anchor(tiny_data, TINY_MODEL.image, recipe, TINY_DEVICE)
    history = anchor.fit()
    assert history[-1]["loss"] < history[0]["loss"]
    test = anchor.accuracy(tiny_data.test)
    assert test["flip_averaged"] > 0.3  # ten classes: chance is 0.1
