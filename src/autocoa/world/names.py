"""Pronounceable invented names built from a small syllable inventory.

Every name word ("stem") is 2-3 consonant+vowel syllables, sometimes with a final consonant
(``Ka-ve-li``, ``Mo-ran``). The inventory is modest (~100 pieces) on purpose: a ~1000-token
BPE then segments names it has never seen into pieces it knows, so a tiny model can learn to
*copy* names rather than memorise them (a feasibility probe: with few entities a tiny model
memorised names and failed on unseen ones).

Stems are unique across the whole world and *prefix-free*: no stem is a prefix of another
("Kave" and "Kaveli" never both exist), so no name can be read inside another name and no
question can mention two entities by accident.
"""

from __future__ import annotations

import random

ONSETS = (*"bdfghklmnprstvz", "th", "sh")  # 17
VOWELS = tuple("aeiou")  # 5
SYLLABLES = tuple(c + v for c in ONSETS for v in VOWELS)  # 85 open syllables
CODAS = ("n", "r", "l", "s")  # optional word-final consonant
# 85 syllables + 4 codas + the 5 bare vowels that open some words: 94 pieces in all.


class NameGenerator:
    """Draws fresh stems from ``rng``; refuses any that would collide with one already used."""

    def __init__(self, rng: random.Random, forbidden: set[str] = frozenset()):
        self.rng = rng
        self.forbidden = {w.lower() for w in forbidden}  # e.g. template words: "home", "made"
        self.used: set[str] = set()
        self._prefixes: set[str] = set()  # every proper prefix of a used stem

    def _candidate(self, rng: random.Random | None = None) -> str:
        rng = rng or self.rng
        n = 2 if rng.random() < 0.55 else 3
        word = "".join(rng.choice(SYLLABLES) for _ in range(n))
        if rng.random() < 0.12:  # a vowel-initial word: "Aveli"
            word = rng.choice(VOWELS) + word
        if rng.random() < 0.3:
            word += rng.choice(CODAS)
        return word

    def _free(self, word: str) -> bool:
        if word in self.used or word in self._prefixes or word in self.forbidden:
            return False
        return not any(word[:i] in self.used for i in range(1, len(word)))

    def _free_word(self, rng: random.Random) -> str:
        """A lower-case candidate from ``rng`` that collides with no reserved stem."""
        for _ in range(1000):
            word = self._candidate(rng)
            if self._free(word):
                return word
        raise RuntimeError("name space exhausted: too many entities for the syllable inventory")

    def scratch(self, rng: random.Random) -> str:
        """A capitalised stem that collides with no reserved stem (prefix-free against them),
        without reserving it: names for text outside the world (reading passages) that can never
        be read as, or inside, a world entity's name; two scratch stems may repeat. Draws from
        ``rng``, so the world's own stream is untouched."""
        return self._free_word(rng).capitalize()

    def stem(self) -> str:
        """A new capitalised stem, unique and prefix-free against every earlier one."""
        word = self._free_word(self.rng)
        self.used.add(word)
        self._prefixes.update(word[:i] for i in range(1, len(word)))
        return word.capitalize()
