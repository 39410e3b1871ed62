"""Whether a caller's words so far sound like a whole turn: the semantic half of endpointing.

Silence alone cannot tell a caller who has finished from one gathering their next clause:
pauses inside a sentence run to 350 ms, as long as many pauses at the end of one. The words
can: Whisper closes a finished question with "?" or ".", and leaves a trailing "and", "um"
or "the" in a sentence that goes on. A turn that sounds complete may end after a shorter
silence; one that does not waits for the full endpointing time.
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
_FILLERS: Final = frozenset({"um", "uh", "er", "erm", "hmm", "so", "well", "and", "but"})


def sounds_complete(text: str) -> bool:
    """``text`` (a transcript) ends like a finished turn: a sentence end, not an ellipsis,
    not on a word that leads into more, and not a lone filler."""
    core = text.strip().rstrip(_CLOSERS)
    if not core.endswith(_TERMINAL) or core.endswith(("..", "…")):
        return False
    words = _WORD.findall(core.lower())
    if not words or words[-1] in TRAILING_WORDS:
        return False
    return not all(word in _FILLERS for word in words)


def asks(text: str) -> bool:
    """``text`` sounds finished and ends in a question."""
    return sounds_complete(text) and text.strip().rstrip(_CLOSERS).endswith("?")
