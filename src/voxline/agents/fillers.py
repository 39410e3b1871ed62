"""Whether a transcript holds words: what a cough, a door or a rumble transcribes to is not.

Whisper, unprompted, writes noise as nothing, as a bracketed note ("[BLANK_AUDIO]",
"(coughs)", "*clears throat*") or as a hesitation or backchannel: of 100 low-passed noise
bursts, 44 were "", 28 "Oh", 15 "Okay." and 10 "So" (``scripts/measure/false_interruptions.py``,
docs/performance.md). A lone backchannel ("okay", "mm-hm", "right") said over the agent asks
nothing of it either: the agent goes on. Any other word, "yes" and "no" included, is words.
"""

from __future__ import annotations

import re
from typing import Final

FILLERS: Final = frozenset(
    {"um", "umm", "uh", "uhh", "uh-huh", "er", "erm", "hm", "hmm", "hmmm", "mm", "mmm"}
    | {"mm-hm", "mm-hmm", "mhm", "ah", "ahh", "oh", "eh", "huh", "so"}
    | {"okay", "ok", "right", "yeah", "uh-huh", "aha"}  # backchannels
)
_NOTES: Final = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪")
_WORD: Final = re.compile(r"[a-z]+(?:['-][a-z]+)*")


def holds_words(text: str | None) -> bool:
    """``text`` (a transcript) says something beyond notes of sounds and hesitations."""
    if not text:
        return False
    words = _WORD.findall(_NOTES.sub(" ", text.lower()))
    return any(word not in FILLERS for word in words)
