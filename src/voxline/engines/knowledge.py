"""What the agent knows: a local knowledge file, and a session's ``kb_endpoint``.

A knowledge file is JSON (the format, with an example, is in ``docs/knowledge.md``), or
Markdown or plain text read into the same structure (``knowledge_formats``)::

    {
      "name": "Acme Dental",                       # optional: the business, for spoken lines
      "greeting": "Thanks for calling Acme Dental.",  # optional: when configure sets none
      "entries": [
        {"question": "What are your hours?", "alternates": ["When are you open?"],
         "answer": "We're open nine to five, Monday to Friday."},
        {"title": "Emergencies", "passage": "If you have a dental emergency, ..."}
      ],
      "menu": {
        "1": {"label": "our opening hours", "answer": "We're open nine to five."},
        "0": {"label": "a member of our team", "action": "transfer_to_human"}
      }
    }

Retrieval is BM25 (``bm25s``) over each entry's words and their character trigrams, so that
inflections ("cancelling", "cancellation") and the near misses of speech recognition
("appoint meant", "wear are you") still match. Scores are normalised by what the query
itself could score (every query term matched once in an average entry; terms the file has
never seen count at full weight): roughly the share of the question the entry accounts for,
comparable from one question to the next, so that fixed thresholds can be calibrated.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

import bm25s
import httpx
import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)

from voxline.engines import related_words
from voxline.engines.knowledge_formats import (
    SUFFIXES,
    FormatError,
    Parsed,
    did_you_mean,
    json_line,
    parse,
)

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG when imported

GOOD_ENOUGH: Final = 0.18
"""Normalised score from which a knowledge-file hit is trusted as the answer. On the example
file, 64 of 68 paraphrased or misheard questions reach it on the right entry, and 24 of 26
off-topic ones stay under it (tests/engines/test_knowledge.py)."""

PLAUSIBLE: Final = 0.1
"""Below :data:`GOOD_ENOUGH` but from here, a hit is worth checking with the caller: a
question lost in chatter ("I'm calling because...") or badly misheard lands here, and so do
some off-topic ones, so the responder asks rather than answers."""

ENDPOINT_GOOD_ENOUGH: Final = 0.05
"""Bar for the best sentence of the ``kb_endpoint`` passages (scored among their sentences
only, so lower than a file entry's): the endpoint has already chosen them for the question,
so some real overlap is enough, while the passages an endpoint returns for an off-topic
question share little more than fragments with it (measured below 0.04)."""

RELATED_WEIGHT: Final = 0.3
"""How much a related word counts ("shut" for "close"), against the word itself."""

NGRAM: Final = 3
MAX_EXCERPT_SENTENCES: Final = 2
SHORT_SENTENCE_WORDS: Final = 8

# Function words of spoken questions, apostrophes removed ("what's" is "whats"). Question
# words that tell answers apart ("where", "when", "much") are kept.
_STOPWORDS: Final = frozenset(
    """a about after again all also am an and any anyone anything are as ask asking at be been
    being but by can could did do does doing for from get going gonna got guys had has have
    hello help hey hi how i id if ill im in into is it its ive just know let like may me might
    my need of oh ok okay on or our please question questions really right should so some
    somebody someone tell than thank thanks that thats the their them then there theres these
    they this to uh um us very wanna want wanted was we well were what whats which who will
    with wonder wondering would yeah yes you youd youll your youre yours""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|St|Ave|No|Inc|Ltd|vs|etc|approx|[ap]\.m)\.$")


def words(text: str) -> list[str]:
    """Lower-case ASCII words, apostrophes dropped (so "what's" and "whats" agree)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _WORD.findall(folded.lower().replace("'", ""))


def terms(text: str) -> list[str]:
    """Index terms: each content word (``w:`` prefixed) and its padded character trigrams."""
    out: list[str] = []
    for word in words(text):
        if word in _STOPWORDS:
            continue
        padded = f"#{word}#"
        out.append(f"w:{word}")
        out.extend(padded[i : i + NGRAM] for i in range(len(padded) - NGRAM + 1))
    return out


def sentences(text: str) -> list[str]:
    """Split prose into sentences, not after common abbreviations ("Dr. Patel")."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREVIATION.search(text[start : match.start()]):
            continue
        out.append(text[start : match.start()].strip())
        start = match.end()
    out.append(text[start:].strip())
    return [sentence for sentence in out if sentence]


