"""Knowledge files as a business already writes them: Markdown and plain text, read into the
JSON format's structure (``docs/knowledge.md``), with the line each part came from.

Markdown is read with ``markdown-it-py`` (CommonMark, tables):

- a first-level heading names the business (the first one, when no front matter names it);
- ``Greeting: …`` on a line of its own, or a front-matter block (``---`` lines around
  ``name: …`` and ``greeting: …``), sets the greeting;
- a heading that is a question ("### Do you take walk-ins?") is answered by what follows it
  up to the next heading;
- ``Q: …`` / ``A: …`` lines (``**Q:** … **A:** …`` too, on one line or several; more ``Q:``
  lines before the ``A:`` are other ways of asking);
- a list item that starts with a question is answered by the rest of the item (its text
  after the question mark, or its nested list);
- everything else under a heading is one passage, titled by its heading path.

Plain text is read the same way, with one addition: a short line of its own without final
punctuation ("Parking") is taken as a heading.

JSON errors are placed too: :func:`json_line` finds the line of a key path in the text.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

SUFFIXES: Final = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".txt": "text"}
"""The knowledge file formats, by file extension."""

FRONT_MATTER_KEYS: Final = ("name", "greeting")

_MARKERS = re.compile(r"(?m)(?:^|(?<=[?.!:]\s))(Q|A|Question|Answer)\s*:\s*")
_GREETING = re.compile(r"^greeting\s*:\s*(.+)$", re.IGNORECASE)
_FRONT_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$")
_QUESTION = re.compile(r"^(.+?\?)\s*(.*)$", re.DOTALL)
_TITLE_LINE = re.compile(r"^[^.!?:;,]{1,60}$")
_TITLE_WORDS: Final = 6


class FormatError(ValueError):
    """The file cannot be read as knowledge; ``line`` (1-based) says where, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def did_you_mean(key: str, known: Sequence[str]) -> str:
    """``"; did you mean `answer`?"`` for a near miss of a known key, else ``""``."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


@dataclass
class Parsed:
    """A knowledge file as the JSON format's data, with the lines its parts start on."""

    data: dict[str, Any]
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    """Where each part starts: ``("entries", 3)`` to a line, ``("greeting",)`` to a line."""

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the longest known prefix of ``loc``."""
        for end in range(len(loc), 0, -1):
            if (line := self.lines.get(tuple(loc[:end]))) is not None:
                return line
        return None


def parse(kind: str, text: str) -> Parsed:
    """Read ``text`` as ``kind`` (a value of :data:`SUFFIXES`). Raises :class:`FormatError`."""
    if kind == "json":
        try:
            return Parsed(json.loads(text))
        except json.JSONDecodeError as exc:
            raise FormatError(f"not readable JSON: {exc.msg}", exc.lineno) from exc
    return _Reader(plain=kind == "text").read(text)


def json_line(text: str, loc: Sequence[str | int]) -> int | None:
    """The line of the key (or list item) at ``loc`` in the JSON ``text``; where the path
    stops being found, the line of its last found part."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    found: int | None = None
    for part in loc:
        try:
            start = _child(text, position, part, decoder)
        except (ValueError, IndexError):
            break
        if start is None:
            break
        found = start
        position = _skip_space(text, _after_key(text, start, decoder))
    return None if found is None else text.count("\n", 0, found) + 1


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _after_key(text: str, position: int, decoder: json.JSONDecoder) -> int:
    """From the start of a key (``"k": value``) to its value; a list item's start is its
    value already."""
    if text[position] != '"':
        return position
    _, end = decoder.raw_decode(text, position)
    end = _skip_space(text, end)
    return end + 1 if end < len(text) and text[end] == ":" else position


def _child(text: str, position: int, part: str | int, decoder: json.JSONDecoder) -> int | None:
    """The start of ``part`` (a key's opening quote, or a list item) in the object or list
    starting at ``position``."""
    opening = text[position]
    if opening not in "{[" or (opening == "[") != isinstance(part, int):
        return None
    index = 0
    position = _skip_space(text, position + 1)
    while position < len(text) and text[position] not in "]}":
        start = position
        if opening == "{":
            key, position = decoder.raw_decode(text, position)
            if key == part:
                return start
            position = _skip_space(text, position) + 1  # the colon
        elif index == part:
            return start
        _, position = decoder.raw_decode(text, _skip_space(text, position))
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
        index += 1
    return None


