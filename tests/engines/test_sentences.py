"""Sentence splitting of a streamed reply: golden cases and properties."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxline.engines.sentences import SentenceSplitter


def split(text: str, **options: Any) -> list[str]:
    splitter = SentenceSplitter(**options)
    return [*splitter.feed(text), *splitter.flush()]


def streamed(deltas: list[str], **options: Any) -> list[list[str]]:
    """What each feed returns, then what flush returns."""
    splitter = SentenceSplitter(**options)
    return [*(splitter.feed(delta) for delta in deltas), splitter.flush()]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "Hello there. How are you doing today? I am fine, thank you.",
            ["Hello there.", "How are you doing today?", "I am fine, thank you."],
        ),
        (
            "Dr. Smith will see you at 9:30 a.m. tomorrow. Mr. Jones is away until then.",
            ["Dr. Smith will see you at 9:30 a.m. tomorrow.", "Mr. Jones is away until then."],
        ),
        (
            "The total is 3.5 dollars. Last year it was 1,000.25 dollars!",
            ["The total is 3.5 dollars.", "Last year it was 1,000.25 dollars!"],
        ),
        (
            "Well... let me think about that. Okay, I have found the answer for you.",
            ["Well... let me think about that.", "Okay, I have found the answer for you."],
        ),
        (
            "We ship to the U.S. and Canada, e.g. to Toronto, i.e. most of North America.",
            ["We ship to the U.S. and Canada, e.g. to Toronto, i.e. most of North America."],
        ),
        (
            'He said "stop." Then he left the room without a word.',
            ['He said "stop."', "Then he left the room without a word."],
        ),
        (
            "J. R. R. Tolkien wrote it. Was it really (as they say) his best book?",
            ["J. R. R. Tolkien wrote it.", "Was it really (as they say) his best book?"],
        ),
        # Line breaks end sentences; a list number at the start of a piece does not.
        (
            "You can choose:\n1. Pasta with tomato sauce\n2. Pizza with mushrooms",
            ["You can choose:", "1. Pasta with tomato sauce", "2. Pizza with mushrooms"],
        ),
        # After the first piece, short sentences are joined to the next.
        (
            "Hi! Yes. No. Maybe so. That is a longer sentence. Bye.",
            ["Hi!", "Yes. No. Maybe so. That is a longer sentence.", "Bye."],
        ),
        # An ellipsis or a question mark inside quotes, then more.
        (
            "Is that right…? I think “yes!” is the answer to that question.",
            ["Is that right…?", "I think “yes!” is the answer to that question."],
        ),
    ],
)
def test_golden(text: str, sentences: list[str]) -> None:
    assert split(text, first_chunk_chars=None) == sentences


def test_first_chunk_is_cut_at_an_early_clause() -> None:
    text = (
        "Absolutely, I can help you book a table for tonight, but first I need to know how "
        "many people will be coming."
    )
    assert split(text, first_chunk_chars=None) == [text]
    assert split(text, first_chunk_chars=30) == [
        "Absolutely, I can help you book a table for tonight,",
        "but first I need to know how many people will be coming.",
    ]
    # Only the first piece: later ones wait for clause_chars.
    assert split(f"Sure. {text}", first_chunk_chars=30) == ["Sure.", text]


def test_long_clauses_are_cut_at_commas_semicolons_and_colons() -> None:
    first = "Sure."
    clause = "our kitchen is open from noon until late in the evening on every day of the week"
    rest = "the bar stays open for another two hours after the kitchen closes"
    for mark in ",;:":
        assert split(f"{first} {clause}{mark} {rest}.") == [first, f"{clause}{mark}", f"{rest}."]
    assert split(f"{first} {clause} - {rest}.") == [first, f"{clause} -", f"{rest}."]


def test_very_long_sentences_are_capped_at_a_clause_then_a_word() -> None:
    words = " ".join(f"word{i}" for i in range(60))  # 5-6 characters each
    pieces = split(words, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert " ".join(pieces) == words
    assert len(pieces[0]) > 90  # as much as fits

    clauses = "alpha beta gamma, delta epsilon zeta eta, theta iota kappa lambda mu nu xi omicron"
    assert split(clauses, max_chars=60, first_chunk_chars=None) == [
        "alpha beta gamma, delta epsilon zeta eta,",
        "theta iota kappa lambda mu nu xi omicron",
    ]
    huge = "x" * 300
    assert split(f"{huge} and more", max_chars=100) == [huge, "and more"]


def test_sentences_come_out_as_soon_as_the_gap_after_them_arrives() -> None:
    deltas = ["Sure", ".", " I", " can", " help", " with", " that", ".", " What", " time?"]
    assert streamed(deltas) == [
        *([], [], ["Sure."], [], [], [], [], []),
        *(["I can help with that."], [], ["What time?"]),
    ]
    # A trailing gap after a sentence end is enough; one after a plain word is not, since
    # the rest of it may break the line.
    assert streamed(["Sure. ", "I can "]) == [["Sure."], [], ["I can"]]
    deltas = ["Sure thing,", " ", "\n", "of course"]
    assert streamed(deltas) == [[], [], ["Sure thing,"], [], ["of course"]]


def test_empty_and_whitespace_only_replies() -> None:
    assert split("") == []
    assert split("  \n ") == []
    assert streamed(["", " ", "Hi", ""]) == [[], [], [], [], ["Hi"]]


@pytest.mark.parametrize("options", [{"min_chars": 0}, {"min_chars": 50, "max_chars": 40}])
def test_bad_options(options: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="min_chars"):
        SentenceSplitter(**options)


# Properties

TOKENS = [
    *("Dr.", "Mr.", "e.g.", "i.e.", "a.m.", "U.S.", "etc.", "J.", "1.", "12.", "3.5", "9:30"),
    *("1,000", "...", "…", "word", "Hello", "sentence.", "end!", "why?", "-", "—", "x" * 45),
    *("clause,", "semi;", "colon:", '"quoted."', "(aside.)", "“curly?”"),
]
GAPS = [" ", " ", " ", "  ", "\n", " \n ", "\t"]
CONFIGS: list[dict[str, Any]] = [
    {},
    {"first_chunk_chars": None},
    {"first_chunk_chars": 8, "min_chars": 5, "clause_chars": 15, "max_chars": 40},
    {"first_chunk_chars": 1, "min_chars": 1, "clause_chars": 1, "max_chars": 1},
]

texts = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(TOKENS), st.text("ab.,!?;:…'\"()-—0123456789", max_size=4)),
        st.sampled_from(GAPS),
    ),
    max_size=60,
).map(lambda parts: "".join(token + gap for token, gap in parts))


def cuts(text_size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, text_size), max_size=20).map(sorted)


@given(text=texts, options=st.sampled_from(CONFIGS), data=st.data())
def test_any_split_of_the_stream_gives_the_same_sentences(
    text: str, options: dict[str, Any], data: st.DataObject
) -> None:
    positions = data.draw(cuts(len(text)))
    bounds = [0, *positions, len(text)]
    deltas = [text[a:b] for a, b in itertools.pairwise(bounds)]
    whole = split(text, **options)
    assert [piece for pieces in streamed(deltas, **options) for piece in pieces] == whole

    # The pieces are the text, cut only between words.
    assert " ".join(whole).split() == text.split()
    for piece in whole:
        assert piece and piece == piece.strip()
        assert len(piece) <= SentenceSplitter(**options).max_chars or len(piece.split()) == 1


def test_a_long_first_clause_is_cut_before_a_connective() -> None:
    splitter = SentenceSplitter()
    text = "We're open Monday to Thursday from 8 in the morning to 6 in the evening. Bye now."
    assert splitter.feed(text) + splitter.flush() == [
        "We're open Monday to Thursday",
        "from 8 in the morning to 6 in the evening.",
        "Bye now.",
    ]
    # Only the first piece, and only once it is long enough and four words in.
    splitter = SentenceSplitter()
    assert splitter.feed("Yes and no. ") + splitter.flush() == ["Yes and no."]
    assert SentenceSplitter(first_chunk_chars=None).feed(text)[0].endswith("evening.")


def test_the_connective_cut_waits_for_the_whole_next_word() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("We're open Monday to Thursday fro") == []
    assert splitter.feed("m eight") == ["We're open Monday to Thursday"]
