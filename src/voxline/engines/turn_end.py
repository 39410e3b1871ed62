"""Whether a caller's words so far sound like a whole turn: the semantic half of endpointing.

Silence alone cannot tell a caller who has finished from one gathering their next clause:
pauses inside a sentence run to 350 ms, as long as many pauses at the end of one. The words
can: Whisper closes a finished question with "?" or ".", and leaves a trailing "and", "um"
or "the" in a sentence that goes on. A turn that sounds complete may end after a shorter
silence; one that does not waits for the full endpointing time.

The punctuation of a fragment of one or two words is not to be trusted: Whisper closes a
lead-in spoken before a pause ("Hello," "Sorry," "Well," "Okay,") as if it were a sentence,
and a beam search more often than a greedy decode ("Hello?", "Sorry?", "Hi."). Such a
fragment is finished only as a short answer ("Yes.", "No thanks.", "Thank you.") or a short
question that opens with a question word ("Why?", "How much?"); any other waits for the full
endpointing time, and only the question words make one a question.
"""

from __future__ import annotations

import re
from typing import Final

from voxline.engines.sentences import CONNECTIVES

_TERMINAL: Final = (".", "?", "!")
_CLOSERS: Final = "\"')]}»”’"
_WORD: Final = re.compile(r"[a-z']+")
TRAILING_WORDS: Final = CONNECTIVES | frozenset(
    {"um", "uh", "er", "erm", "hmm", "like", "the", "a", "an", "to", "of", "for", "in", "on"}
    | {"at", "about", "my", "your", "our", "their", "is", "are", "was"}
    | {"that", "then", "than", "as", "also", "maybe", "just", "actually", "basically"}
)
"""Words a caller who pauses after them usually goes on from. A finished question may end
on one ("what is it for?"): it then waits the full endpointing time, no worse than without
this check."""
TRAILING_PHRASES: Final = frozenset(
    {"i mean", "you see", "let me", "let's see", "i'd like", "i wonder"}
)
"""Lead-ins of two words that a transcript ending on them goes on from ("Sorry, I mean."):
Whisper closes them as sentences before a pause as it closes a one-word lead-in."""
_FILLERS: Final = frozenset({"um", "uh", "er", "erm", "hmm", "so", "well", "and", "but"})
SHORT_FRAGMENT_WORDS: Final = 2
"""A transcript of at most this many words is a fragment: see the module docstring."""
SHORT_ANSWERS: Final = frozenset(
    {"yes", "yeah", "yep", "yup", "no", "nope", "nah", "sure", "okay", "ok", "correct"}
    | {"exactly", "perfect", "great", "fine", "thanks", "bye", "goodbye", "cheers"}
    | {"yes please", "no thanks", "thank you", "thanks again", "okay thanks", "yes thanks"}
    | {"no problem", "of course", "that's right", "that's correct", "that's all", "that's it"}
    | {"sounds good", "got it", "not really", "bye bye", "all right", "alright"}
)
"""Fragments that are whole turns: answers to the agent's question, thanks, goodbyes.
"Okay" and "all right" lead into more as often as they answer; a caller who goes on after
one has 80 % of the endpointing time to do so, as after any finished statement."""
_LEADING_INTERJECTIONS: Final = frozenset({"oh", "ah", "um", "uh", "er", "erm", "well"})
QUESTION_WORDS: Final = frozenset(
    {"what", "when", "where", "which", "who", "whom", "whose", "why", "how"}
)


def sounds_complete(text: str) -> bool:
    """``text`` (a transcript) ends like a finished turn: a sentence end, not an ellipsis,
    not on a word that leads into more, and not a lone filler."""
    core = text.strip().rstrip(_CLOSERS)
    if not core.endswith(_TERMINAL) or core.endswith(("..", "…")):
        return False
    words = _WORD.findall(core.lower())
    if not words or words[-1] in TRAILING_WORDS or " ".join(words[-2:]) in TRAILING_PHRASES:
        return False
    if len(words) <= SHORT_FRAGMENT_WORDS:
        return _answers(words) or (core.endswith("?") and words[0] in QUESTION_WORDS)
    return not all(word in _FILLERS for word in words)


def asks(text: str) -> bool:
    """``text`` sounds finished and ends in a question; a fragment only if it opens with a
    question word ("No?" is a "No," before a pause as often as it is a question)."""
    if not sounds_complete(text) or not text.strip().rstrip(_CLOSERS).endswith("?"):
        return False
    words = _WORD.findall(text.lower())
    return len(words) > SHORT_FRAGMENT_WORDS or words[0] in QUESTION_WORDS


def _answers(words: list[str]) -> bool:
    """``words`` (a fragment) are a short answer, after an "Oh," or "Well," before it."""
    while len(words) > 1 and words[0] in _LEADING_INTERJECTIONS:
        words = words[1:]
    return " ".join(words) in SHORT_ANSWERS
