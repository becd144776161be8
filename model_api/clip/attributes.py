"""What an image's own pixels say beyond its class: the object's colour, the scene, the light.

Every image of a class shares the same training captions, so text search only knows the class.
This module reads a few attributes a person would type ("a red car", "a bird in the sky", "a
dark photo") from each image's pixels, so captions can describe the image itself. It prefers
saying nothing to saying something wrong: each attribute is None (or empty) unless the pixels
show it clearly.

How it reads an image (N, 3, 32, 32) uint8, all in batched tensor ops:
- every pixel is named with one colour of a fixed palette from its hue, saturation and value;
- the object is roughly the centre of a CIFAR image and the background its border: a centre
  pixel belongs to the object when its colour is far from every nearby border colour (the top
  strip, the bottom strip, and the side strips around its own row);
- colours common on the border (sky, grass, a wall) are never the object's, even where a centre
  pixel of that colour passed the distance test;
- the object's colour is the palette name holding most of its remaining pixels (black, white and
  grey need a larger share than chromatic colours, since shadows and highlights are everywhere),
  a second one only when it holds a large share too;
- the scene comes from the top and bottom strips' colours and texture, the light from the mean
  luma, "black and white" from the near absence of coloured pixels.

How often it is right, judged by eye on a sample not used for tuning, is in BENCHMARKS.md
(`benchmarks/attribute_report.py` draws the contact sheet): the main colour and the scene
are usable, the second colour is not reliable enough to caption with.

Training flips images left-right, so a caption must hold for the mirror image too. Every region
here is symmetric about the vertical axis and every decision is taken on integer counts or sums
of integers (exact in any summation order), so an image and its mirror read the same, bit for
bit. There are no left/right attributes.

For caching, `attribute_codes` returns one small int8 row per image (`CODE_FIELDS`) that
`decode_attributes` turns back into `ImageAttributes`; `to_dict`/`from_dict` serve JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .preprocess import IMAGE_SIZE

# The palette, in code order. "grey" is the canonical spelling (callers map "gray" to it).
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey")
CHROMATIC = frozenset(COLOURS[:8])
SCENES = ("sky", "water", "grass", "white background")
LIGHTS = ("dark", "bright")
NONE_CODE = -1
# Part of the cached codes' file name: change it with any palette, vocabulary or threshold, so
# caches written by an older reader are read again instead of reused.
ATTRIBUTES_VERSION = 1
CODE_FIELDS = ("colour", "second_colour", "scene", "light", "black_and_white")

RED, ORANGE, YELLOW, GREEN, BLUE, PURPLE, PINK, BROWN, BLACK, WHITE, GREY = range(len(COLOURS))

# --- Per-pixel naming (hue in degrees; saturation, value and chroma in [0, 1]) ---------------
# Hue boundaries: the usual names of the colour wheel; cyan counts as blue, olive as green.
HUE_ORANGE, HUE_YELLOW, HUE_GREEN, HUE_BLUE, HUE_PURPLE, HUE_PINK, HUE_RED = 12, 40, 62, 170, 258, 295, 340
ACHROMATIC_SATURATION = 0.18  # below this a pixel reads as grey/white, whatever its hue
ACHROMATIC_CHROMA = 0.05  # max-min below ~13/255: too little colour to name, even if saturation is high
BLUE_MIN_SATURATION = 0.28  # cool light tints greys, silver cars and shadows blue: blue needs more
BLACK_VALUE = 0.12  # below this no hue is visible: black
GREY_BLACK_VALUE = 0.25  # an achromatic pixel this dark is black, not grey (black fur, tyres)
# Colour constancy: white is relative to the photo's own light. An achromatic pixel is white when
# it is within WHITE_RELATIVE of the image's bright reference (its 98th percentile value) and not
# dim in absolute terms; otherwise grey. A white dog in a dim photo is white, a grey car under a
# white sky grey.
WHITE_RELATIVE = 0.80
WHITE_MIN_VALUE = 0.50
BRIGHT_REFERENCE_QUANTILE = 0.98
# Brown is dark or washed-out orange/yellow/red: horses, deer, wood. Orange, yellow and red need
# a saturated, lit pixel; chestnut horses and tan dogs are named brown, not orange or red.
ORANGE_MIN_SATURATION, ORANGE_MIN_VALUE = 0.55, 0.65
YELLOW_MIN_SATURATION, YELLOW_MIN_VALUE = 0.35, 0.45
RED_MIN_SATURATION, RED_MIN_VALUE = 0.45, 0.30
PINK_MIN_VALUE = 0.70  # a red hue too pale for red but this bright is pink, not brown

# --- Regions (rows/columns of a 32 px image; all symmetric about the vertical axis) ---------
BORDER = 3  # the background ring: CIFAR objects rarely reach the outer 3 px
CENTRE_MARGIN = 6  # the object region is the central 20x20
SIDE_BAND = 3  # a centre pixel is compared with the side border within +-3 rows of its own
STRIP = 8  # the top and bottom quarters: where sky / ground show

# --- Object colour ---------------------------------------------------------------------------
OBJECT_DISTANCE = 0.16  # RGB distance (in [0, 1] units, max ~1.73) that separates object from background
# A colour this common on the border ring, or on one part of it (its top, its bottom, its two
# sides together, or the sides beside a pixel's own rows), is background there: a grass strip
# along the bottom edge is still grass mid-frame, a band of grass at mid-height still grass.
BACKGROUND_NAME_SHARE = 0.25
BACKGROUND_PART_SHARE = 0.50
# When most of the pixels that differ from the border's mean colours still carry a border
# colour, the object probably has the background's colour (a white truck under a white sky):
# what remains (tyres, windows) would misname it, so say nothing.
MIN_KEPT_SHARE = 0.50
MIN_OBJECT_SHARE = 0.15  # fewer object pixels than this share of the centre: no reliable object
# The main colour must hold this share of the object's pixels. Black, white and grey need more:
# shadows, windows and tyres are dark and highlights white on objects of any colour, so a red car
# is red at 35% red pixels but a car is black only when black dominates.
CHROMATIC_SHARE = 0.30
ACHROMATIC_SHARE = 0.45
SECOND_SHARE = 0.28  # a second colour is named only when it holds a large share too

# --- Scene -------------------------------------------------------------------------------------
SCENE_SHARE = 0.70  # a strip shows a scene when this share of its pixels has the scene's colour
SKY_MIN_VALUE = 0.35  # sky is lit: dark blue strips are rarely sky
SKY_MIN_SATURATION = 0.12  # pale blue is still sky, but grey walls are not
SMOOTH_TEXTURE = 6.0  # mean |luma step| between neighbours (0-255): sky and calm water are smooth
# Blue below a lighter sky is water, not more sky, when it is clearly darker and rippled (its
# steps between rows exceed those between columns). Chosen on train images with blue below:
# kept about 63% of ships and 13% of airplanes and birds (most of which are truly in the sky).
WATER_DARKER = 0.15  # mean HSV value, top strip minus bottom strip
PALE_SKY_VALUE = 0.60  # an overcast sky above water: light grey
WHITE_BACKGROUND_VALUE = 0.85  # a studio background is near 255, brighter than an overcast sky
WHITE_BACKGROUND_SHARE = 0.85  # of the border ring's pixels
# No "snow": a white lower strip was a studio floor, a bed or haze far more often than snow.

# --- Light and tone --------------------------------------------------------------------------
# Mean luma (0-255) over CIFAR-10 train: 5th percentile 73, 95th 178; the tails are what a
# person would call a dark or a bright photo.
DARK_LUMA = 72
BRIGHT_LUMA = 180
GREYSCALE_CHROMA = 16  # max-min (0-255) a JPEG artefact can give a grey pixel
GREYSCALE_MAX_SHARE = 0.01  # a black-and-white photo has almost no pixel with more colour

BATCH_SIZE = 1024  # ~130 MB of working tensors; larger batches were no faster (cache misses)


@dataclass(frozen=True)
class ImageAttributes:
    colours: tuple[str, ...] = ()  # the main object's colour names, main first; empty when unsure
    scene: str | None = None  # one of SCENES
    light: str | None = None  # one of LIGHTS
    black_and_white: bool = False  # a greyscale photo (then colours and colour scenes stay empty)

    def to_dict(self) -> dict:
        return {
            "colours": list(self.colours),
            "scene": self.scene,
            "light": self.light,
            "black_and_white": self.black_and_white,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> ImageAttributes:
        return cls(tuple(raw["colours"]), raw["scene"], raw["light"], bool(raw["black_and_white"]))


def _hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """rgb: (N, 3, H, W) float in [0, 1] -> hue in degrees, saturation, value, chroma: (N, H, W) each."""
    r, g, b = rgb.unbind(1)
    value, _ = rgb.max(1)
    chroma = value - rgb.min(1).values
    safe = chroma.clamp_min(1e-6)
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-6), torch.zeros_like(value))
    return hue * 60, saturation, value, chroma


def pixel_colours(images: torch.Tensor) -> torch.Tensor:
    """images: (N, 3, H, W) uint8 -> (N, H, W) int64 index into COLOURS, one name per pixel."""
    return _name_pixels(*_hsv(images.float() / 255))


def _name_pixels(hue: torch.Tensor, sat: torch.Tensor, value: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Hue, saturation, value, chroma: (N, H, W) each -> (N, H, W) int64 palette indices."""
    names = torch.full(hue.shape, RED, dtype=torch.int64)
    bounds = (HUE_ORANGE, HUE_YELLOW, HUE_GREEN, HUE_BLUE, HUE_PURPLE, HUE_PINK, HUE_RED)
    for bound, name in zip(bounds, (ORANGE, YELLOW, GREEN, BLUE, PURPLE, PINK, RED), strict=True):
        names[hue >= bound] = name
    pale_red = (names == RED) & ((sat < RED_MIN_SATURATION) | (value < RED_MIN_VALUE))
    names[pale_red] = BROWN
    names[pale_red & (value >= PINK_MIN_VALUE)] = PINK
    names[(names == ORANGE) & ((sat < ORANGE_MIN_SATURATION) | (value < ORANGE_MIN_VALUE))] = BROWN
    names[(names == YELLOW) & ((sat < YELLOW_MIN_SATURATION) | (value < YELLOW_MIN_VALUE))] = BROWN
    achromatic = (sat < ACHROMATIC_SATURATION) | (chroma < ACHROMATIC_CHROMA)
    achromatic |= (names == BLUE) & (sat < BLUE_MIN_SATURATION)
    reference = value.flatten(1).quantile(BRIGHT_REFERENCE_QUANTILE, dim=1)[:, None, None]  # order statistic
    white = (value >= WHITE_RELATIVE * reference) & (value >= WHITE_MIN_VALUE)
    names[achromatic] = torch.where(white[achromatic], WHITE, GREY)
    names[(achromatic & (value < GREY_BLACK_VALUE)) | (value < BLACK_VALUE)] = BLACK
    return names