# ---- Markdown and plain text -----------------------------------------------------------


@dataclass
class _Question:
    asked: list[str]
    line: int
    answer: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self, *, plain: bool) -> None:
        self._plain = plain
        self._data: dict[str, Any] = {}
        self._entries: list[dict[str, Any]] = []
        self._lines: dict[tuple[str | int, ...], int] = {}
        self._path: list[tuple[int, str]] = []  # the headings above, (level, text)
        self._section: list[str] = []  # the passage being read
        self._section_line = 1
        self._question: _Question | None = None  # a question heading's or a Q: line's

    def read(self, text: str) -> Parsed:
        offset = self._front_matter(text.splitlines())
        body = "\n" * offset + "\n".join(text.splitlines()[offset:])
        tree = SyntaxTreeNode(MarkdownIt("commonmark").enable("table").parse(body))
        for node in tree.children:
            self._block(node)
        self._end_section()
        if not self._entries and "greeting" not in self._data:
            raise FormatError("no questions, answers or passages found", None)
        self._data["entries"] = self._entries
        return Parsed(self._data, self._lines)

    def _front_matter(self, lines: list[str]) -> int:
        """Read a ``---`` block at the top; the number of lines it takes."""
        if not lines or lines[0].strip() != "---":
            return 0
        for end in range(1, len(lines)):
            if lines[end].strip() == "---":
                break
        else:
            raise FormatError("front matter opened with --- is not closed", 1)
        for number, line in enumerate(lines[1:end], start=2):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = _FRONT_LINE.match(line.strip())
            if match is None:
                raise FormatError("front matter lines are `key: value`", number)
            key, value = match[1].lower(), match[2].strip().strip("\"'")
            if key not in FRONT_MATTER_KEYS:
                hint = did_you_mean(key, FRONT_MATTER_KEYS)
                raise FormatError(f"unknown key `{match[1]}`{hint}", number)
            self._data[key] = value
            self._lines[(key,)] = number
        return end + 1

    # -- blocks

    def _block(self, node: SyntaxTreeNode) -> None:
        line = _line(node)
        if node.type == "heading":
            self._heading(int(node.tag[1]), _inline_text(node), line)
        elif node.type == "paragraph":
            self._paragraph(_inline_text(node), line)
        elif node.type in ("bullet_list", "ordered_list"):
            for item in node.children:
                self._list_item(item)
        elif node.type == "table":
            for row in _rows(node):
                self._add(row, line)
        elif node.type == "blockquote":
            for child in node.children:
                self._block(child)
        # code, html and rules are not spoken

    def _heading(self, level: int, text: str, line: int) -> None:
        self._end_section()
        if level == 1 and "name" not in self._data and not self._path:
            self._data["name"] = text
            self._lines[("name",)] = line
            self._path = [(1, "")]  # the business is not a topic
            return
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))
        self._section_line = line
        if text.endswith("?"):
            self._question = _Question([text], line)

    def _paragraph(self, text: str, line: int) -> None:
        if self._plain and self._looks_like_a_title(text):
            self._heading(2, text, line)
            return
        kept: list[str] = []
        for number, part in enumerate(text.split("\n")):
            if (match := _GREETING.match(part.strip())) is not None:
                self._data["greeting"] = match[1].strip()
                self._lines[("greeting",)] = line + number
            else:
                kept.append(part)
        text = "\n".join(kept).strip()
        if text:
            self._pairs(text, line)

    def _pairs(self, text: str, line: int) -> None:
        """Text with ``Q:``/``A:`` markers, or without them (added to what is being read)."""
        pieces = _MARKERS.split(text)
        self._add(pieces[0], line)
        for marker, content in zip(pieces[1::2], pieces[2::2], strict=True):
            content = " ".join(content.split())
            at = line + text.count("\n", 0, text.find(content[:20])) if content else line
            if marker in ("Q", "Question"):
                if self._question is not None and (self._question.answer or not content):
                    self._end_question()
                if self._question is None:
                    self._question = _Question([], at)
                if content:
                    self._question.asked.append(content)
            elif self._question is None or not self._question.asked:
                raise FormatError("an answer (A:) with no question (Q:) before it", at)
            else:
                self._question.answer.append(content)

    def _list_item(self, item: SyntaxTreeNode) -> None:
        line = _line(item)
        first = item.children[0] if item.children else None
        text = _inline_text(first) if first is not None and first.type == "paragraph" else ""
        rest = [" ".join(_texts(child)) for child in item.children[1:]]
        match = _QUESTION.match(" ".join(text.split()))
        if match is not None and not _MARKERS.match(text):
            answer = " ".join(part for part in (match[2], *rest) if part).strip()
            if not answer:
                raise FormatError(f"the question {match[1]!r} has no answer", line)
            self._end_question()
            self._entry({"question": match[1], "answer": answer}, line)
            return
        if text and _MARKERS.match(text):
            self._pairs(text, line)
            for part in rest:
                self._add(part, line)
            return
        self._add(" ".join(part for part in (text, *rest) if part), line)

    def _add(self, text: str, line: int) -> None:
        """Prose: the answer of the question being read, else part of the passage."""
        text = _sentence(" ".join(text.split()))
        if not text:
            return
        if self._question is not None:
            self._question.answer.append(text)
        else:
            if not self._section and not any(heading for _, heading in self._path):
                self._section_line = line
            self._section.append(text)

    def _looks_like_a_title(self, text: str) -> bool:
        return (
            "\n" not in text
            and bool(_TITLE_LINE.match(text))
            and (len(text.split()) <= _TITLE_WORDS)
        )

    # -- entries

    def _end_question(self) -> None:
        question, self._question = self._question, None
        if question is None:
            return
        if not question.answer:
            asked = question.asked[0] if question.asked else "Q:"
            raise FormatError(f"the question {asked!r} has no answer", question.line)
        entry: dict[str, Any] = {"question": question.asked[0], "answer": " ".join(question.answer)}
        if len(question.asked) > 1:
            entry["alternates"] = question.asked[1:]
        self._entry(entry, question.line)

    def _end_section(self) -> None:
        self._end_question()
        if self._section:
            title = ", ".join(text for _, text in self._path if text)
            self._entry({"title": title, "passage": " ".join(self._section)}, self._section_line)
        self._section = []

    def _entry(self, entry: dict[str, Any], line: int) -> None:
        self._lines[("entries", len(self._entries))] = line
        self._entries.append(entry)


