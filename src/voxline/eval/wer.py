"""Word error rate with the text normalised as Whisper's own evaluations do it.

The normaliser is OpenAI's English one (``whisper-normalizer``): case, punctuation, hyphens,
contractions, British spellings, and numbers spelled or in digits ("sixty-five dollars" and
"$65" agree). Two rules are added before it, for what callers spell out: digits read one by
one are one number however they are grouped or joined ("4 7 2 9", "47-29" and "4729"), and
so are letters spelled out ("K O W" and "K-O-W" and "KOW"). The normaliser alone reads a
digit group's leading zero away and a spelled "O" as zero.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

_DIGIT_GAP: Final = re.compile(r"(?<=\d)[\s\-:.]+(?=\d)")
_SPELLED: Final = re.compile(r"\b[A-Z](?:[\s.\-]+[A-Z]\b)+\.?")


@functools.cache
def _normaliser() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()


def normalise(text: str) -> str:
    joined = _DIGIT_GAP.sub("", text)
    joined = _SPELLED.sub(lambda match: re.sub(r"[\s.\-]", "", match.group()), joined)
    return str(_normaliser()(joined))


@dataclass(frozen=True, slots=True)
class WordErrors:
    errors: int
    """Substitutions, deletions and insertions."""
    words: int
    """Words in the normalised reference."""

    @property
    def rate(self) -> float:
        return self.errors / self.words if self.words else 0.0


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    ref, hyp = normalise(reference), normalise(hypothesis)
    words = len(ref.split())
    if not hyp.split():
        return WordErrors(words, words)
    out = jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions + out.deletions + out.insertions, words)
