"""``voxline eval stt``: speech-recognition accuracy and decode time on the evaluation set.

Its libraries (the ``eval`` extra) are imported only when it runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from voxline.eval.stt_eval import Result, Summary

app = typer.Typer(no_args_is_help=True)


def _table(title: str, summaries: list[Summary], group: str = "voice") -> Table:
    table = Table(title=title)
    for column in ("engine", group, "line", "n", "WER", "P50 s", "P95 s", "max s", "P95 3 s"):
        table.add_column(column, justify="left" if column in ("engine", group) else "right")
    for s in summaries:
        table.add_row(
            s.engine,
            s.voice,
            s.line,
            str(s.utterances),
            f"{100 * s.wer:.1f} %",
            f"{s.decode_p50:.2f}",
            f"{s.decode_p95:.2f}",
            f"{s.decode_max:.2f}",
            "-" if s.decode_p95_3s is None else f"{s.decode_p95_3s:.2f}",
        )
    return table


def _choose(names: list[str] | None, known: dict[str, object], what: str) -> list[str]:
    if not names:
        return list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise typer.BadParameter(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return names


@app.command("stt")
def stt(
    engine: Annotated[
        list[str] | None,
        typer.Option(
            help="MODEL[:beam=N,window=S,bias=on|off], repeatable: tiny.en, base, a model "
            "directory, or faster-whisper (tiny.en with the library's defaults)"
        ),
    ] = None,
    voice: Annotated[list[str] | None, typer.Option(help="voices to use (default: all)")] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(
            help="families of voices to use: espeak-ng, diphone, statistical, human, piper"
        ),
    ] = None,
    line: Annotated[
        list[str] | None, typer.Option(help="24k, 16k, 8k, 8k-ulaw (default: all)")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="only the first N utterances (and N recordings)")
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads per engine")] = 1,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write every figure and transcript here")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="rendered clips (default: the user cache directory)")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="print each transcript as it comes")] = False,
) -> None:
    """Word error rate and decode time of speech recognition, through the live session path,
    for synthetic voices of several families and a recorded human, on 24 kHz, 16 kHz and
    8 kHz (µ-law) lines."""
    from voxline.eval.stt_eval import EngineSpec, load_set, report, run, summarise
    from voxline.eval.voices import LINES, VOICES, cache_dir

    try:
        specs = [EngineSpec.parse(spec) for spec in engine or ["tiny.en", "tiny.en:bias=off"]]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    voices_by_name = {v.name: v for v in VOICES}
    families = {v.family: v for v in VOICES}
    lines_by_name = {item.name: item for item in LINES}
    chosen = set(_choose(family, dict(families), "family"))
    voices = [
        voices_by_name[n]
        for n in _choose(voice, dict(voices_by_name), "voice")
        if voices_by_name[n].family in chosen
    ]
    lines = [lines_by_name[n] for n in _choose(line, dict(lines_by_name), "line")]
    evalset = load_set()
    console = Console(stderr=True)

    def progress(result: Result) -> None:
        if verbose:
            mark = "" if result.errors == 0 else f"  [red]{result.errors} err[/]"
            console.print(
                f"{result.engine} {result.voice} {result.line} {result.id}: "
                f"{result.hypothesis!r} {result.decode_seconds:.2f} s{mark}"
            )

    results = asyncio.run(
        run(
            evalset,
            specs,
            voices,
            lines,
            cache=cache or cache_dir(),
            threads=threads,
            progress=progress,
            limit=limit,
        )
    )
    out = Console(width=120)
    out.print(_table("Speech recognition by voice", summarise(results)))
    out.print(_table("Speech recognition by family", summarise(results, by="family"), "family"))
    out.print(_table("Speech recognition, all voices", summarise(results, by="all")))
    if json_out is not None:
        json_out.write_text(json.dumps(report(results), indent=1) + "\n")
