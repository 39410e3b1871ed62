"""Whether a transcript sounds like a finished turn."""

import pytest

from voxline.engines.turn_end import asks, sounds_complete


@pytest.mark.parametrize(
    "text",
    [
        "What are your opening hours?",
        "Are you open on Saturday?",
        "I'd like to talk to a person, please.",
        "Thank you.",
        "Yes.",
        "No thanks, that's all!",
        'He said "call me back."',
        "How are you?",
    ],
)
def test_finished_sentences_sound_complete(text: str) -> None:
    assert sounds_complete(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I'd like to book an appointment,",
        "I'd like to book an appointment and",
        "Could you tell me about the",
        "I was wondering...",
        "Um.",
        "So, um.",
        "I need to talk to my",
        "What about the price of a cleaning because",
        "and the",
    ],
)
def test_trailing_clauses_and_fillers_do_not(text: str) -> None:
    assert not sounds_complete(text)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("What are your opening hours?", True),
        ('Did he say "call me back?"', True),
        ("I'd like to talk to a person, please.", False),
        ("Hi there.", False),
        ("Could you tell me about the?", False),  # leads on: not finished at all
        ("Um?", False),
    ],
)
def test_questions_are_told_from_statements(text: str, question: bool) -> None:
    assert asks(text) is question
