import numpy as np
import pytest
import torch

from model_api.clip.attributes import (
    CODE_FIELDS,
    ImageAttributes,
    attribute_codes,
    decode_attributes,
    encode_attributes,
    read_attributes,
)

SKY_BLUE = (70, 130, 220)
RED = (210, 30, 30)
GRASS = (50, 150, 40)


def canvas(colour: tuple[int, int, int]) -> np.ndarray:
    """A 32x32 RGB (H, W, 3) uint8 image of one colour."""
    return np.broadcast_to(np.asarray(colour, dtype=np.uint8), (32, 32, 3)).copy()


def batch(*images: np.ndarray) -> torch.Tensor:
    """(H, W, 3) arrays -> (N, 3, H, W) uint8: the project's image convention."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def read_one(image: np.ndarray) -> ImageAttributes:
    return read_attributes(batch(image))[0]


def with_square(image: np.ndarray, colour: tuple[int, int, int], lo: int = 8, hi: int = 24) -> np.ndarray:
    image = image.copy()
    image[lo:hi, lo:hi] = colour
    return image


def random_scenes(n: int, seed: int) -> torch.Tensor:
    """(n, 3, 32, 32) uint8: a two-colour background (top/bottom) with an off-centre coloured
    rectangle and noise; nothing in them is left/right symmetric."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for k in range(n):
        image = np.empty((32, 32, 3))
        horizon = rng.integers(8, 24)
        image[:horizon], image[horizon:] = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        top, left = rng.integers(2, 14, 2)
        image[top : top + rng.integers(8, 18), left : left + rng.integers(8, 18)] = rng.integers(0, 256, 3)
        images[k] = (image + rng.normal(0, 6, image.shape)).clip(0, 255)
    return batch(*images)


def test_red_square_on_blue_reads_red_object_in_the_sky() -> None:
    attributes = read_one(with_square(canvas(SKY_BLUE), RED))
    assert attributes.colours == ("red",)
    assert attributes.scene == "sky"


def test_green_lower_half_reads_grass() -> None:
    image = canvas((140, 120, 100))
    image[16:] = GRASS
    assert read_one(image).scene == "grass"


def test_blue_below_a_lighter_sky_with_ripples_reads_water() -> None:
    image = canvas((150, 190, 235))
    image[16:] = (30, 70, 140)
    image[17::2] = (45, 90, 165)  # waves: rows alternate, columns do not
    assert read_one(image).scene == "water"


def test_sky_that_darkens_downwards_is_sky_not_water() -> None:
    sky = canvas(SKY_BLUE) - np.arange(32, dtype=np.uint8)[:, None, None]  # one level darker per row
    assert read_one(with_square(sky, (230, 230, 230))).scene == "sky"


def test_white_object_on_black_reads_white() -> None:
    image = with_square(canvas((5, 5, 5)), (240, 240, 240))
    image[-1] = RED  # a colour photo: an all-grey one is black-and-white and names no colours
    assert read_one(image).colours == ("white",)


def test_object_on_white_reads_white_background_and_bright() -> None:
    attributes = read_one(with_square(canvas((250, 250, 250)), RED, 12, 20))
    assert attributes.scene == "white background"
    assert attributes.light == "bright"


def test_nearly_black_image_reads_dark() -> None:
    noise = np.random.default_rng(0).integers(0, 20, (32, 32, 3), dtype=np.uint8)
    assert read_one(noise).light == "dark"


def test_mid_grey_image_has_no_light_attribute() -> None:
    assert read_one(canvas((128, 128, 128))).light is None


def test_greyscale_noise_reads_black_and_white_with_no_colour() -> None:
    grey = np.random.default_rng(0).integers(0, 256, (32, 32, 1), dtype=np.uint8).repeat(3, axis=2)
    attributes = read_one(grey)
    assert attributes.black_and_white
    assert attributes.colours == ()


def test_uniform_image_has_no_object_colour() -> None:
    """Nothing in the centre differs from the border: there is no object to name."""
    assert read_one(canvas(RED)).colours == ()


def test_a_border_colour_in_the_centre_is_not_the_objects() -> None:
    """A sky that changes shade differs from the border's mean in the centre, but is still sky."""
    sky = canvas(SKY_BLUE).astype(np.int16)
    sky[:, :, :] += np.abs(np.arange(32) - 15.5).astype(np.int16)[None, :, None] * 3  # lighter towards the sides
    sky[6:11] -= 40  # a darker band across the middle, above the object
    image = with_square(sky.clip(0, 255).astype(np.uint8), (245, 245, 245), 12, 24)
    assert read_one(image).colours == ("white",)


def test_mirror_image_reads_the_same() -> None:
    images = random_scenes(400, seed=0)
    codes = attribute_codes(images)
    assert np.array_equal(codes, attribute_codes(images.flip(-1)))
    assert (codes[:, 0] >= 0).sum() > 50  # the images do carry colours: the check is not vacuous


def test_reading_is_deterministic() -> None:
    images = random_scenes(100, seed=1)
    assert np.array_equal(attribute_codes(images), attribute_codes(images.clone()))


def test_batch_reads_equal_one_by_one_reads() -> None:
    images = random_scenes(40, seed=2)
    one_by_one = [read_attributes(image[None])[0] for image in images]
    assert read_attributes(images) == one_by_one
    assert read_attributes(images, batch_size=7) == one_by_one


def test_codes_round_trip_through_decode_and_encode() -> None:
    codes = attribute_codes(random_scenes(100, seed=3))
    assert codes.dtype == np.int8 and codes.shape == (100, len(CODE_FIELDS))
    assert np.array_equal(encode_attributes(decode_attributes(codes)), codes)


def test_attributes_round_trip_through_dict() -> None:
    attributes = ImageAttributes(colours=("red", "white"), scene="sky", light="bright", black_and_white=False)
    assert ImageAttributes.from_dict(attributes.to_dict()) == attributes


def test_empty_batch_reads_nothing() -> None:
    assert read_attributes(torch.zeros(0, 3, 32, 32, dtype=torch.uint8)) == []


@pytest.mark.parametrize("images", [torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 64, 64, dtype=torch.uint8)])
def test_images_not_in_the_training_convention_are_refused(images: torch.Tensor) -> None:
    """Float or non-32 px input: the thresholds assume 32x32 uint8, so refuse rather than guess."""
    with pytest.raises(ValueError):
        read_attributes(images)
