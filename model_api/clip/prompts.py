"""Class names, the captions the text tower trains on, and zero-shot prompt ensembles.

CIFAR-10 has labels, not captions. Training captions are prompt templates x words for each
class (its name and synonyms) plus short descriptions per class, so the text tower sees varied
language instead of ten fixed strings. Zero-shot classification uses the templates with the label alone.
"""

from __future__ import annotations

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# Words and short phrases per class used in training captions (the class name comes first).
CLASS_VOCABULARY: dict[str, tuple[str, ...]] = {
    "airplane": ("airplane", "aeroplane", "plane", "jet", "aircraft", "airliner", "jet plane"),
    "automobile": ("automobile", "car", "sedan", "hatchback", "passenger car", "motor car"),
    "bird": ("bird", "sparrow", "songbird", "ostrich", "finch", "small bird"),
    "cat": ("cat", "kitty", "house cat", "tabby cat", "feline", "domestic cat"),
    "deer": ("deer", "stag", "doe", "fawn", "elk", "reindeer"),
    "dog": ("dog", "puppy", "hound", "pet dog", "canine", "terrier"),
    "frog": ("frog", "toad", "tree frog", "amphibian", "bullfrog", "green frog"),
    "horse": ("horse", "pony", "stallion", "mare", "foal", "racehorse"),
    "ship": ("ship", "boat", "cargo ship", "vessel", "ocean liner", "freighter"),
    "truck": ("truck", "lorry", "pickup truck", "fire truck", "dump truck", "big rig"),
}

# Short descriptions per class, each a noun phrase with its article, used in training captions
# with `DESCRIPTION_TEMPLATES`. They say what the thing looks like and where it is; written
# before, and independently of, the open-vocabulary evaluation queries in benchmarks/.
CLASS_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "airplane": (
        "a plane flying in the sky",
        "an aircraft with wings and jet engines",
        "a passenger jet at the airport",
        "a flying machine with long wings",
    ),
    "automobile": (
        "a car parked on the street",
        "a small family car",
        "a vehicle with four wheels and doors",
        "a car driving on a road",
    ),
    "bird": (
        "a small animal with feathers and a beak",
        "a bird perched on a branch",
        "a feathered animal with wings",
        "a bird standing on the ground",
    ),
    "cat": (
        "a furry pet with whiskers",
        "a cat curled up on a sofa",
        "a small pet with pointed ears and a long tail",
        "a cat sitting indoors",
    ),
    "deer": (
        "a wild animal with antlers",
        "a deer standing in a forest",
        "a brown animal grazing in a meadow",
        "a slender wild animal with long legs",
    ),
    "dog": (
        "a pet on a leash",
        "a dog lying on the grass",
        "a furry pet with floppy ears",
        "a dog playing in a park",
    ),
    "frog": (
        "a small green amphibian",
        "a frog sitting on a leaf",
        "a slimy animal near a pond",
        "a frog with bulging eyes",
    ),
    "horse": (
        "a horse standing in a field",
        "a large animal with a mane and hooves",
        "a horse with a saddle",
        "a horse running in a paddock",
    ),
    "ship": (
        "a large ship at sea",
        "a boat in a harbour",
        "a vessel sailing on the water",
        "a ship docked at a port",
    ),
    "truck": (
        "a large vehicle for carrying cargo",
        "a truck parked by the road",
        "a heavy vehicle with a big cargo bed",
        "a truck driving on a highway",
    ),
}

DESCRIPTION_TEMPLATES = ("{}", "a photo of {}.", "a blurry photo of {}.", "a picture of {}.")

TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of the {}.",
    "a close-up photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of a {}.",
    "a cropped photo of the {}.",
    "a good photo of a {}.",
    "a small photo of the {}.",
    "a pixelated photo of a {}.",
    "a jpeg photo of the {}.",
    "an image of a {}.",
    "a picture of the {}.",
    "a snapshot of a {}.",
    "this is a {}.",
    "{}",
)


def class_captions(name: str) -> list[str]:
    """Every template x every word of the class, then every description template x description."""
    words = [template.format(word) for word in CLASS_VOCABULARY.get(name, (name,)) for template in TEMPLATES]
    descriptions = [
        template.format(description)
        for description in CLASS_DESCRIPTIONS.get(name, ())
        for template in DESCRIPTION_TEMPLATES
    ]
    return words + descriptions


def training_captions(classes: tuple[str, ...] = CIFAR10_CLASSES) -> tuple[list[str], list[int]]:
    """All (caption, label) pairs of the classes."""
    captions, labels = [], []
    for label, name in enumerate(classes):
        captions += class_captions(name)
        labels += [label] * (len(captions) - len(labels))
    return captions, labels


def label_prompts(label: str) -> list[str]:
    """The prompt ensemble for one (possibly user-typed) label."""
    return [template.format(label) for template in TEMPLATES]