class _Index:
    """BM25 over a handful to a few thousand short texts, with normalised scores."""

    def __init__(self, texts: Sequence[str]) -> None:
        docs = [terms(text) for text in texts]
        self._size = len(docs)
        self._df = Counter(term for doc in docs for term in set(doc))
        self._bm25 = bm25s.BM25() if self._df else None  # bm25s needs one term at least
        if self._bm25 is not None:
            self._bm25.index(docs, show_progress=False)

    def _idf(self, term: str) -> float:
        df = self._df.get(term, 0)
        return math.log(1 + (self._size - df + 0.5) / (df + 0.5))

    def scores(self, query: str, *, related: bool = False) -> npt.NDArray[np.float64]:
        """Normalised scores of every text for ``query``; with ``related``, each content
        word of the query that a text lacks may be met by a related word of it, for
        :data:`RELATED_WEIGHT` of what the word itself would have scored."""
        query_terms = terms(query)
        if self._bm25 is None or not query_terms:
            return np.zeros(self._size)
        known = self._bm25.get_tokens_ids(query_terms)
        raw = (
            np.asarray(self._bm25.get_scores_from_ids(known), dtype=np.float64)
            if known
            else np.zeros(self._size)
        )
        if related:
            raw += RELATED_WEIGHT * self._related(query_terms)
        return raw / sum(self._idf(term) for term in query_terms)

    def _related(self, query_terms: list[str]) -> npt.NDArray[np.float64]:
        """Per text, the best related word's score for each query word, summed."""
        assert self._bm25 is not None
        asked = {term for term in query_terms if term.startswith("w:")}
        extra = np.zeros(self._size)
        for term in asked:
            others = [
                f"w:{word}" for word in related_words.related(term[2:]) if f"w:{word}" not in asked
            ]
            per_word = [
                np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)
                for other in others
                if other in self._df
                and (
                    ids := self._bm25.get_tokens_ids([t for t in terms(other[2:]) if t in self._df])
                )
            ]
            if per_word:
                extra += np.max(per_word, axis=0)
        return extra


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved answer: ``text`` is what to say, ``source`` the entry's question or title."""

    text: str
    score: float
    kind: Literal["answer", "passage"]
    source: str = ""


class _Sentences:
    """The sentences of some passages, indexed to pick the few that answer a question."""

    def __init__(self, passages: Sequence[str]) -> None:
        self._located = [(i, s) for i, passage in enumerate(passages) for s in sentences(passage)]
        self._index = _Index([s for _, s in self._located]) if self._located else None

    def excerpt(self, query: str) -> Hit | None:
        """The best sentence, with the next best of the same passage when it scores at least
        half as well (or the one after it when the best is too short to stand alone), in
        the passage's order. ``None`` when nothing overlaps the query at all."""
        if self._index is None:
            return None
        located = self._located
        scores = self._index.scores(query)
        best = int(np.argmax(scores))
        if scores[best] <= 0:
            return None
        passage = located[best][0]
        chosen = [best]
        for other in np.argsort(-scores, kind="stable")[1:]:
            if len(chosen) == MAX_EXCERPT_SENTENCES or scores[other] < scores[best] / 2:
                break
            if located[other][0] == passage:
                chosen.append(int(other))
        following = best + 1
        if (
            len(chosen) == 1
            and len(located[best][1].split()) < SHORT_SENTENCE_WORDS
            and following < len(located)
            and located[following][0] == passage
        ):
            chosen.append(following)
        text = " ".join(located[i][1] for i in sorted(chosen))
        return Hit(text, float(scores[best]), "passage")


def best_excerpt(query: str, passages: Sequence[str]) -> Hit | None:
    """The one or two sentences of ``passages`` that best answer ``query``, if any."""
    return _Sentences(passages).excerpt(query)


