"""A joint CLIP scores every pair as the weighted mean of its members' cosines, and is a
checkpoint like any other: saved, loaded, exported and quantised."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import onnx
import pytest
import torch

from model_api.clip.checkpoint import load_checkpoint, save_checkpoint
from model_api.clip.config import ImageEncoderConfig
from model_api.clip.inference import embed_images, embed_texts
from model_api.clip.joint import JoinError, join
from model_api.clip.model import Clip
from model_api.clip.onnx_image import INT8_FILE, export, quantize, use_image_backend, whitening_convs
from tests.conftest import CAPTIONS, TINY_MINILM_MODEL, TINY_MODEL, trained_looking_clip

TEXTS = ["a photo of a cat.", "a red truck on a road", "a dgo"]


def images(count: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(count))


@pytest.fixture(scope="module")
def members() -> tuple[Clip, Clip]:
    wider = dataclasses.replace(TINY_MINILM_MODEL, image=ImageEncoderConfig(whitening_width=8, widths=(8, 16, 24)))
    return trained_looking_clip(TINY_MINILM_MODEL, 0), trained_looking_clip(wider, 1)


@pytest.fixture(scope="module")
def joint(members) -> Clip:
    return join(members, [3, 1])


def test_every_cosine_is_the_members_cosines_averaged_with_their_weights(members, joint: Clip) -> None:
    first, second = members
    pictures = images(6)
    joint_images, joint_texts = embed_images(joint, pictures), embed_texts(joint, TEXTS)
    assert joint_images.shape == (6, 2 * TINY_MINILM_MODEL.embed_dim)
    torch.testing.assert_close(joint_images.norm(dim=1), torch.ones(6))
    member_images = [embed_images(member, pictures) for member in members]
    member_texts = [embed_texts(member, TEXTS) for member in members]
    for joint_side, sides in ((joint_texts, member_texts), (joint_images, member_images)):
        expected = 0.75 * member_images[0] @ sides[0].T + 0.25 * member_images[1] @ sides[1].T
        torch.testing.assert_close(joint_images @ joint_side.T, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(joint.scale(), 0.75 * first.scale() + 0.25 * second.scale())


def test_a_joint_checkpoint_loads_as_it_was_saved(joint: Clip, tmp_path: Path) -> None:
    save_checkpoint(joint, tmp_path, {"joined_from": ["first", "second"]})
    loaded, config = load_checkpoint(tmp_path)
    assert loaded.config == joint.config and config["model"]["member_weights"] == [0.75, 0.25]
    pictures = images(4)
    torch.testing.assert_close(embed_images(loaded, pictures), embed_images(joint, pictures))
    torch.testing.assert_close(embed_texts(loaded, TEXTS), embed_texts(joint, TEXTS))


def test_members_that_do_not_share_their_text_side_are_refused(members) -> None:
    first, _ = members
    with pytest.raises(JoinError, match="sentence encoder"):
        join([first, trained_looking_clip(TINY_MODEL, 2)], [1, 1])
    other_captions = copy.deepcopy(first)
    other_captions.captions = dataclasses.replace(CAPTIONS, classes=tuple(reversed(CAPTIONS.classes)))
    with pytest.raises(JoinError, match="caption set"):
        join([first, other_captions], [1, 1])
    with pytest.raises(JoinError, match="joined again"):
        join([join(members, [1, 1]), first], [1, 1])


def test_the_joint_tower_runs_on_onnx_runtime_and_in_int8(joint: Clip, tmp_path: Path) -> None:
    export(joint.visual, tmp_path / "float.onnx")
    assert len(whitening_convs(onnx.load(str(tmp_path / "float.onnx")))) == 2  # one per member, kept in float
    quantize(joint.visual, images(256), tmp_path / INT8_FILE)
    pictures = images(300)
    reference = embed_images(joint, pictures)
    for backend in ("onnx", "onnx-int8"):
        served = use_image_backend(copy.deepcopy(joint), backend, tmp_path / "cache", checkpoint=tmp_path)
        assert (embed_images(served, pictures) * reference).sum(dim=1).min() > 0.98
