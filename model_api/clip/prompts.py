"""Class names, the captions the text tower trains on, and zero-shot prompt ensembles.

CIFAR-10 has labels, not captions. Training captions are prompt templates x words for each
class (its name, synonyms and short descriptions), so the text tower sees varied language
instead of ten fixed strings. Zero-shot classification uses the templates with the label alone.
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


def training_captions(classes: tuple[str, ...] = CIFAR10_CLASSES) -> tuple[list[str], list[int]]:
    """All (caption, label) pairs: every template x every word of every class."""
    captions, labels = [], []
    for label, name in enumerate(classes):
        for word in CLASS_VOCABULARY.get(name, (name,)):
            for template in TEMPLATES:
                captions.append(template.format(word))
                labels.append(label)
    return captions, labels


def label_prompts(label: str) -> list[str]:
    """The prompt ensemble for one (possibly user-typed) label."""
    return [template.format(label) for template in TEMPLATES]
