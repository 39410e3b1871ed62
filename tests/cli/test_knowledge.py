"""``voxline knowledge check`` through the real command: what a file holds, what questions
retrieve, and errors with their line and the key meant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.examples import ACME_DENTAL, ACME_DENTAL_MD


def voxline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxline", *args], capture_output=True, text=True, timeout=60
    )


def test_check_says_what_a_markdown_file_holds_and_what_it_answers() -> None:
    done = voxline("knowledge", "check", str(ACME_DENTAL_MD))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "valid" in out
    assert "name:      Acme Dental" in out
    assert "greeting:  Thanks for calling Acme Dental." in out
    assert "25 questions" in out and "3 passages" in out
    assert "passage: Our dentists" in out
    assert out.count("    answers ") == 5  # its own questions, paraphrased, answered


def test_check_asks_the_questions_given() -> None:
    done = voxline(
        "knowledge", "check", str(ACME_DENTAL),
        "--ask", "is there somewhere to park", "--ask", "tell me a joke",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "menu:      1 our opening hours" in done.stdout
    park = lines.index("  'is there somewhere to park'")
    assert lines[park + 1].split()[0] == "answers"
    assert lines[park + 1].endswith("Is there parking?")
    joke = lines.index("  'tell me a joke'")
    assert lines[joke + 1].split()[:2] == ["not", "known"]


def test_check_names_the_line_and_the_key_meant(tmp_path: Path) -> None:
    path = tmp_path / "kb.json"
    path.write_text(
        '{\n  "entries": [\n    {"question": "Hours?",\n     "anwser": "9 to 5"}\n  ]\n}'
    )
    done = voxline("knowledge", "check", str(path))
    assert done.returncode == 1
    assert "line 4: entries.0.anwser: unknown key `anwser`; did you mean `answer`?" in done.stderr
    markdown = tmp_path / "kb.md"
    markdown.write_text("# Acme\n\n### Are you open late?\n\n### Parking?\n\nBehind us.\n")
    done = voxline("knowledge", "check", str(markdown))
    assert done.returncode == 1
    assert "kb.md:3: the question 'Are you open late?' has no answer" in done.stderr
