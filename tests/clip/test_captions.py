from dataclasses import replace

import pytest

from model_api.clip.captions import CaptionSet, CaptionSetError
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
    assert tiny.label_prompts("tabby") == ["a tabby.", "tabby"]


def test_training_captions_are_fixed_and_their_second_half_misspelled() -> None:
    captions, labels = CAPTIONS.training_captions()
    half = len(captions) // 2
    assert (captions, labels) == CAPTIONS.training_captions() and labels[:half] == labels[half:]
    differing = sum(clean != slipped for clean, slipped in zip(captions[:half], captions[half:], strict=True))
    assert differing > 0.9 * half
