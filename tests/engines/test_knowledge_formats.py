"""Knowledge files in Markdown and plain text read into entries and passages; errors that
name the line and the key meant; the published JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.examples import ACME_DENTAL, ACME_DENTAL_MD, REPOSITORY
from voxline.engines.knowledge import KnowledgeBase, KnowledgeFileError, read_file
from voxline.engines.knowledge_formats import json_line, parse

HOURS = "We're open Monday to Friday, 8 am to 6 pm."


def entries(kind: str, text: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = parse(kind, text).data["entries"]
    return result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # headings and paragraphs: passages titled by their heading path
        (
            f"# Acme\n\n## Visiting\n\n### Hours\n\n{HOURS}\nSaturdays 9 to 1.\n\n"
            "### Parking\n\nBehind us.",
            [
                {"title": "Visiting, Hours", "passage": f"{HOURS} Saturdays 9 to 1."},
                {"title": "Visiting, Parking", "passage": "Behind us."},
            ],
        ),
        # a question heading is answered by what follows it; Q: lines under it are alternates
        (
            "## Do you take walk-ins?\n\nQ: Can I just drop in?\n\nYes, when there is room.",
            [
                {
                    "question": "Do you take walk-ins?",
                    "answer": "Yes, when there is room.",
                    "alternates": ["Can I just drop in?"],
                }
            ],
        ),
        # Q:/A: lines, several questions for one answer
        (
            "Q: Is there parking?\nQ: Where do I park?\nA: Behind the building.\n\n"
            "Q: Do you take cards?\n\nA: All of them.",
            [
                {
                    "question": "Is there parking?",
                    "answer": "Behind the building.",
                    "alternates": ["Where do I park?"],
                },
                {"question": "Do you take cards?", "answer": "All of them."},
            ],
        ),
        # bold markers, question and answer on one line
        (
            "**Q:** Is there parking? **A:** Yes, free.",
            [{"question": "Is there parking?", "answer": "Yes, free."}],
        ),
        # a list of questions with answers, after the mark or nested
        (
            "- **What does a cleaning cost?** 120 dollars.\n- Do you see kids?\n  - Yes, from one.",
            [
                {"question": "What does a cleaning cost?", "answer": "120 dollars."},
                {"question": "Do you see kids?", "answer": "Yes, from one."},
            ],
        ),
        # other lists and tables are prose of the passage
        (
            "## Prices\n\n- Cleaning 120 dollars\n- Whitening 450 dollars\n\n"
            "| Service | Price |\n|---|---|\n| X-rays | 60 dollars |",
            [
                {
                    "title": "Prices",
                    "passage": "Cleaning 120 dollars. Whitening 450 dollars. X-rays: 60 dollars.",
                }
            ],
        ),
    ],
)
def test_markdown_reads_into_entries_and_passages(
    text: str, expected: list[dict[str, Any]]
) -> None:
    assert entries("markdown", text) == expected


def test_markdown_name_and_greeting() -> None:
    data = parse("markdown", "# Acme Dental\n\nGreeting: Hi, Acme here.\n\nWe fix teeth.").data
    assert data["name"] == "Acme Dental"
    assert data["greeting"] == "Hi, Acme here."
    assert data["entries"] == [{"title": "", "passage": "We fix teeth."}]
    front = parse("markdown", '---\nname: Acme\ngreeting: "Hello."\n---\n# Services\n\nTeeth.')
    assert front.data["name"] == "Acme"
    assert front.data["greeting"] == "Hello."
    assert front.data["entries"] == [{"title": "Services", "passage": "Teeth."}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"Greeting: Hello.\n\nOpening hours\n\n{HOURS}\n\nParking\n\nBehind us.",
            [
                {"title": "Opening hours", "passage": HOURS},
                {"title": "Parking", "passage": "Behind us."},
            ],
        ),
        (
            "Q: Is there parking?\nA: Behind us.\n\nWe fix teeth.",
            [{"question": "Is there parking?", "answer": "Behind us. We fix teeth."}],
        ),
        ("We fix teeth. We see kids.", [{"title": "", "passage": "We fix teeth. We see kids."}]),
    ],
)
def test_plain_text_reads_into_entries_and_passages(
    text: str, expected: list[dict[str, Any]]
) -> None:
    assert entries("text", text) == expected


def test_the_markdown_example_holds_what_the_json_one_does() -> None:
    md, _ = read_file(ACME_DENTAL_MD)
    js, _ = read_file(ACME_DENTAL)
    assert (md.name, md.greeting) == (js.name, js.greeting)
    answers = {getattr(e, "answer", None) or getattr(e, "passage", None) for e in md.entries}
    assert answers == {
        getattr(e, "answer", None) or getattr(e, "passage", None) for e in js.entries
    }


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.json",
            '{\n  "entries": [\n    {"question": "Q?",\n     "anwser": "typo"}\n  ]\n}',
            r"line 4: entries\.0\.anwser: unknown key `anwser`; did you mean `answer`\?",
        ),
        (
            "bad.json",
            '{\n  "greting": "Hi"\n}',
            r"line 2: greting: unknown key `greting`; did you mean `greeting`\?",
        ),
        ("bad.json", '{\n  "entries": [\n  }', r"bad\.json:3: not readable JSON"),
        (
            "bad.json",
            '{"menu": {\n"1": {"label": "x", "anser": "y"}}}',
            r"line 2: menu\.1\.anser: unknown key `anser`; did you mean `answer`\?",
        ),
        (
            "bad.md",
            "# Acme\n\n## Hours\n\n### Do you open late?\n\n## Parking\n\nYes.",
            r"bad\.md:5: the question 'Do you open late\?' has no answer",
        ),
        (
            "bad.md",
            "Intro.\n\nA: An answer alone.",
            r"bad\.md:3: an answer \(A:\) with no question",
        ),
        (
            "bad.md",
            "---\ngreting: Hi\n---\nText.",
            r"bad\.md:2: unknown key `greting`; did you mean `greeting`\?",
        ),
        ("bad.md", "```\ncode only\n```", r"no questions, answers or passages"),
        (
            "bad.yaml",
            "name: x",
            r"bad\.yaml: a knowledge file is \.json, \.md, \.markdown or \.txt",
        ),
    ],
)
def test_errors_name_the_line_and_the_key_meant(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(KnowledgeFileError, match=message):
        KnowledgeBase.load(path)


def test_json_line_finds_keys_and_list_items() -> None:
    text = '{\n "a": [\n  1,\n  {"b": 2,\n   "c": [3]}\n ],\n "d": "x"\n}'
    assert json_line(text, ("a",)) == 2
    assert json_line(text, ("a", 1)) == 4
    assert json_line(text, ("a", 1, "c")) == 5
    assert json_line(text, ("d",)) == 7
    assert json_line(text, ("a", 1, "missing")) == 4
    assert json_line(text, ("nowhere",)) is None


def test_the_published_schema_matches_the_model() -> None:
    sys.path.insert(0, str(REPOSITORY / "scripts"))
    try:
        from knowledge_schema import SCHEMA, schema_text
    finally:
        sys.path.remove(str(REPOSITORY / "scripts"))
    assert SCHEMA.read_text() == schema_text(), "run scripts/knowledge_schema.py"
    schema = json.loads(SCHEMA.read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"name", "greeting", "entries", "menu"}
