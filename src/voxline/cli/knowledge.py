"""``voxline knowledge check``: read a knowledge file as the server would, say what it
holds, and show what a few questions would retrieve and how they score against the
thresholds that decide what is said (docs/knowledge.md, "How questions are matched")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

from voxline.engines import related_words
from voxline.engines.knowledge import (
    GOOD_ENOUGH,
    PLAUSIBLE,
    KnowledgeBase,
    KnowledgeFileError,
    Passage,
    QuestionAnswer,
    read_file,
    words,
)

app = typer.Typer(no_args_is_help=True)

SAMPLES: Final = 5


def paraphrase(question: str) -> str:
    """``question`` as a caller might say it and speech recognition hand it over: lower
    case, unpunctuated, a word replaced by a related one ("hours" by "open")."""
    said = words(question)
    for i, word in enumerate(said):
        if others := related_words.related(word):
            said[i] = sorted(others)[0]
            break
    return " ".join(said)


def _verdict(kb: KnowledgeBase, question: str) -> str:
    if hits := kb.search(question, k=1, min_score=0):
        hit = hits[0]
        if hit.score >= GOOD_ENOUGH:
            return f"answers   {hit.score:.2f}  {hit.source or hit.text[:60]}"
        if (candidate := kb.candidate(question)) is not None:
            return f"checks    {candidate.score:.2f}  {candidate.source or candidate.text[:60]}"
        return f"not known {hit.score:.2f}  (best: {hit.source or hit.text[:60]})"
    return "not known 0.00"


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="A knowledge file: .json, .md, .markdown or .txt.")],
    ask: Annotated[
        list[str] | None,
        typer.Option(
            help="A question to try, repeatable (default: a few of the file's own, paraphrased)."
        ),
    ] = None,
) -> None:
    """Check a knowledge file and show what questions would retrieve from it."""
    try:
        model, _ = read_file(file.expanduser().resolve())
    except KnowledgeFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    kb = KnowledgeBase(model.entries, name=model.name, greeting=model.greeting, menu=model.menu)
    questions = [e for e in model.entries if isinstance(e, QuestionAnswer)]
    passages = [e for e in model.entries if isinstance(e, Passage)]
    typer.echo(f"{file}: valid")
    typer.echo(f"  name:      {model.name or '(none)'}")
    typer.echo(f"  greeting:  {model.greeting or '(none)'}")
    typer.echo(
        f"  entries:   {len(questions)} questions "
        f"({sum(len(e.alternates) for e in questions)} alternates), {len(passages)} passages"
    )
    for passage in passages:
        typer.echo(f"    passage: {passage.title or '(untitled)'} ({len(passage.passage)} chars)")
    menu = ", ".join(f"{key} {item.label}" for key, item in model.menu.items())
    typer.echo(f"  menu:      {menu or '(none)'}")
    samples = ask or [paraphrase(e.question) for e in questions[:SAMPLES]]
    if not samples:
        return
    typer.echo(
        f"questions (answers from {GOOD_ENOUGH:.2f}, checks with the caller from {PLAUSIBLE:.2f}):"
    )
    for question in samples:
        typer.echo(f"  {question!r}")
        typer.echo(f"    {_verdict(kb, question)}")
