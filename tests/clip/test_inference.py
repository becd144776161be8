import torch
import torch.nn.functional as F

from model_api.clip.inference import compose_query


def unit(*values: float) -> torch.Tensor:
    return F.normalize(torch.tensor(values), dim=-1)


def test_a_plain_query_is_unchanged() -> None:
    torch.testing.assert_close(compose_query(unit(1.0, 2.0, 0.0)), unit(1.0, 2.0, 0.0))


def test_a_negative_moves_the_query_away_from_it() -> None:
    dog, grass = unit(1.0, 0.0, 0.0), unit(0.6, 0.8, 0.0)
    composed = compose_query(dog, negative=grass)
    assert composed @ grass < dog @ grass and composed @ dog > 0.5
    torch.testing.assert_close(composed.norm(), torch.tensor(1.0))


def test_a_refinement_weighs_the_image_and_the_words_alike() -> None:
    image, words = unit(1.0, 0.0), unit(0.0, 1.0)
    composed = compose_query(image, refinement=words)
    torch.testing.assert_close(composed @ image, composed @ words)
