"""The caption set: class names, the captions the text tower trains on, and zero-shot prompts.

CIFAR-10 has labels, not captions. Training captions are prompt templates x words for each
class (its name and synonyms) plus short descriptions per class, so the text tower sees varied
language instead of ten fixed strings. Zero-shot classification uses the templates with the
label alone.

The set is data (`cifar10_captions.json`), read by training and copied into every checkpoint
(`CAPTIONS_FILE`). A loaded model classifies, prompts and corrects spelling with the set it
was trained on, so editing the data file never changes how an existing checkpoint behaves, and
a checkpoint trained on other labels brings its own.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

CIFAR10_CAPTIONS = Path(__file__).with_name("cifar10_captions.json")
CAPTIONS_FILE = "captions.json"  # the copy inside a checkpoint directory


class CaptionSetError(ValueError):
    """A caption file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class CaptionSet:
    classes: tuple[str, ...]  # in label order: class i is label i of the dataset
    templates: tuple[str, ...]  # "a photo of a {}." with a word or label in the braces
    description_templates: tuple[str, ...]  # "a photo of {}." with a description in the braces
    vocabulary: dict[str, tuple[str, ...]]  # class -> its name, synonyms and kinds; no word in two classes
    descriptions: dict[str, tuple[str, ...]]  # class -> noun phrases with their article

    @classmethod
    def read(cls, path: Path) -> CaptionSet:
        try:
            raw = json.loads(Path(path).read_text())
            captions = cls(
                classes=tuple(raw["classes"]),
                templates=tuple(raw["templates"]),
                description_templates=tuple(raw["description_templates"]),
                vocabulary={name: tuple(words) for name, words in raw["vocabulary"].items()},
                descriptions={name: tuple(phrases) for name, phrases in raw["descriptions"].items()},
            )
        except FileNotFoundError as error:
            raise CaptionSetError(f"no caption set at {path}") from error
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CaptionSetError(f"unreadable caption set {path}: {error}") from error
        captions.check()
        return captions

    def write(self, path: Path) -> None:
        raw = {
            "classes": list(self.classes),
            "templates": list(self.templates),
            "description_templates": list(self.description_templates),
            "vocabulary": {name: list(words) for name, words in self.vocabulary.items()},
            "descriptions": {name: list(phrases) for name, phrases in self.descriptions.items()},
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)

    def check(self) -> None:
        """Words and descriptions only for known classes; templates with one slot each."""
        unknown = (self.vocabulary.keys() | self.descriptions.keys()) - set(self.classes)
        if unknown:
            raise CaptionSetError(f"captions for classes not in the set: {sorted(unknown)}")
        if not self.templates or any(t.count("{}") != 1 for t in self.templates + self.description_templates):
            raise CaptionSetError("every template needs exactly one {} slot")

    def class_captions(self, name: str) -> list[str]:
        """Every template x every word of the class, then every description template x description."""
        words = [template.format(word) for word in self.vocabulary.get(name, (name,)) for template in self.templates]
        descriptions = [
            template.format(description)
            for description in self.descriptions.get(name, ())
            for template in self.description_templates
        ]
        return words + descriptions

    def all_class_captions(self) -> list[str]:
        """The captions of every class, as written (no misspelled copies)."""
        return [caption for name in self.classes for caption in self.class_captions(name)]

    def training_captions(self) -> tuple[list[str], list[int]]:
        """All (caption, label) pairs, then one misspelled copy of each (a fixed seed, so every
        run trains on the same captions)."""
        captions, labels = [], []
        for label, name in enumerate(self.classes):
            captions += self.class_captions(name)
            labels += [label] * (len(captions) - len(labels))
        rng = random.Random(0)
        return captions + [misspelled(caption, rng) for caption in captions], labels + labels

    def label_prompts(self, label: str) -> list[str]:
        """The prompt ensemble for one (possibly user-typed) label."""
        return [template.format(label) for template in self.templates]


def misspelled(caption: str, rng: random.Random) -> str:
    """One typing slip in one word of four letters or more: a letter dropped, doubled, swapped
    with its neighbour or replaced. Users misspell queries; the frozen tokenizer splits a
    misspelled word into unrelated pieces, so the projection must see such pieces in training."""
    words = caption.split()
    candidates = [i for i, word in enumerate(words) if len(word) >= 4 and word.isalpha()]
    if not candidates:
        return caption
    index = rng.choice(candidates)
    word, at = words[index], rng.randrange(1, len(words[index]) - 1)
    slips = (
        word[:at] + word[at + 1 :],
        word[:at] + word[at] + word[at:],
        word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :],
        word[:at] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[at + 1 :],
    )
    words[index] = rng.choice(slips)
    return " ".join(words)


def normalised(text: str) -> str:
    """Case, spacing and a final full stop do not make a caption or a query new (the text
    towers ignore case or nearly so)."""
    return " ".join(text.lower().split()).rstrip(".")
