import random
from dataclasses import replace

import pytest
import torch

from model_api.clip.attributes import COLOURS, LIGHTS, SCENES
from model_api.clip.captions import CaptionSet, CaptionSetError, statable
from model_api.clip.train import caption_positives, undecided_pairs
from tests.conftest import CAPTIONS


def test_a_caption_set_survives_writing_and_reading(tmp_path) -> None:
    CAPTIONS.write(tmp_path / "captions.json")
    assert CaptionSet.read(tmp_path / "captions.json") == CAPTIONS


def test_captions_for_a_class_outside_the_set_are_refused(tmp_path) -> None:
    stray = replace(CAPTIONS, descriptions={**CAPTIONS.descriptions, "unicorn": ("a horse with a horn",)})
    stray.write(tmp_path / "captions.json")
    with pytest.raises(CaptionSetError, match="unicorn"):
        CaptionSet.read(tmp_path / "captions.json")


def test_a_template_without_its_slot_is_refused(tmp_path) -> None:
    replace(CAPTIONS, templates=("a photo",)).write(tmp_path / "captions.json")
    with pytest.raises(CaptionSetError, match="exactly one"):
        CaptionSet.read(tmp_path / "captions.json")


def test_a_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CaptionSetError, match="no caption set"):
        CaptionSet.read(tmp_path / "absent.json")


def test_each_class_word_is_captioned_with_every_template() -> None:
    tiny = CaptionSet(("cat",), ("a {}.", "{}"), ("it is {}",), {"cat": ("cat", "kitten")}, {"cat": ("a pet",)})
    assert tiny.class_captions("cat") == ["a cat.", "cat", "a kitten.", "kitten", "it is a pet"]


def test_a_typed_label_is_prompted_with_every_template_and_a_class_with_its_words() -> None:
    tiny = CaptionSet(("cat", "dog"), ("a {}.", "{}"), ("it is {}",), {"cat": ("cat", "kitten")}, {"cat": ("a pet",)})
    assert tiny.label_prompts("tabby") == ["a tabby.", "tabby"]
    assert tiny.label_prompts("cat") == tiny.label_prompts("Cat") == ["a cat.", "a kitten."]
    assert tiny.label_prompts("dog") == ["a dog.", "dog"]  # a class without words of its own


def test_training_captions_are_fixed_and_their_second_half_misspelled() -> None:
    captions, labels = CAPTIONS.training_captions()
    half = len(captions) // 2
    assert (captions, labels) == CAPTIONS.training_captions() and labels[:half] == labels[half:]
    differing = sum(clean != slipped for clean, slipped in zip(captions[:half], captions[half:], strict=True))
    assert differing > 0.9 * half


def test_an_attribute_caption_states_only_what_the_reader_found_and_claims_exactly_that() -> None:
    red, sky, dark = COLOURS.index("red"), SCENES.index("sky"), LIGHTS.index("dark")
    rng = random.Random(0)
    for _ in range(200):
        caption, claim = CAPTIONS.attribute_caption(0, [red, -1, sky, dark, 0], rng)  # an airplane
        assert claim != [-1] * 5 and claim[1] == -1 and claim[4] == -1
        assert (claim[0] == red) == any(w in caption for w in CAPTIONS.colour_words["red"])
        assert (claim[2] == sky) == any(p in caption for p in CAPTIONS.scene_phrases["sky"])
        assert claim[3] in (-1, dark)
        words = CAPTIONS.vocabulary["airplane"]
        assert any(word in caption for word in words) and "truck" not in caption


def test_an_attribute_caption_never_states_the_second_colour() -> None:
    rng = random.Random(1)
    captions = [CAPTIONS.attribute_caption(9, [COLOURS.index("white"), COLOURS.index("pink"), -1, -1, 0], rng)[0]]
    assert not any("pink" in caption for caption in captions)
    assert statable([-1, COLOURS.index("pink"), -1, -1, 0]) == []  # nothing left to caption it with


def test_a_caption_is_a_positive_only_for_images_with_what_it_claims() -> None:
    red, blue, sky = COLOURS.index("red"), COLOURS.index("blue"), SCENES.index("sky")
    image_labels = torch.tensor([1, 1, 1, 2])
    image_codes = torch.tensor(
        [[red, -1, -1, -1, 0], [blue, red, -1, -1, 0], [-1, -1, sky, -1, 0], [red, -1, -1, -1, 0]]
    )
    text_labels = torch.tensor([1, 1, 1])
    claims = torch.tensor([[red, -1, -1, -1, -1], [-1, -1, -1, -1, -1], [-1, -1, sky, -1, -1]])
    positives = caption_positives(image_labels, image_codes, text_labels, claims)
    assert positives.tolist() == [
        [1, 1, 0],  # a red car: "a red car", "a car"
        [0, 1, 0],  # red only as its second colour: not "a red car"
        [0, 1, 1],  # a car in the sky
        [0, 0, 0],  # another class
    ]


def test_overlap_weighting_counts_the_share_of_claims_an_image_has() -> None:
    red, blue, sky, grass = COLOURS.index("red"), COLOURS.index("blue"), SCENES.index("sky"), SCENES.index("grass")
    image_labels = torch.tensor([1, 1, 1, 2])
    image_codes = torch.tensor(
        [[red, -1, grass, -1, 0], [blue, -1, grass, -1, 0], [blue, -1, sky, -1, 0], [red, -1, grass, -1, 0]]
    )
    text_labels = torch.tensor([1, 1])
    claims = torch.tensor([[red, -1, grass, -1, -1], [-1, -1, -1, -1, -1]])  # "a red car on the grass", "a car"
    overlap = caption_positives(image_labels, image_codes, text_labels, claims, weighting="overlap")
    assert overlap.tolist() == [[1.0, 1.0], [0.5, 1.0], [0.0, 1.0], [0.0, 0.0]]
    every_claim = caption_positives(image_labels, image_codes, text_labels, claims)
    assert every_claim.tolist() == [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


def test_a_colour_or_scene_claim_is_undecided_for_images_of_its_class_the_reader_was_silent_on() -> None:
    red, sky, dark = COLOURS.index("red"), SCENES.index("sky"), 0
    image_labels = torch.tensor([1, 1, 1, 2])
    image_codes = torch.tensor([[red, -1, -1, -1, 0], [-1, -1, sky, -1, 0], [red, -1, -1, -1, 0], [-1, -1, -1, -1, 0]])
    text_labels = torch.tensor([1, 1, 1, 1])
    claims = torch.tensor(
        [[red, -1, -1, -1, -1], [-1, -1, sky, -1, -1], [-1, -1, -1, dark, -1], [-1, -1, -1, -1, -1]]
    )  # "a red car", "a car in the sky", "a dark photo of a car", "a car"
    assert undecided_pairs(image_labels, image_codes, text_labels, claims).tolist() == [
        [False, True, False, False],  # a red car, scene unread: "in the sky" undecided
        [True, False, False, False],  # a car in the sky, colour unread: "a red car" undecided
        [False, True, False, False],  # light's none is a decision: "a dark photo" is a negative
        [False, False, False, False],  # another class: a plain negative
    ]
