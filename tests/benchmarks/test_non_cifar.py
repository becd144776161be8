"""The out-of-distribution benchmark's non-CIFAR images: what it says it draws, the same each run."""

import torch

from benchmarks.non_cifar import DRAWN, PHOTOS, drawn_images, photo_images


def test_drawn_images_are_every_kind_at_the_models_size_and_seeded():
    images = drawn_images(3, seed=1)
    assert set(images) == set(DRAWN)
    assert all(batch.shape == (3, 3, 32, 32) and batch.dtype == torch.uint8 for batch in images.values())
    assert all(torch.equal(images[kind], again) for kind, again in drawn_images(3, seed=1).items())
    assert not torch.equal(images["noise"], drawn_images(3, seed=2)["noise"])


def test_photos_are_whole_then_cropped():
    images = photo_images(2)
    assert set(images) == set(PHOTOS) == {"portrait", "temple", "flower"}
    assert all(batch.shape == (3, 3, 32, 32) for batch in images.values())
    assert all(not torch.equal(batch[0], batch[1]) for batch in images.values())
