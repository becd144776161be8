import torch

from model_api.clip.model import Clip
from model_api.clip.spelling import SpellingCorrector, edit_distance
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL


def test_edit_distance_counts_a_swap_of_neighbours_as_one_edit() -> None:
    assert edit_distance("tiger", "tiger") == 0
    assert edit_distance("tigre", "tiger") == 1  # swap
    assert edit_distance("tigger", "tiger") == 1  # insertion
    assert edit_distance("tger", "tiger") == 1  # deletion
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "ab") == 2


def corrector() -> SpellingCorrector:
    captions = ["a photo of a tiger.", "a tiger in the grass.", "a striped tiger.", "a photo of a tigon.", "a lion."]
    return SpellingCorrector(known_words={"zebra", "boeing", "lions"}, caption_texts=captions)


def test_misspelled_caption_words_are_corrected_and_the_rest_of_the_text_kept() -> None:
    assert corrector().correct("A Tigre in the long grass!") == "A tiger in the long grass!"
    assert corrector().correct("a phtoo of a lino") == "a photo of a lion"


def test_known_words_plurals_and_short_or_distant_words_are_left_alone() -> None:
    for text in ("a ZEBRA", "a Boeing 747", "TIGER", "tigers", "zebras", "ab", "a xylophone", "a tgrsii"):
        assert corrector().correct(text) == text


def test_ties_go_to_the_word_the_captions_use_most() -> None:
    assert corrector().correct("tigen") == "tiger"  # one edit from "tiger" (3 captions) and "tigon" (1)


def test_the_pretrained_tower_corrects_queries_but_never_training_captions() -> None:
    model = Clip(TINY_MINILM_MODEL, CAPTIONS).eval()
    with torch.no_grad():
        typed, meant = model.encode_text(["a photo of a dgo"]), model.encode_text(["a photo of a dog"])
        caption, clean = model.text.prepare(["a photo of a dgo"]), model.text.prepare(["a photo of a dog"])
    torch.testing.assert_close(typed, meant)
    assert not torch.allclose(caption, clean)
