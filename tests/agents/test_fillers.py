"""What a sound without words transcribes to."""

from __future__ import annotations

import pytest

from voxline.agents.fillers import holds_words


@pytest.mark.parametrize(
    "text",
    [
        *("", "   ", "Hmm.", "Uh...", "Mm-hm.", "Um, uh.", "Oh", "So", "Okay.", "Right."),
        *("[BLANK_AUDIO]", "(coughs)", "*cough*", "♪"),
    ],
)
def test_sounds_and_hesitations_are_no_words(text: str) -> None:
    assert not holds_words(text)


@pytest.mark.parametrize(
    "text", ["Wait, stop.", "No.", "Yes", "Um, wait.", "Okay, stop.", "Hmm, what about Friday?"]
)
def test_any_other_word_is_words(text: str) -> None:
    assert holds_words(text)
