"""The prompt that steers speech recognition toward what this caller is likely to say.

Whisper reads its prompt as the text said just before the audio, so a word in it is spelled
as it is there: a vet's name, a drug, a brand. The prompt is a glossary of the names and
terms of the conversation, in order of how likely the caller is to say them next (the
stored agent's vocabulary, which its operator listed as the words that matter, the
session's tool names, the names in the persona, the ``kb_endpoint`` passages of earlier
turns, the knowledge file's names and its callers' questions), followed by the end of the
agent's last reply, the words nearest the caller's, which they often echo ("Would you like
Tuesday the fourteenth?"). It is bounded: every prompt token costs decoding time, and past
a few dozen words tiny.en starts to copy the prompt instead of hearing the audio.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

from voxline.engines.knowledge import KnowledgeBase, Passage, QuestionAnswer, terms

MAX_CHARS: Final = 240
"""The whole prompt: about 55 Whisper tokens. tiny.en's decode of a 3 s question took 0.04 s
longer with a 200-character prompt and 0.09 s with 400 (0.62 s without)."""
MAX_REPLY_CHARS: Final = 120
"""The end of the agent's last reply kept (its last sentence or so)."""
MAX_TERMS: Final = 40

_WORD: Final = r"[A-Z][a-zA-Z]+(?:['\-][A-Za-z]+)*"
_NAME: Final = re.compile(rf"{_WORD}(?: {_WORD})*")
_SENTENCE_START: Final = re.compile(r"(?:^|[.!?:;]\s+|[\"(]\s*)$")


def names(text: str) -> list[str]:
    """Runs of capitalised words, less a sentence's first word: names, places, brands."""
    found: list[str] = []
    for match in _NAME.finditer(text):
        name = match.group()
        if _SENTENCE_START.search(text[: match.start()]):
            name = name.partition(" ")[2]
        if name and _is_content(name):
            found.append(name)
    return found


def content_words(text: str) -> list[str]:
    """The lower-case words of ``text`` that are not function words ("the", "could")."""
    return [term[2:] for term in terms(text) if term.startswith("w:")]


def _is_content(word: str) -> bool:
    return bool(content_words(word))


@functools.lru_cache(maxsize=64)
def knowledge_vocabulary(knowledge: KnowledgeBase) -> tuple[str, ...]:
    """A knowledge file's names, most frequent first, then the content words of its callers'
    questions (the way callers put things). Computed once per knowledge base in use (the
    server's, and those of the agents sessions start from)."""
    prose: list[str] = []
    questions: list[str] = []
    for entry in knowledge.entries:
        if isinstance(entry, QuestionAnswer):
            questions += [entry.question, *entry.alternates]
            prose += [entry.question, *entry.alternates, entry.answer]
        elif isinstance(entry, Passage):
            prose += [entry.title, entry.passage]
    prose += [item.label for item in knowledge.menu.values()]
    counts = Counter(name for text in prose for name in names(text))
    ranked = [knowledge.name or "", *(name for name, _ in counts.most_common())]
    return tuple(_unique([*ranked, *(w for q in questions for w in content_words(q))]))


def build_prompt(
    *,
    agent_vocabulary: Sequence[str] = (),
    persona: str | None = None,
    tool_names: Sequence[str] = (),
    passages: Sequence[str] = (),
    vocabulary: Sequence[str] = (),
    last_reply: str | None = None,
    max_chars: int = MAX_CHARS,
) -> str | None:
    """The prompt for the caller's next words, at most ``max_chars``; None when there is
    nothing to say. ``agent_vocabulary`` is the stored agent's, ``vocabulary`` the knowledge
    file's (:func:`knowledge_vocabulary`)."""
    reply = _tail(last_reply or "", min(MAX_REPLY_CHARS, max_chars))
    glossary = _unique(
        [
            *agent_vocabulary,
            *(name.replace("_", " ") for name in tool_names),
            *names(persona or ""),
            *(name for passage in passages for name in names(passage)),
            *vocabulary,
        ]
    )[:MAX_TERMS]
    room = max_chars - len(reply) - 2
    kept: list[str] = []
    for term in glossary:
        if sum(len(t) + 2 for t in kept) + len(term) > room:
            break
        kept.append(term)
    parts = [", ".join(kept) + "." if kept else "", reply]
    prompt = " ".join(part for part in parts if part)
    return prompt or None


def _tail(text: str, max_chars: int) -> str:
    """The last whole words of ``text`` within ``max_chars``."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[-max_chars:]
    return cut.split(" ", 1)[1] if " " in cut else ""


def _unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats (ignoring case), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.casefold()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out
