"""Cut a streamed reply into sentences for speech, as early as the text allows.

Text arrives in deltas of any size (an LLM's tokens). Pieces end at gaps between words,
chosen by the text before the gap and by whether the gap breaks a line, never by how the
text was delivered: feeding the same text in any deltas gives the same pieces.

Sentences end at ``.``, ``!``, ``?`` (closing quotes and brackets may follow) and at line
breaks, but not at an ellipsis, a known abbreviation (Dr., e.g., U.S.), an initial (J.) or
a list number (1.) at the start of a piece. Decimals (3.5) and times (9:30) have no gap in
them, so they are never cut. A clause boundary (``,``, ``;``, ``:`` or a dash before a gap)
ends a piece that is already ``clause_chars`` long. A sentence shorter than ``min_chars``
is joined to the next, and one longer than ``max_chars`` is cut at its last clause
boundary, or failing that its last word, within the limit.

The first piece of a reply is cut earlier, since it sets how soon the caller hears the
agent: at any sentence end, at a clause boundary once it is ``first_chunk_chars`` long, and
failing those before a connective (“and”, “from”, “because”, …) once it is
``first_phrase_chars`` long and four words: a long first clause costs its whole synthesis
time before the caller hears anything (about 0.45 s for 75 characters on two cores).
"""

from __future__ import annotations

import enum
import re
from typing import Final

_GAP: Final = re.compile(r"\s+")
_CLOSERS: Final = "\"')]}»”’"
_OPENERS: Final = "\"'([{«“‘"
_DASHES: Final = frozenset("-–—")
_DOTTED: Final = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")  # e.g, U.S, a.m, Ph.D
_LIST_NUMBER: Final = re.compile(r"\d{1,2}")
CONNECTIVES: Final = frozenset(
    {"and", "but", "or", "so", "because", "from", "with", "which", "when", "if", "until"}
    | {"while", "where", "since", "unless", "although"}
)
ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "mx", "dr", "prof", "rev", "hon", "sr", "jr", "st", "mt", "ave", "rd"}
    | {"vs", "etc", "approx", "dept", "est", "inc", "ltd", "corp", "co"}
)


class _Boundary(enum.Enum):
    WORD = enum.auto()
    CLAUSE = enum.auto()
    SENTENCE = enum.auto()


def _boundary(text: str, gap: re.Match[str]) -> _Boundary:
    """What the gap ends, judged by the word before it and whether the gap breaks a line.

    More whitespace can only turn a gap into a line break, so a boundary found in part of
    a gap stays found once the rest arrives.
    """
    if "\n" in gap.group():
        return _Boundary.SENTENCE
    start = gap.start()
    word = text[:start].rsplit(None, 1)[-1]
    core = word.rstrip(_CLOSERS)
    if not core:
        return _Boundary.WORD
    if core in _DASHES or core[-1] in ",;:–—":
        return _Boundary.CLAUSE
    if core[-1] in "!?":
        return _Boundary.SENTENCE
    if core[-1] != "." or core.endswith(".."):
        return _Boundary.WORD
    stem = core[:-1].lstrip(_OPENERS)
    if (
        stem.lower() in ABBREVIATIONS
        or _DOTTED.fullmatch(stem)
        or (len(stem) == 1 and stem.isupper())
        or (start == len(word) and _LIST_NUMBER.fullmatch(stem))
    ):
        return _Boundary.WORD
    return _Boundary.SENTENCE


class SentenceSplitter:
    """Turns one reply's text stream into pieces to synthesize, one splitter per reply."""

    def __init__(
        self,
        *,
        first_chunk_chars: int | None = 40,
        first_phrase_chars: int = 24,
        min_chars: int = 20,
        clause_chars: int = 80,
        max_chars: int = 200,
    ) -> None:
        """``first_chunk_chars=None`` treats the first piece like the others."""
        if not 0 < min_chars <= max_chars:
            raise ValueError("need 0 < min_chars <= max_chars")
        self.first_chunk_chars = first_chunk_chars
        self.first_phrase_chars = first_phrase_chars
        self.min_chars = min_chars
        self.clause_chars = clause_chars
        self.max_chars = max_chars
        self._buffer = ""
        self._first = True

    def feed(self, delta: str) -> list[str]:
        """Add text; return the pieces it completes."""
        self._buffer = (self._buffer + delta).lstrip()
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End of the reply: return what is left, as one or more pieces."""
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[str]:
        pieces: list[str] = []
        while (cut := self._next_cut(final)) is not None:
            pieces.append(self._buffer[:cut].rstrip())
            self._buffer = self._buffer[cut:]
            self._first = False
        return pieces

    @staticmethod
    def _before_connective(text: str, start: int, end: int, final: bool) -> bool:
        """Whether the gap at ``start:end`` comes after four words and before a connective
        (judged only once the next word is complete, so delivery never matters)."""
        following = _GAP.search(text, end)
        if following is None and not final:
            return False
        word = text[end : following.start() if following else len(text)]
        return word.lower() in CONNECTIVES and len(text[:start].split()) >= 4

    def _next_cut(self, final: bool) -> int | None:
        """Where the next piece ends (the end of the gap after it), if the text says yet."""
        text = self._buffer
        if not text:
            return None
        sentence_chars, clause_chars = self.min_chars, self.clause_chars
        if self._first:
            sentence_chars = 1
            if self.first_chunk_chars is not None:
                clause_chars = self.first_chunk_chars
        last_clause = last_word = None
        for gap in _GAP.finditer(text):
            start, end = gap.span()
            if start > self.max_chars:
                return last_clause or last_word or end
            boundary = _boundary(text, gap)
            if boundary is _Boundary.SENTENCE and start >= sentence_chars:
                return end
            if boundary is _Boundary.CLAUSE and start >= clause_chars:
                return end
            if end == len(text) and not final:
                return None  # the rest of the gap may break a line
            if (
                self._first
                and self.first_chunk_chars is not None
                and start >= self.first_phrase_chars
                and self._before_connective(text, start, end, final)
            ):
                return end
            if boundary is _Boundary.CLAUSE and start >= self.min_chars:
                last_clause = end
            last_word = end
        if not final:
            return None
        if len(text) > self.max_chars and last_word:
            return last_clause or last_word
        return len(text)
