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


def test_the_deletion_index_finds_what_comparing_every_caption_word_finds() -> None:
    """The candidates the index offers must lose no correction: on slips of the shipped caption
    words (swaps, deletions, doubled and replaced letters; two of them in long words), the result
    equals the closest caption word found by comparing the slip with every one."""
    speller = SpellingCorrector(set(), CAPTIONS.all_class_captions())
    words = sorted(speller.frequency)[::20]
    slips = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for word in words for i in range(len(word) - 1)}
    slips |= {word[:i] + word[i + 1 :] for word in words for i in range(len(word))}
    slips |= {word[:i] + "xq"[i % 2] + word[i:] for word in words for i in range(len(word))}
    slips |= {word[1] + word[0] + word[2:-1] for word in words if len(word) > 8}  # swap and deletion
    corrected = 0
    left_alone = {
        slip
        for slip in slips
        if len(slip) < 3 or slip in speller.known or (slip.endswith("s") and slip[:-1] in speller.known)
    }
    for slip in sorted(slips - left_alone):
        limit = 1 if len(slip) <= 8 else 2
        scanned = [(edit_distance(slip, word), -count, word) for word, count in speller.frequency.items()]
        within = [candidate for candidate in scanned if candidate[0] <= limit]
        closest = min(within)[2] if within else slip
        assert speller.correct_word(slip) == closest, slip
        corrected += closest != slip
    assert corrected > 300, corrected  # the slips do reach caption words
