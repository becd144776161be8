"""The text queries the speed benchmarks send: phrases that repeat, and queries the service has
never seen, some with a typing slip."""

from __future__ import annotations

import random

# 10 templates x 10 adjectives x 10 nouns: the 1,000 phrases of the repeated-query figures.
TEMPLATES = (
    "a photo of a {} {}.",
    "a blurry photo of a {} {}.",
    "a close-up photo of the {} {}.",
    "a {} {} in the wild",
    "a picture of a {} {}",
    "an image of the {} {}",
    "a {} {} on a sunny day",
    "a low resolution photo of a {} {}.",
    "a drawing of a {} {}",
    "this is a {} {}",
)
ADJECTIVES = ("red", "small", "large", "white", "dark", "fast", "old", "wet", "fluffy", "shiny")
NOUNS = ("airplane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def phrases() -> list[str]:
    return [template.format(adj, noun) for template in TEMPLATES for adj in ADJECTIVES for noun in NOUNS]


# Queries never sent before: 10 templates x 15 x 16 qualities x 40 nouns = 96,000 distinct
# phrases ("a blurry photo of a green small puppy."), none of them among `phrases()`.
COLOURS = (
    "green",
    "blue",
    "black",
    "grey",
    "brown",
    "yellow",
    "orange",
    "purple",
    "pink",
    "silver",
    "golden",
    "pale",
    "bright",
    "striped",
    "spotted",
)
QUALITIES = (
    "tiny",
    "huge",
    "young",
    "muddy",
    "noisy",
    "lonely",
    "sleepy",
    "rusty",
    "shiny new",
    "broken",
    "happy",
    "angry",
    "wild",
    "tame",
    "distant",
    "hungry",
)
DISTINCT_NOUNS = (
    *NOUNS,
    "plane",
    "jet",
    "jetliner",
    "automobile",
    "sedan",
    "sports car",
    "sparrow",
    "parrot",
    "owl",
    "kitten",
    "tabby",
    "stag",
    "fawn",
    "puppy",
    "terrier",
    "poodle",
    "toad",
    "bullfrog",
    "pony",
    "stallion",
    "boat",
    "ferry",
    "sailboat",
    "lorry",
    "pickup truck",
    "fire engine",
    "eagle",
    "moose",
    "tomcat",
    "cruise ship",
)
TYPO_EVERY = 10  # one query in TYPO_EVERY has two letters of its noun swapped


def distinct_queries(seed: int) -> list[str]:
    """Every distinct query in a fixed random order; the `misspelled` ones are among them."""
    queries = [
        template.format(f"{colour} {quality}", noun)
        for template in TEMPLATES
        for colour in COLOURS
        for quality in QUALITIES
        for noun in DISTINCT_NOUNS
    ]
    random.Random(seed).shuffle(queries)
    return [misspell(query) if i % TYPO_EVERY == 0 else query for i, query in enumerate(queries)]


def misspell(query: str) -> str:
    """A typing slip in the last word of 4+ letters: its 2nd and 3rd letters swapped ("pupyp")."""
    words = query.rstrip(".").split()
    i = max(i for i, word in enumerate(words) if len(word) >= 4)
    word = words[i]
    words[i] = word[0] + word[2] + word[1] + word[3:]
    return " ".join(words) + ("." if query.endswith(".") else "")


def is_misspelled(query: str) -> bool:
    return not all(word in VOCABULARY for word in query.rstrip(".").split())


VOCABULARY = {word for text in (*TEMPLATES, *COLOURS, *QUALITIES, *DISTINCT_NOUNS) for word in text.split()}
