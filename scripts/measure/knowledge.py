"""Measure knowledge-file retrieval: how many questions get the right answer (grounded), are
checked with the caller, or get a wrong one, and the time a turn's search takes.

Sets: the paraphrased questions of ``src/voxline/eval/knowledge_paraphrases.json`` and the
paraphrased-or-misheard and off-topic questions of ``tests/engines/test_knowledge.py``, on
the example dental office as JSON and as Markdown; with and without related words.

    PYTHONPATH=src:. python scripts/measure/knowledge.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from tests.engines.test_knowledge import CHATTY, OFF_TOPIC, PARAPHRASED
from voxline.engines.knowledge import KnowledgeBase, read_file

EXAMPLES = Path(__file__).parents[2] / "examples" / "knowledge"
SET = Path(__file__).parents[2] / "src" / "voxline" / "eval" / "knowledge_paraphrases.json"


def same(source: str, expected: str) -> bool:
    """A Markdown passage is titled by its heading path ("Treatments, Services")."""
    return source == expected or source.endswith(f", {expected}")


def grounded(kb: KnowledgeBase, questions: Sequence[tuple[str, str]]) -> tuple[int, int, int]:
    """(answered right, checked right, answered wrong)."""
    right = checked = wrong = 0
    for question, expected in questions:
        hits = kb.search(question, k=1)
        if hits:
            right += same(hits[0].source, expected)
            wrong += not same(hits[0].source, expected)
        elif (candidate := kb.candidate(question)) is not None:
            checked += same(candidate.source, expected)
    return right, checked, wrong


def first_is(kb: KnowledgeBase, question: str, expected: str) -> bool:
    """The right entry comes first, answered or checked with the caller."""
    hits = kb.search(question, k=1)
    hit = hits[0] if hits else kb.candidate(question)
    return hit is not None and same(hit.source, expected)


def off_topic(kb: KnowledgeBase, questions: Sequence[str]) -> tuple[int, int]:
    """(answered, checked): each a wrong reply to a question the file cannot answer."""
    answered = sum(bool(kb.search(q, k=1)) for q in questions)
    checked = sum(not kb.search(q, k=1) and kb.candidate(q) is not None for q in questions)
    return answered, checked


def per_turn_ms(kb: KnowledgeBase, questions: Sequence[str], rounds: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        for question in questions:
            if not kb.search(question, k=1):
                kb.candidate(question)
    return (time.perf_counter() - start) * 1000 / (rounds * len(questions))


def main() -> None:
    data = json.loads(SET.read_text())
    paraphrased = [tuple(pair) for pair in data["paraphrased"]]
    off = data["off_topic"]
    print(
        "file | related words | paraphrased (n) right/checked/wrong | misheard (n) "
        "right/checked/wrong | chatter first | off-topic (n) answered/checked | "
        "more off-topic (n) answered/checked | ms per turn"
    )
    for name in ("acme-dental.json", "acme-dental.md"):
        model, _ = read_file(EXAMPLES / name)
        for related in (False, True):
            kb = KnowledgeBase(model.entries, name=model.name, related=related)
            p = grounded(kb, paraphrased)
            m = grounded(kb, PARAPHRASED)
            c = sum(first_is(kb, q, e) for q, e in CHATTY)
            o1 = off_topic(kb, OFF_TOPIC)
            o2 = off_topic(kb, off)
            ms = per_turn_ms(kb, [q for q, _ in paraphrased] + OFF_TOPIC)
            print(
                f"{name} | {'yes' if related else 'no'} | ({len(paraphrased)}) "
                f"{p[0]}/{p[1]}/{p[2]} | ({len(PARAPHRASED)}) {m[0]}/{m[1]}/{m[2]} | "
                f"{c}/{len(CHATTY)} | ({len(OFF_TOPIC)}) {o1[0]}/{o1[1]} | "
                f"({len(off)}) {o2[0]}/{o2[1]} | {ms:.2f}"
            )


if __name__ == "__main__":
    main()