# ---- the knowledge file -----------------------------------------------------------------

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Key = Annotated[str, StringConstraints(pattern=r"^[0-9*#A-D]{1,8}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuestionAnswer(_Strict):
    question: _Text
    answer: _Text
    alternates: tuple[_Text, ...] = ()


class Passage(_Strict):
    passage: _Text
    title: str = ""


class MenuItem(_Strict):
    """A keypad choice: an answer to speak, or a call-control action (with an optional
    line to say first)."""

    label: _Text
    answer: _Text | None = None
    action: Literal["transfer_to_human", "end_call"] | None = None
    say: _Text | None = None

    @model_validator(mode="after")
    def _answer_or_action(self) -> Self:
        if (self.answer is None) == (self.action is None):
            raise ValueError("a menu item needs exactly one of answer or action")
        return self


def _entry_kind(value: Any) -> str:
    """A passage has a ``passage`` (or a ``title``); anything else is read as a question, so
    that errors name the fields of the one the author meant."""
    keys = value if isinstance(value, dict) else vars(value)
    return "passage" if "passage" in keys or "title" in keys else "question"


_Entry = Annotated[
    Annotated[QuestionAnswer, Tag("question")] | Annotated[Passage, Tag("passage")],
    Discriminator(_entry_kind),
]


class KnowledgeFile(_Strict):
    """The JSON format of a knowledge file (``docs/knowledge.schema.json`` is its schema)."""

    model_config = ConfigDict(
        title="voxline knowledge file",
        json_schema_extra={"description": "What the default agent answers callers from."},
    )

    name: _Text | None = Field(None, description="The business, used in spoken lines.")
    greeting: _Text | None = Field(None, description="Spoken when configure sets no greeting.")
    entries: tuple[_Entry, ...] = Field((), description="Question/answer entries and passages.")
    menu: dict[_Key, MenuItem] = Field(
        default_factory=dict, description="The keypad menu: keys 0-9, *, # or A-D."
    )


_MODELS: Final[dict[str, type[BaseModel]]] = {
    "question": QuestionAnswer,
    "passage": Passage,
    "menu": MenuItem,
    "": KnowledgeFile,
}


class KnowledgeFileError(ValueError):
    """The knowledge file cannot be read or does not follow the format."""


class KnowledgeBase:
    """A knowledge file, indexed once and shared by every session (read-only)."""

    def __init__(
        self,
        entries: Sequence[QuestionAnswer | Passage],
        *,
        name: str | None = None,
        greeting: str | None = None,
        menu: dict[str, MenuItem] | None = None,
        related: bool = True,
    ) -> None:
        self.entries = tuple(entries)
        self.name = name
        self.greeting = greeting
        self.menu = dict(menu or {})
        self._related = related
        texts = [_indexed_text(entry) for entry in self.entries]
        self._index = _Index(texts) if texts else None
        self._words = [frozenset(words(text)) for text in texts]
        self._passages = {
            i: _Sentences([entry.passage])
            for i, entry in enumerate(self.entries)
            if isinstance(entry, Passage)
        }

    @classmethod
    def from_dict(cls, data: Any) -> KnowledgeBase:
        try:
            parsed = KnowledgeFile.model_validate(data)
        except ValidationError as exc:
            raise KnowledgeFileError(_summary(exc)) from exc
        return cls(parsed.entries, name=parsed.name, greeting=parsed.greeting, menu=parsed.menu)

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeBase:
        """Read and index ``path`` (JSON, Markdown or plain text, by its extension); a file
        unchanged since its last load is not re-indexed."""
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError as exc:
            raise KnowledgeFileError(f"{path}: {exc.strerror}") from exc
        return _load(resolved, stat.st_mtime_ns, stat.st_size)

    def search(self, query: str, k: int = 3, *, min_score: float = GOOD_ENOUGH) -> list[Hit]:
        """The best ``k`` entries for ``query`` scoring at least ``min_score``, best first.
        A passage's hit carries its most relevant sentences, not the whole passage."""
        if self._index is None:
            return []
        scores = self._index.scores(query, related=self._related)
        hits: list[Hit] = []
        for i in np.argsort(-scores, kind="stable")[:k]:
            if scores[i] < min_score or scores[i] <= 0:
                break
            hits.append(self._hit(int(i), float(scores[i]), query))
        return hits

    def candidate(self, query: str) -> Hit | None:
        """The entry to check with the caller when no hit is good enough: the best one from
        :data:`PLAUSIBLE`, if it has a content word of the query verbatim (without one, it
        is most often an off-topic question matching fragments of words)."""
        if self._index is None:
            return None
        scores = self._index.scores(query, related=self._related)
        best = int(np.argmax(scores))
        asked = {word for word in words(query) if word not in _STOPWORDS}
        if scores[best] < PLAUSIBLE or not asked & self._words[best]:
            return None
        return self._hit(best, float(scores[best]), query)

    def _hit(self, i: int, score: float, query: str) -> Hit:
        entry = self.entries[i]
        if isinstance(entry, QuestionAnswer):
            return Hit(entry.answer, score, "answer", entry.question)
        excerpt = self._passages[i].excerpt(query)
        text = excerpt.text if excerpt is not None else sentences(entry.passage)[0]
        return Hit(text, score, "passage", entry.title)


def _summary(
    error: ValidationError, most: int = 3, line_of: Callable[[Loc], int | None] | None = None
) -> str:
    """Where the knowledge is wrong and why, in a line (without the values: they may be
    long, or secret): the line, when ``line_of`` finds it, and the key meant for a
    misspelt one."""
    problems: list[str] = []
    for problem in error.errors(include_url=False, include_input=False):
        loc = _untagged(problem["loc"])
        where = ".".join(map(str, loc)) or "the knowledge"
        line = line_of(loc) if line_of is not None else None
        if line is not None:
            where = f"line {line}: {where}"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = (
                f"unknown key `{loc[-1]}`{did_you_mean(str(loc[-1]), _known_keys(problem['loc']))}"
            )
        problems.append(f"{where}: {message}")
    more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
    return "; ".join(problems[:most]) + more


Loc = tuple[str | int, ...]


def _untagged(loc: Sequence[str | int]) -> Loc:
    """An error's location without the union's tag (``entries.0.question.anwser`` is
    ``entries.0.anwser``)."""
    if len(loc) > 2 and loc[0] == "entries" and loc[2] in ("question", "passage"):
        return (*loc[:2], *loc[3:])
    return tuple(loc)


def _known_keys(loc: Sequence[str | int]) -> list[str]:
    """The keys allowed where the unknown key at ``loc`` is."""
    if len(loc) > 3 and loc[0] == "entries":
        model = _MODELS[str(loc[2])]
    elif len(loc) > 2 and loc[0] == "menu":
        model = _MODELS["menu"]
    else:
        model = _MODELS[""]
    return list(model.model_fields)


def _indexed_text(entry: QuestionAnswer | Passage) -> str:
    if isinstance(entry, QuestionAnswer):
        return " ".join((entry.question, *entry.alternates, entry.answer))
    return f"{entry.title} {entry.passage}"


def read_file(path: Path) -> tuple[KnowledgeFile, Parsed]:
    """The knowledge file at ``path``, checked, and what it was read as. Raises
    :class:`KnowledgeFileError`, naming the path and, when known, the line."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise KnowledgeFileError(
            f"{path}: a knowledge file is .json, .md, .markdown or .txt, "
            f"not {path.suffix or 'without an extension'}"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        raise KnowledgeFileError(f"{path}: not readable: {exc}") from exc
    try:
        parsed = parse(kind, text)
    except FormatError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else str(path)
        raise KnowledgeFileError(f"{where}: {exc}") from exc
    try:
        model = KnowledgeFile.model_validate(parsed.data)
    except ValidationError as exc:
        line_of = functools.partial(json_line, text) if kind == "json" else parsed.line_of
        raise KnowledgeFileError(f"{path}: {_summary(exc, line_of=line_of)}") from exc
    return model, parsed


@functools.lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, size: int) -> KnowledgeBase:
    model, _ = read_file(path)
    return KnowledgeBase(model.entries, name=model.name, greeting=model.greeting, menu=model.menu)


# ---- kb_endpoint ------------------------------------------------------------------------

MAX_RESPONSE_BYTES: Final = 256 * 1024
MAX_PASSAGES: Final = 8
MAX_PASSAGE_CHARS: Final = 4000


class _BadResponse(ValueError):
    pass


class KbEndpoint:
    """A session's ``kb_endpoint``: one POST per caller turn, within a hard time budget,
    failing open (no passages) so that the conversation never waits on it."""

    def __init__(
        self, url: str, token: str | None, *, timeout: float = 0.3, client: httpx.AsyncClient
    ) -> None:
        self._url = url
        self._token = token
        self._timeout = timeout
        self._client = client
        self._failing = False
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        self._where = f"{parts.scheme}://{parts.hostname}{port}{parts.path}"  # for logs only

    async def fetch(self, query: str, *, session_label: str, agent_id: str) -> list[str]:
        """Passages for ``query``, best first; ``[]`` on any failure or when over budget."""
        if not query.strip():
            return []
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        body = {"session_label": session_label, "agent_id": agent_id, "query": query}
        try:
            async with asyncio.timeout(self._timeout):
                passages = await self._post(body, headers)
        except TimeoutError:
            self._failed(f"no answer within {self._timeout * 1000:.0f} ms")
            return []
        except httpx.HTTPStatusError as exc:
            self._failed(f"answered HTTP {exc.response.status_code}")
            return []
        except _BadResponse as exc:
            self._failed(str(exc))
            return []
        except Exception as exc:  # fail open, whatever went wrong (connection, decoding, ...)
            self._failed(f"request failed ({type(exc).__name__})")
            return []
        self._failing = False
        return passages

    async def _post(self, body: dict[str, str], headers: dict[str, str]) -> list[str]:
        request = self._client.build_request(
            "POST", self._url, json=body, headers=headers, timeout=self._timeout
        )
        response = await self._client.send(request, stream=True)
        try:
            response.raise_for_status()
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise _BadResponse(f"response over {MAX_RESPONSE_BYTES} bytes")
        finally:
            await response.aclose()
        content_type = response.headers.get("content-type", "")
        return _parse_passages(bytes(data), content_type, response.encoding or "utf-8")

    def _failed(self, why: str) -> None:
        """Warn once per outage (the first failure after a success), not once per turn."""
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "kb_endpoint %s %s; going on without knowledge", self._where, why)
        self._failing = True


def _parse_passages(body: bytes, content_type: str, encoding: str = "utf-8") -> list[str]:
    """Passages from any response shape docs/knowledge.md ("kb_endpoint") allows:
    ``{"context": str}``, ``{"results": [{"content"|"text": str}]}``,
    ``{"passages": [str | {...}]}``, a JSON list or string, or a plain-text body. Raises
    :class:`_BadResponse` for JSON that does not parse or has none of these shapes."""
    text = body.decode(encoding, errors="replace").strip()
    if "json" not in content_type.lower() and not text.startswith(("{", "[")):
        return _clean([text])
    try:
        data = json.loads(text) if text else None
    except ValueError as exc:
        raise _BadResponse("sent a body that is not valid JSON") from exc
    if isinstance(data, dict):
        items: list[Any] = []
        for key in ("results", "passages"):
            if isinstance(data.get(key), list):
                items.extend(data[key])
        if isinstance(data.get("context"), str):
            items.append(data["context"])
        if not items and not any(key in data for key in ("results", "passages", "context")):
            raise _BadResponse("sent JSON with no context, results or passages")
        return _clean(items)
    if isinstance(data, list | str):
        return _clean(data if isinstance(data, list) else [data])
    raise _BadResponse("sent JSON with no context, results or passages")


def _clean(items: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for item in items:
        text = item
        if isinstance(item, dict):
            text = next((item[k] for k in ("content", "text") if isinstance(item.get(k), str)), "")
        if isinstance(text, str) and (text := " ".join(text.split())) and text not in out:
            out.append(text[:MAX_PASSAGE_CHARS])
        if len(out) == MAX_PASSAGES:
            break
    return out
