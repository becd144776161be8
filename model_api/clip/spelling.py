"""Spelling correction of user queries for the pretrained text tower.

MiniLM's WordPiece tokenizer splits a misspelled word ("dgo", "horsse") into pieces whose
sentence embedding lies far from the word's: misspelled queries found the right class far less
often than synonyms did (BENCHMARKS.md, open-vocabulary search). So, before encoding a
query, each word that is neither a whole word of the tokenizer's vocabulary nor a caption word
is replaced by the caption word closest to it in Damerau-Levenshtein distance (optimal string
alignment), when one is close enough; ties go to the word the captions use most, as in
Norvig's corrector. Training captions are never corrected: their deliberate slips stay.

Candidates come from a symmetric-delete index (SymSpell's idea): two words within k edits share
a string made from each by deleting at most k letters, so only caption words sharing one with
the query word are compared. Scanning every caption word cost 3.2 ms of CPU per misspelled query
against the shipped caption set; the index, 0.025 ms (BENCHMARKS.md, first-seen text queries).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable

WORD = re.compile(r"[A-Za-z]+")


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of two adjacent letters (optimal string
    alignment distance)."""
    previous2, previous = [], list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def allowed_distance(word: str) -> int:
    """One slip in a word of up to 8 letters, two in a longer one: at two, short words reach
    unrelated ones ("motorcar" -> "motorway")."""
    return 1 if len(word) <= 8 else 2


MAX_DISTANCE = 2  # the most `allowed_distance` allows


def deletions(word: str, depth: int) -> set[str]:
    """`word` and every string made from it by deleting up to `depth` of its letters."""
    found = frontier = {word}
    for _ in range(depth):
        frontier = {text[:i] + text[i + 1 :] for text in frontier for i in range(len(text))}
        found = found | frontier
    return found


class SpellingCorrector:
    def __init__(self, known_words: Collection[str], caption_texts: Iterable[str]) -> None:
        """known_words: words never corrected (the tokenizer's whole words); caption_texts:
        the training captions, whose words (3+ letters) are the corrections on offer."""
        self.frequency = Counter(
            word for text in caption_texts for word in WORD.findall(text.lower()) if len(word) >= 3
        )
        self.known = set(known_words) | set(self.frequency)
        self.by_deletion: dict[str, list[str]] = defaultdict(list)
        for word in self.frequency:
            for deleted in deletions(word, MAX_DISTANCE):
                self.by_deletion[deleted].append(word)

    def correct(self, text: str) -> str:
        return WORD.sub(lambda match: self.correct_word(match.group()), text)

    def correct_word(self, word: str) -> str:
        lower = word.lower()
        if len(lower) < 3 or lower in self.known or (lower.endswith("s") and lower[:-1] in self.known):
            return word
        limit = allowed_distance(lower)
        near = {word for deleted in deletions(lower, limit) for word in self.by_deletion.get(deleted, ())}
        candidates = [
            (distance, -self.frequency[candidate], candidate)
            for candidate in near
            if abs(len(candidate) - len(lower)) <= limit and (distance := edit_distance(lower, candidate)) <= limit
        ]
        return min(candidates)[2] if candidates else word