def _line(node: SyntaxTreeNode) -> int:
    return node.map[0] + 1 if node.map else 1


def _inline_text(node: SyntaxTreeNode) -> str:
    """The words of a heading or paragraph, markup dropped, line breaks kept."""
    inline = next((child for child in node.children if child.type == "inline"), None)
    return "".join(_inline_parts(inline)).strip() if inline is not None else ""


def _inline_parts(node: SyntaxTreeNode) -> Iterator[str]:
    for child in node.children:
        if child.type in ("text", "code_inline"):
            yield child.content
        elif child.type in ("softbreak", "hardbreak"):
            yield "\n"
        elif child.type != "html_inline":
            yield from _inline_parts(child)


def _texts(node: SyntaxTreeNode) -> Iterator[str]:
    """The sentences of a block and everything in it."""
    if node.type in ("paragraph", "heading"):
        yield _sentence(" ".join(_inline_text(node).split()))
    elif node.type == "table":
        yield from _rows(node)
    else:
        for child in node.children:
            yield from _texts(child)


def _rows(table: SyntaxTreeNode) -> Iterator[str]:
    """A table as sentences: each body row's cells, after the header's ("Cleaning: 120
    dollars.")."""
    rows = [
        [" ".join(_inline_text(cell).split()) for cell in row.children]
        for section in table.children
        for row in section.children
    ]
    if not rows:
        return
    for cells in rows[1:] or rows:
        if len(cells) == 2 and len(rows) > 1 and all(cells):
            yield _sentence(f"{cells[0]}: {cells[1]}")
        else:
            yield _sentence(", ".join(cell for cell in cells if cell))


def _sentence(text: str) -> str:
    """``text`` ending as a sentence, so that list items and cells read as sentences."""
    text = text.strip()
    return text if not text or text[-1] in ".!?:;" else f"{text}."
