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


# A lead-in before a pause, as Whisper closes it (a beam search more often than greedy):
# the caller goes on, so the turn must not end on it.
LEAD_INS = [
    "Sorry.",
    "Sorry?",
    "Sorry!",
    "Oh, sorry.",
    "Hello?",
    "Hello.",
    "Hi.",
    "Hi there.",
    "Well.",
    "Well?",
    "So.",
    "So?",
    "Um.",
    "I'm.",  # "Um," as a beam search heard it
    "Right.",
    "Wait.",
    "Wait, stop.",
    "Excuse me.",
    "Actually.",
    "Okay, so.",
    "Listen.",
    "Uh?",
    "Sorry, I mean.",
    "Well, let me.",
    "Okay, you see.",
]
# Whole turns of one or two words: answers, thanks, goodbyes, questions with a question word.
SHORT_TURNS = [
    ("Yes.", False),
    ("No.", False),
    ("No?", False),  # as often a "No," before a pause as a question: a statement's wait
    ("Thanks.", False),
    ("Thank you.", False),
    ("Thank you!", False),
    ("No thanks.", False),
    ("Yes, please.", False),
    ("Okay.", False),
    ("Oh, okay.", False),
    ("Well, yes.", False),
    ("That's right.", False),
    ("Bye.", False),
    ("Why?", True),
    ("How much?", True),
    ("What time?", True),
    ("Which one?", True),
]


@pytest.mark.parametrize("text", LEAD_INS)
def test_a_lead_in_before_a_pause_does_not_end_the_turn(text: str) -> None:
    assert not sounds_complete(text)
    assert not asks(text)


@pytest.mark.parametrize(("text", "question"), SHORT_TURNS)
def test_short_answers_and_questions_are_whole_turns(text: str, question: bool) -> None:
    assert sounds_complete(text)
    assert asks(text) is question


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Sorry, what time do you close?", True),
        ("Hello, is anyone there?", True),
        ("Well, that works for me.", False),
        ("So you're open Sunday?", True),
        ("Okay, see you tomorrow.", False),
    ],
)
def test_a_lead_in_with_its_sentence_is_a_whole_turn(text: str, question: bool) -> None:
    assert sounds_complete(text)
    assert asks(text) is question