def rec601_luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, H, W) int32 Rec. 601 luma, integer so sums are exact."""
    r, g, b = images.to(torch.int32).unbind(1)
    return (299 * r + 587 * g + 114 * b) // 1000


def _steps(luma: torch.Tensor, dim: int) -> torch.Tensor:
    """luma: (N, h, w) int -> (N,) float64 mean |difference| between neighbours along `dim` (1 rows, 2 columns).

    Integer sums, so the mean is the same for an image and its mirror.
    """
    steps = luma.diff(dim=dim).abs()
    return steps.flatten(1).sum(1).double() / steps[0].numel()


def _texture(luma: torch.Tensor) -> torch.Tensor:
    """luma: (N, h, w) int -> (N,) float64 mean |step| between vertical and horizontal neighbours."""
    return (_steps(luma, 1) + _steps(luma, 2)) / 2


def _object_mask(images: torch.Tensor) -> torch.Tensor:
    """images: (N, 3, 32, 32) uint8 -> (N, 20, 20) bool: centre pixels unlike every nearby border colour."""
    pixels = images.to(torch.int64)
    n, _, h, w = pixels.shape
    lo, hi = CENTRE_MARGIN, h - CENTRE_MARGIN
    top = pixels[:, :, :BORDER].sum((2, 3)) / (BORDER * w)  # (N, 3): integer sums, exact
    bottom = pixels[:, :, -BORDER:].sum((2, 3)) / (BORDER * w)
    sides = pixels[:, :, :, :BORDER].sum(3) + pixels[:, :, :, -BORDER:].sum(3)  # (N, 3, H) per row
    padded = torch.nn.functional.pad(sides.double(), (SIDE_BAND, SIDE_BAND), mode="replicate")
    band = padded.unfold(2, 2 * SIDE_BAND + 1, 1).sum(-1) / ((2 * SIDE_BAND + 1) * 2 * BORDER)  # (N, 3, H)
    centre = pixels[:, :, lo:hi, lo:hi].double()  # (N, 3, 20, 20)
    references = (top[:, :, None, None], bottom[:, :, None, None], band[:, :, lo:hi, None])
    distance = torch.stack([(centre - ref).square().sum(1) for ref in references]).amin(0)  # (N, 20, 20)
    return distance > (OBJECT_DISTANCE * 255) ** 2


def _background_named(names: torch.Tensor) -> torch.Tensor:
    """names: (N, 32, 32) palette indices -> (N, 20, 20) bool: centre pixels whose colour name is
    common on the border ring, on one part of it, or on the side border beside their own rows."""
    ring = names[:, _ring(*names.shape[1:])]  # (N, R)
    parts = (
        names[:, :BORDER].flatten(1),
        names[:, -BORDER:].flatten(1),
        torch.cat([names[:, :, :BORDER].flatten(1), names[:, :, -BORDER:].flatten(1)], 1),
    )
    common = _count(ring, torch.ones_like(ring, dtype=torch.bool)) >= BACKGROUND_NAME_SHARE * ring.shape[1]
    for part in parts:
        common |= _count(part, torch.ones_like(part, dtype=torch.bool)) >= BACKGROUND_PART_SHARE * part.shape[1]
    sides = torch.cat([names[:, :, :BORDER], names[:, :, -BORDER:]], 2)  # (N, H, 6)
    per_row = torch.nn.functional.one_hot(sides, len(COLOURS)).sum(2).transpose(1, 2)  # (N, 11, H)
    padded = torch.nn.functional.pad(per_row.double(), (SIDE_BAND, SIDE_BAND), mode="replicate")
    band = padded.unfold(2, 2 * SIDE_BAND + 1, 1).sum(-1)  # (N, 11, H): name counts beside each row
    beside = band >= BACKGROUND_PART_SHARE * (2 * SIDE_BAND + 1) * 2 * BORDER
    lo, hi = CENTRE_MARGIN, names.shape[1] - CENTRE_MARGIN
    centre = names[:, lo:hi, lo:hi]  # (N, 20, 20)
    anywhere = common.gather(1, centre.flatten(1)).view_as(centre)
    # beside[n, centre[n, r, c], r]: gather along the colour axis with the centre laid out (N, col, row)
    in_row = beside[:, :, lo:hi].gather(1, centre.transpose(1, 2)).transpose(1, 2)
    return anywhere | in_row


def _object_colours(names: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """names, mask, background: (N, 20, 20) centre palette indices, object mask and
    `_background_named` -> (N, 2) colour codes (-1 = none).

    A colour common on the border is not the object's, even where the mask lets it through: a
    blue sky with clouds, or grass that changes shade, differs from the mean border colour.
    """
    n = len(names)
    differing = mask.flatten(1).sum(1, keepdim=True)  # (N, 1)
    mask = mask & ~background
    counts = _count(names.reshape(n, -1), mask.reshape(n, -1))
    total = counts.sum(1, keepdim=True)  # (N, 1)
    reliable = (total >= MIN_OBJECT_SHARE * mask[0].numel()) & (total >= MIN_KEPT_SHARE * differing)
    chromatic = torch.tensor([name in CHROMATIC for name in COLOURS])
    needed = torch.where(chromatic, CHROMATIC_SHARE, ACHROMATIC_SHARE) * total  # (N, 11)
    eligible = (counts >= needed) & reliable
    # argmax returns the first maximum: ties break by palette order, the same for a mirror image.
    first = torch.where(eligible, counts, -1).argmax(1)
    first = torch.where(eligible.any(1), first, NONE_CODE)
    rest = counts.scatter(1, first.clamp_min(0)[:, None], -1)
    second = rest.argmax(1)
    keep = (first >= 0) & (rest.amax(1) >= SECOND_SHARE * total[:, 0])
    return torch.stack([first, torch.where(keep, second, NONE_CODE)], 1)


def _count(names: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """names: (N, P) palette indices, mask: (N, P) bool -> (N, len(COLOURS)) int64 counts of masked pixels."""
    counts = torch.zeros(len(names), len(COLOURS), dtype=torch.int64)
    return counts.scatter_add_(1, names, mask.to(torch.int64))


def _ring(height: int, width: int) -> torch.Tensor:
    """(H, W) bool: the BORDER px wide frame around the image."""
    ring = torch.ones(height, width, dtype=torch.bool)
    ring[BORDER:-BORDER, BORDER:-BORDER] = False
    return ring


def _share(condition: torch.Tensor) -> torch.Tensor:
    """(N, h, w) bool -> (N,) float share of True pixels."""
    return condition.flatten(1).sum(1) / condition[0].numel()


def _scenes(images: torch.Tensor, hsv: tuple[torch.Tensor, ...], names: torch.Tensor) -> torch.Tensor:
    """images: (N, 3, 32, 32) uint8; hsv planes and names: (N, 32, 32) each -> (N,) scene codes."""
    hue, sat, value, chroma = hsv
    top, bottom = slice(0, STRIP), slice(-STRIP, None)
    luma = rec601_luma(images)
    brightness = images.to(torch.int32).amax(1)  # (N, 32, 32) integer HSV value, for exact sums
    blue = (hue >= HUE_BLUE) & (hue < HUE_PURPLE) & (sat >= SKY_MIN_SATURATION) & (value >= GREY_BLACK_VALUE)
    top_darker_limit = brightness[:, top].flatten(1).sum(1) - WATER_DARKER * 255 * brightness[0, top].numel()

    ring = _ring(*names.shape[1:])
    studio = (value >= WHITE_BACKGROUND_VALUE) & (chroma < ACHROMATIC_CHROMA)
    white_background = studio[:, ring].sum(1) >= WHITE_BACKGROUND_SHARE * int(ring.sum())

    lit_blue = blue & (value >= SKY_MIN_VALUE)
    sky = (_share(lit_blue[:, top]) >= SCENE_SHARE) & (_texture(luma[:, top]) <= SMOOTH_TEXTURE)
    # Blue below is water only under a lighter sky: an all-blue frame is a plane or bird in the
    # sky, and blue below something else is as often a blanket or a wall.
    pale = (sat < ACHROMATIC_SATURATION) & (value >= PALE_SKY_VALUE)
    sky_above = _share((lit_blue | pale)[:, top]) >= SCENE_SHARE
    darker_below = brightness[:, bottom].flatten(1).sum(1) < top_darker_limit
    rippled = _steps(luma[:, bottom], dim=1) >= _steps(luma[:, bottom], dim=2)
    water = (_share(blue[:, bottom]) >= SCENE_SHARE) & sky_above & darker_below & rippled
    grass = _share(names[:, bottom] == GREEN) >= SCENE_SHARE

    scene = torch.full((len(names),), NONE_CODE, dtype=torch.int64)
    # Lowest priority first, so the later (more specific) scenes win.
    for condition, name in ((sky, "sky"), (grass, "grass"), (water, "water")):
        scene[condition] = SCENES.index(name)
    scene[white_background] = SCENES.index("white background")
    return scene


def _codes(images: torch.Tensor) -> torch.Tensor:
    """images: (N, 3, 32, 32) uint8 -> (N, 5) int64 codes, columns CODE_FIELDS."""
    hsv = _hsv(images.float() / 255)
    names = _name_pixels(*hsv)
    luma = rec601_luma(images)
    pixels = images.to(torch.int32)
    colourful = (pixels.amax(1) - pixels.amin(1)) > GREYSCALE_CHROMA
    greyscale = colourful.flatten(1).sum(1) <= GREYSCALE_MAX_SHARE * colourful[0].numel()

    lo, hi = CENTRE_MARGIN, images.shape[-1] - CENTRE_MARGIN
    colours = _object_colours(names[:, lo:hi, lo:hi], _object_mask(images), _background_named(names))
    colours[greyscale] = NONE_CODE  # in a black-and-white photo "white car" may be any colour
    scene = _scenes(images, hsv, names)
    scene[greyscale & (scene != SCENES.index("white background"))] = NONE_CODE

    mean_luma = luma.flatten(1).sum(1)  # integer: compare against thresholds x pixel count
    pixels_per_image = luma[0].numel()
    light = torch.full_like(scene, NONE_CODE)
    light[mean_luma < DARK_LUMA * pixels_per_image] = LIGHTS.index("dark")
    light[mean_luma > BRIGHT_LUMA * pixels_per_image] = LIGHTS.index("bright")
    return torch.stack([colours[:, 0], colours[:, 1], scene, light, greyscale.to(torch.int64)], 1)


def attribute_codes(images: torch.Tensor, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """images: (N, 3, 32, 32) uint8 -> (N, 5) int8 codes, columns CODE_FIELDS, -1 where none.

    The colour columns index COLOURS, scene indexes SCENES, light indexes LIGHTS; the last is 0/1.
    This is the form to cache (`np.save`); `decode_attributes` reads it back.
    """
    expected = (3, IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"expected (N, *{expected}) uint8 images, got {tuple(images.shape)} {images.dtype}")
    chunks = [_codes(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    if not chunks:
        return np.zeros((0, len(CODE_FIELDS)), dtype=np.int8)
    return torch.cat(chunks).numpy().astype(np.int8)


def decode_attributes(codes: np.ndarray) -> list[ImageAttributes]:
    """(N, 5) int codes from `attribute_codes` / `encode_attributes` -> one ImageAttributes per row."""
    result = []
    for colour, second, scene, light, grey in np.asarray(codes).tolist():
        result.append(
            ImageAttributes(
                colours=tuple(COLOURS[c] for c in (colour, second) if c != NONE_CODE),
                scene=SCENES[scene] if scene != NONE_CODE else None,
                light=LIGHTS[light] if light != NONE_CODE else None,
                black_and_white=bool(grey),
            )
        )
    return result


def encode_attributes(attributes: list[ImageAttributes]) -> np.ndarray:
    """The inverse of `decode_attributes`: (N, 5) int8 codes."""
    rows = []
    for item in attributes:
        colours = [COLOURS.index(c) for c in item.colours] + [NONE_CODE] * (2 - len(item.colours))
        scene = SCENES.index(item.scene) if item.scene is not None else NONE_CODE
        light = LIGHTS.index(item.light) if item.light is not None else NONE_CODE
        rows.append([*colours, scene, light, int(item.black_and_white)])
    return np.asarray(rows, dtype=np.int8).reshape(-1, len(CODE_FIELDS))


def read_attributes(images: torch.Tensor, batch_size: int = BATCH_SIZE) -> list[ImageAttributes]:
    """images: (N, 3, 32, 32) uint8 -> one ImageAttributes per image, vectorised over the batch."""
    return decode_attributes(attribute_codes(images, batch_size))
