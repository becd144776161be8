import numpy as np
import pytest
import torch

from model_api.clip.attributes import rec601_luma
from model_api.clip.data import DataUnavailableError, augment, jitter_contrast, load_cifar10, shift


def test_loads_hub_layout_with_class_names(tiny_data) -> None:
    assert tiny_data.train.images.shape == (200, 3, 32, 32) and tiny_data.train.images.dtype == torch.uint8
    assert len(tiny_data.test) == 50
    assert tiny_data.classes[0] == "airplane" and len(tiny_data.classes) == 10
    assert sorted(tiny_data.test.labels.unique().tolist()) == list(range(10))


def test_second_load_reads_the_cache_not_the_source(tiny_data_dir, tiny_data, isolated_cache) -> None:
    again = load_cifar10(str(tiny_data_dir), isolated_cache)
    assert again.fingerprint == tiny_data.fingerprint
    assert torch.equal(again.test.images, tiny_data.test.images)


def test_cache_is_keyed_by_source(tiny_data_dir, tmp_path) -> None:
    """A cache written for one source is never served for another."""
    load_cifar10(str(tiny_data_dir), cache_root=tmp_path)
    with pytest.raises(DataUnavailableError):
        load_cifar10(str(tmp_path / "missing"), cache_root=tmp_path)


def test_validation_split_is_disjoint_and_fixed(tiny_data) -> None:
    train, val = tiny_data.train_val(val_size=40)
    again_train, again_val = tiny_data.train_val(val_size=40)
    assert len(train) == 160 and len(val) == 40
    assert torch.equal(val.images, again_val.images)


def test_augment_flips_and_translates_within_bounds() -> None:
    images = torch.arange(32, dtype=torch.uint8).repeat(8, 3, 32, 1)  # every row is 0..31
    out = augment(images, translate=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    rows = out[:, 0, 16]
    assert not torch.equal(out, images)
    # each row is still a run of consecutive values (shifted and/or mirrored), never garbage
    steps = (rows[:, 1:-4].int() - rows[:, :-5].int()).abs()
    assert set(np.unique(steps.numpy()).tolist()) <= {0, 1}


def test_augment_without_translate_only_flips() -> None:
    images = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, translate=0, generator=torch.Generator().manual_seed(0))
    for original, result in zip(images, out, strict=False):
        assert torch.equal(result, original) or torch.equal(result, original.flip(-1))


def test_augment_mirrors_exactly_the_images_it_is_told_to() -> None:
    images = torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8)
    flipped = torch.tensor([True, False, True, False, False, True])
    out = augment(images, translate=0, generator=torch.Generator().manual_seed(0), flipped=flipped)
    for original, result, mirrored in zip(images, out, flipped.tolist(), strict=True):
        assert torch.equal(result, original.flip(-1) if mirrored else original)


def test_contrast_jitter_keeps_mean_brightness_and_hues() -> None:
    # Mid-range pixels: a factor of up to 1.3 moves none of them past 0 or 255.
    images = torch.randint(70, 186, (64, 3, 32, 32), dtype=torch.uint8)
    out = jitter_contrast(images, 0.3, torch.Generator().manual_seed(0))
    brightness = rec601_luma(images).float().mean((1, 2))
    assert torch.allclose(rec601_luma(out).float().mean((1, 2)), brightness, atol=1.0)
    spread_ratio = out.float().std((1, 2, 3)) / images.float().std((1, 2, 3))
    assert spread_ratio.min() < 0.9 and spread_ratio.max() > 1.1 and spread_ratio.max() < 1.31
    # Each pixel moves along the line to its image's grey level: the order of its channels, what
    # makes it red or blue, stays (ties aside, from rounding).
    order, jittered_order = images.float().argsort(1), out.float().argsort(1)
    pixels = images.float()
    gaps = torch.stack([(pixels[:, a] - pixels[:, b]).abs() for a, b in ((0, 1), (1, 2), (0, 2))], 1)
    distinct = (gaps > 8).all(1, keepdim=True).expand_as(order)
    assert torch.equal(order[distinct], jittered_order[distinct])


def test_shift_moves_one_pixel_and_reflects_the_edge_into_the_gap() -> None:
    images = torch.arange(32, dtype=torch.uint8).repeat(2, 3, 32, 1)  # every row is 0..31
    right = shift(images, 1, 0)
    assert right[0, 0, 5].tolist() == [1, *range(31)]  # column 0 takes the reflection of column 1
    left_and_down = shift(images.transpose(-1, -2), -1, 1)  # every column is 0..31 top to bottom
    assert left_and_down[1, 2, :, 7].tolist() == [1, *range(31)]
    assert torch.equal(shift(images, 0, 0), images)
