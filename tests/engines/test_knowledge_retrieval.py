"""Retrieval on questions in other words than the knowledge file's, on the example office as
JSON and as Markdown (the set: ``src/voxline/eval/knowledge_paraphrases.json``; the
figures and how to reproduce them: docs/knowledge.md, "Paraphrases")."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from tests.engines.test_knowledge import OFF_TOPIC, PARAPHRASED
from tests.support.examples import ACME_DENTAL, ACME_DENTAL_MD
from voxline.engines.knowledge import KnowledgeBase, read_file

SET = json.loads(resources.files("voxline.eval").joinpath("knowledge_paraphrases.json").read_text())
# (file, paraphrased answered right at least, answered wrong at most, misheard right at least)
FLOORS = {ACME_DENTAL: (51, 7, 64), ACME_DENTAL_MD: (50, 8, 63)}


def same(source: str, expected: str) -> bool:
    """A Markdown passage is titled by its heading path ("Treatments, Services")."""
    return source == expected or source.endswith(f", {expected}")


def tally(kb: KnowledgeBase, questions: list[tuple[str, str]]) -> tuple[int, int]:
    hits = [(kb.search(q, k=1), expected) for q, expected in questions]
    right = sum(bool(h) and same(h[0].source, e) for h, e in hits)
    return right, sum(bool(h) for h, _ in hits) - right


@pytest.mark.parametrize("path", [ACME_DENTAL, ACME_DENTAL_MD], ids=["json", "markdown"])
def test_paraphrases_get_grounded_answers(path: Path) -> None:
    model, _ = read_file(path)
    kb = KnowledgeBase(model.entries)
    plain = KnowledgeBase(model.entries, related=False)
    paraphrased = [(q, e) for q, e in SET["paraphrased"]]
    assert len(paraphrased) >= 40
    right, wrong = tally(kb, paraphrased)
    least_right, most_wrong, misheard = FLOORS[path]
    assert (right, wrong) >= (least_right, 0) and wrong <= most_wrong, (right, wrong)
    assert right > tally(plain, paraphrased)[0]  # related words help
    assert tally(kb, PARAPHRASED)[0] >= misheard


@pytest.mark.parametrize("path", [ACME_DENTAL, ACME_DENTAL_MD], ids=["json", "markdown"])
def test_related_words_answer_no_more_off_topic_questions(path: Path) -> None:
    model, _ = read_file(path)
    kb = KnowledgeBase(model.entries)
    answered = [q for q in OFF_TOPIC if kb.search(q, k=1)]
    assert len(answered) <= 2, answered
    unknown = [q for q in OFF_TOPIC if not kb.search(q, k=1) and kb.candidate(q) is None]
    assert len(unknown) >= 21


def test_a_weekday_question_meets_the_hours() -> None:
    kb = KnowledgeBase.load(ACME_DENTAL)
    for question in ("when do you close on wednesday", "are you open on mondays"):
        assert kb.search(question, k=1)[0].source == "What are your opening hours?", question
