"""The caption set: class names, the captions the text tower trains on, and zero-shot prompts.

CIFAR-10 has labels, not captions. Training captions are prompt templates x words for each
class (its name and synonyms) plus short descriptions per class, so the text tower sees varied
language instead of ten fixed strings. Zero-shot classification embeds a typed label in every
template, and one of the classes from all of its words (`label_prompts`).

The set is data (`cifar10_captions.json`), read by training and copied into every checkpoint
(`CAPTIONS_FILE`). A loaded model classifies, prompts and corrects spelling with the set it
was trained on, so editing the data file never changes how an existing checkpoint behaves, and
a checkpoint trained on other labels brings its own.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from .attributes import COLOURS, LIGHTS, NONE_CODE, SCENES
from .files import write_text_atomically

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
    # Words for what `attributes` reads from an image's pixels, keyed by the reader's names; a
    # set without them (written before attribute captions) builds class captions only.
    attribute_openers: tuple[str, ...] = ()  # "a photo of {}." around an attribute caption's noun phrase
    colour_words: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "red" -> "red", "crimson"...
    scene_phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "sky" -> "in the sky"...
    light_openers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "dark" -> "a dark photo of {}."
    black_and_white_openers: tuple[str, ...] = ()

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
                attribute_openers=tuple(raw.get("attribute_openers", ())),
                colour_words={k: tuple(v) for k, v in raw.get("colour_words", {}).items()},
                scene_phrases={k: tuple(v) for k, v in raw.get("scene_phrases", {}).items()},
                light_openers={k: tuple(v) for k, v in raw.get("light_openers", {}).items()},
                black_and_white_openers=tuple(raw.get("black_and_white_openers", ())),
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
            "attribute_openers": list(self.attribute_openers),
            "colour_words": {k: list(v) for k, v in self.colour_words.items()},
            "scene_phrases": {k: list(v) for k, v in self.scene_phrases.items()},
            "light_openers": {k: list(v) for k, v in self.light_openers.items()},
            "black_and_white_openers": list(self.black_and_white_openers),
        }
        write_text_atomically(path, json.dumps(raw, indent=1, ensure_ascii=False) + "\n")

    def check(self) -> None:
        """Words and descriptions only for known classes; templates with one slot each."""
        unknown = (self.vocabulary.keys() | self.descriptions.keys()) - set(self.classes)
        if unknown:
            raise CaptionSetError(f"captions for classes not in the set: {sorted(unknown)}")
        openers = [*self.attribute_openers, *self.black_and_white_openers]
        openers += [opener for phrases in self.light_openers.values() for opener in phrases]
        if not self.templates or any(t.count("{}") != 1 for t in self.templates + self.description_templates):
            raise CaptionSetError("every template needs exactly one {} slot")
        if any(opener.count("{}") != 1 for opener in openers):
            raise CaptionSetError("every opener needs exactly one {} slot")
        for kind, words, names in (
            ("colour", self.colour_words, COLOURS),
            ("scene", self.scene_phrases, SCENES),
            ("light", self.light_openers, LIGHTS),
        ):
            if unknown := set(words) - set(names):
                raise CaptionSetError(f"{kind} words for values the attribute reader never gives: {sorted(unknown)}")
        if self.colour_words and not self.attribute_openers:
            raise CaptionSetError("attribute words need attribute_openers to put them in")

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

    @property
    def describes_attributes(self) -> bool:
        return bool(self.attribute_openers)

    def attribute_caption(self, label: int, codes: list[int], rng: random.Random) -> tuple[str, list[int]]:
        """A caption for one image of class `label` from its attribute codes (a row of
        `attributes.attribute_codes`), stating a random non-empty subset of what the reader found,
        and the claim it makes: the same row with -1 wherever the caption says nothing.

        "a photo of a crimson car on the road.", "a dark photo of a black cat.". Only the main
        colour is ever stated: the reader's second colour is too often the background.
        """
        stated = statable(codes)
        if not stated:
            raise ValueError(f"no attribute to state in {codes}")
        colour, _, scene, light, _ = codes
        chosen = {kind for kind in stated if rng.random() < 0.6} or {rng.choice(stated)}
        claim = [NONE_CODE] * len(codes)
        name = self.classes[label]
        noun = rng.choice(self.vocabulary.get(name, (name,)))
        if "colour" in chosen:
            noun = f"{rng.choice(self.colour_words[COLOURS[colour]])} {noun}"
            claim[0] = colour
        noun = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
        if "scene" in chosen:
            noun = f"{noun} {rng.choice(self.scene_phrases[SCENES[scene]])}"
            claim[2] = scene
        opener = rng.choice(self.attribute_openers)
        if "light" in chosen:
            opener = rng.choice(self.light_openers[LIGHTS[light]])
            claim[3] = light
        elif "black_and_white" in chosen:
            opener = rng.choice(self.black_and_white_openers)
            claim[4] = 1
        return opener.format(noun), claim

    def label_prompts(self, label: str) -> list[str]:
        """The prompt ensemble for one label. A label that names a class stands for every word
        the class was trained with (its name, synonyms and kinds), each once in the first
        template ("a photo of a sedan."); any other label (typed), and a class the set has no
        words for, goes into every template.
        Against the class name in every template, the class's words raised the shipped
        checkpoint's validation accuracy and class-prompt retrieval; its descriptions too
        added nothing measurable for three times the text tower's work at the API's start
        (BENCHMARKS.md, class prompts from the class's words)."""
        # Only classes have words; "Cat" names the class "cat" too.
        words = next((words for name, words in self.vocabulary.items() if name.casefold() == label.casefold()), ())
        if not words:
            return [template.format(label) for template in self.templates]
        return [self.templates[0].format(word) for word in words]


def statable(codes: list[int]) -> list[str]:
    """The attribute kinds a caption may state for an image with these codes (a row of
    `attributes.attribute_codes`; its second colour is never stated)."""
    colour, _, scene, light, black_and_white = codes
    kinds = [kind for kind, code in (("colour", colour), ("scene", scene), ("light", light)) if code != NONE_CODE]
    return kinds + ["black_and_white"] * bool(black_and_white)


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
