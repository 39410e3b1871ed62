"""``voxline bench``: N concurrent synthetic callers; latency, frame lag, server CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voxline.auth.keys import KeyStore
from voxline.bench.load import (
    CallerResult,
    Clip,
    Interjection,
    noise_burst,
    on_line,
    percentile,
    run_caller,
)
from voxline.bench.process import redis_server, serve_process
from voxline.bench.speech import synthesize
from voxline.cli.options import configure_fields
from voxline.eval.wer import word_errors
from voxline.store.database import Database

QUESTIONS = (
    "What are your opening hours?",
    "Which insurance plans do you accept?",
    "Hello, could you tell me where you are located?",
    "Is there parking near the office?",
    "Are you open on Saturday?",
    "Can I get there by bus?",
    "Do you see children?",
    "I'd like to talk to a person, please.",
)
"""What the synthetic callers ask (the example dental office's knowledge file answers them)."""
PLAN = (Interjection.LISTEN, Interjection.LISTEN, Interjection.INTERRUPT, Interjection.NOISE)
"""What each caller does while the agent answers its turns, in a cycle."""
RATE = 24000


@dataclass
class ProcessSample:
    cpu_seconds: float
    rss_bytes: int


def sample_process(pid: int) -> ProcessSample:
    """CPU time (user + system) and resident memory of a local process with its children
    (the server's inference process), those that ended included in the CPU time."""
    process = psutil.Process(pid)
    with process.oneshot():
        times = process.cpu_times()
        cpu = times.user + times.system + times.children_user + times.children_system
        rss = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            cpu, rss = cpu + times.user + times.system, rss + child.memory_info().rss
    return ProcessSample(cpu, rss)


def sample_processes(pids: list[int]) -> ProcessSample:
    """:func:`sample_process` of several servers (the nodes of a run), added up."""
    samples = [sample_process(pid) for pid in pids]
    return ProcessSample(sum(s.cpu_seconds for s in samples), sum(s.rss_bytes for s in samples))


@dataclass
class OwnServers:
    """The servers a run started: their URLs (callers are spread over them in turn), the
    key they all accept, and their process ids."""

    urls: list[str]
    key: str
    pids: list[int]


@contextmanager
def _own_servers(
    agent: str,
    sessions: int,
    knowledge: Path | None,
    workers: int,
    nodes: int,
    database_url: str | None,
) -> Iterator[OwnServers]:
    """Fresh ``voxline serve`` nodes on loopback with limits sized for the run, each with a
    data directory of its own; several nodes or workers share a private ``redis-server``,
    and several nodes one database (``database_url``, else an SQLite file of the run)."""
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voxline-bench-")))
        database = database_url or f"sqlite:///{data_dir / 'voxline.db'}"
        db = Database(database)
        _, key = KeyStore(db).create(
            env="live", scopes=["omni:session"], label="bench", concurrency=sessions + 10
        )
        db.close()
        connects = str(sessions * 10 + 100)
        env = {
            "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": connects,
            "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_ADDRESS": connects,
            "VOXLINE_DATABASE_URL": database,
        }
        args = ["--log-level", "warning"]
        if knowledge is not None:
            args += ["--knowledge", str(knowledge)]
        if workers > 1:
            args += ["--workers", str(workers)]
        if workers > 1 or nodes > 1:
            args += ["--redis-url", stack.enter_context(redis_server(data_dir))]
        started = [
            stack.enter_context(
                serve_process(
                    data_dir / f"node-{index + 1}",
                    agent=agent,
                    args=[*args, "--node", f"node-{index + 1}"],
                    env=env,
                )
            )
            for index in range(nodes)
        ]
        yield OwnServers(
            [server.url for server in started], key, [server.process.pid for server in started]
        )


async def _run(
    urls: list[str],
    key: str,
    sessions: int,
    ramp: float,
    duration: float,
    pids: list[int],
    configure: dict[str, Any],
    *,
    idle: bool,
    console: Console,
) -> dict[str, Any]:
    questions = (
        [] if idle else [on_line(Clip.of(synthesize(text, RATE), text)) for text in QUESTIONS]
    )
    noise = on_line(noise_burst(RATE))
    before = sample_processes(pids) if pids else None
    idle_rss = before.rss_bytes if before else None
    client_before = os.times()
    started = time.monotonic()
    results = [CallerResult() for _ in range(sessions)]
    callers = asyncio.gather(
        *(
            run_caller(
                urls[index % len(urls)],
                key,
                questions[index % n :] + questions[: index % n] if (n := len(questions)) else [],
                rate=RATE,
                duration=duration,
                plan=PLAN,
                noise=noise,
                configure=configure,
                start_delay=ramp * index / max(1, sessions),
                result=result,
            )
            for index, result in enumerate(results)
        )
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        peak_rss = await _watch(callers, results, pids, progress, ramp + duration)
    await callers
    wall = time.monotonic() - started
    client_after = os.times()
    after = sample_processes(pids) if pids else None
    measures = {
        "hello_ms": [r.hello for r in results if r.hello is not None],
        "ttfb_ms": [t for r in results for t in r.ttfb],
        # A finished question may end its turn sooner than a statement (see TurnSettings).
        "ttfb_questions_ms": _ttfb_of(results, lambda text: text.endswith("?")),
        "ttfb_statements_ms": _ttfb_of(results, lambda text: not text.endswith("?")),
        "barge_in_ms": [t for r in results for t in r.barge_in],
        "frame_lag_ms": [t for r in results for t in r.frame_lag],
    }
    for stage in sorted({stage for r in results for stage in r.stages}):
        measures[f"server_{stage}_ms"] = [t for r in results for t in r.stages.get(stage, [])]
    counts = {
        name: sum(getattr(r, name) for r in results)
        for name in (
            "questions",
            "replies",
            "unanswered",
            "interruptions",
            "missed_barge_ins",
            "noise_bursts",
            "false_barge_ins",
        )
    }
    report: dict[str, Any] = {
        "sessions": sessions,
        "duration_s": duration,
        "configure": configure,
        "wall_s": round(wall, 2),
        **counts,
        "errors": sorted({r.error for r in results if r.error}),
        "unclean_closes": sum(1 for r in results if r.close_code not in (1000, None)),
        **{
            name: {q: _ms(percentile(values, q)) for q in (50, 95, 99)}
            for name, values in measures.items()
        },
        "frames": len(measures["frame_lag_ms"]),
        "client_cpu_fraction": round(
            (client_after.user + client_after.system - client_before.user - client_before.system)
            / wall,
            3,
        ),
    }
    heard = [pair for r in results for pair in r.heard]
    if heard:  # an agent that transcribes: how well it heard the callers' questions
        errors = [word_errors(question, transcript) for question, transcript in heard]
        report["caller_wer"] = round(
            sum(e.errors for e in errors) / sum(e.words for e in errors), 4
        )
        report["transcripts"] = len(heard)
    if before and after:
        report["server_cpu_fraction"] = round((after.cpu_seconds - before.cpu_seconds) / wall, 3)
        report["server_rss_mib"] = round(after.rss_bytes / 2**20, 1)
        report["server_idle_rss_mib"] = round((idle_rss or 0) / 2**20, 1)
        report["server_peak_rss_mib"] = round(peak_rss / 2**20, 1)
        report["rss_per_session_kib"] = round((peak_rss - (idle_rss or 0)) / sessions / 1024, 1)
    return report


async def _watch(
    callers: asyncio.Future[list[CallerResult]],
    results: list[CallerResult],
    pids: list[int],
    progress: Progress,
    seconds: float,
) -> int:
    """Show how the run goes, once a second, until the callers are done; returns the
    servers' peak resident memory meanwhile (0 without ``pids``)."""
    task = progress.add_task("connecting", total=seconds)
    start = last_at = time.monotonic()
    last = sample_processes(pids) if pids else None
    peak = last.rss_bytes if last else 0
    while not callers.done():
        await asyncio.wait({callers}, timeout=1.0)
        now = time.monotonic()
        line = (
            f"{sum(r.connected for r in results)}/{len(results)} connected, "
            f"{sum(r.questions for r in results)} questions, "
            f"{sum(r.replies for r in results)} replies"
        )
        if pids and last:
            sample = sample_processes(pids)
            cpu = (sample.cpu_seconds - last.cpu_seconds) / max(now - last_at, 1e-3)
            line += f"; server {cpu:.2f} cores, {sample.rss_bytes / 2**20:.0f} MiB"
            peak = max(peak, sample.rss_bytes)
            last, last_at = sample, now
        progress.update(task, completed=min(now - start, seconds), description=line)
    return peak


def _ttfb_of(results: list[CallerResult], chosen: Callable[[str], bool]) -> list[float]:
    return [t for r in results for text, ts in r.ttfb_by_text.items() if chosen(text) for t in ts]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def bench(
    url: Annotated[
        list[str] | None,
        typer.Option(help="server to load (repeat for several nodes); default: start one"),
    ] = None,
    key: Annotated[str | None, typer.Option(envvar="VOXLINE_API_KEY", help="key for --url")] = None,
    sessions: Annotated[int, typer.Option(min=1, help="concurrent callers")] = 10,
    ramp: Annotated[float, typer.Option(min=0, help="seconds over which callers join")] = 5.0,
    duration: Annotated[float, typer.Option(min=1, help="seconds each caller talks")] = 20.0,
    agent: Annotated[str, typer.Option(help="agent of the server started here")] = "echo",
    workers: Annotated[
        int,
        typer.Option(min=1, help="processes of each server started here (with a private Redis)"),
    ] = 1,
    nodes: Annotated[
        int,
        typer.Option(
            min=1,
            help="servers started here, sharing a private Redis and one database; "
            "callers are spread over them in turn",
        ),
    ] = 1,
    database_url: Annotated[
        str | None,
        typer.Option(help="database of the servers started here; default: an SQLite file"),
    ] = None,
    server_pid: Annotated[
        list[int] | None, typer.Option(help="pid of each --url's server, for CPU")
    ] = None,
    knowledge: Annotated[
        Path | None, typer.Option(help="knowledge file for the default agent started here")
    ] = None,
    configure: Annotated[
        str, typer.Option(help='configure frame each caller sends, as JSON: {"metrics": true}')
    ] = "{}",
    idle: Annotated[
        bool, typer.Option(help="callers only keep a quiet line open: what idle sessions cost")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
) -> None:
    """Load a server, or several nodes, with concurrent real-time callers and report
    latency and cost.

    The callers run on uvloop, as the server does: the load generator shares the machine's
    cores with the server, so its own cost matters."""
    console = Console(stderr=True)
    settings = configure_fields(configure)
    if not url:
        with _own_servers(agent, sessions, knowledge, workers, nodes, database_url) as own:
            processes = f" --workers {workers}" if workers > 1 else ""
            spread = f" × {nodes} nodes" if nodes > 1 else ""
            console.print(
                f"started voxline serve --agent {agent}{processes}{spread} "
                f"(pid {', '.join(map(str, own.pids))}) at {', '.join(own.urls)}"
            )
            report = uvloop.run(
                _run(
                    own.urls,
                    own.key,
                    sessions,
                    ramp,
                    duration,
                    own.pids,
                    settings,
                    idle=idle,
                    console=console,
                )
            )
        report["server_workers"] = workers
        report["nodes"] = nodes
    else:
        if key is None:
            raise typer.BadParameter("--key is needed with --url")
        if workers > 1 or nodes > 1 or database_url is not None:
            raise typer.BadParameter(
                "--workers, --nodes and --database-url are for the servers the bench starts, "
                "not --url"
            )
        report = uvloop.run(
            _run(
                url,
                key,
                sessions,
                ramp,
                duration,
                server_pid or [],
                settings,
                idle=idle,
                console=console,
            )
        )
        report["nodes"] = len(url)
    table = Table(title=f"{sessions} sessions, {duration:.0f} s each")
    table.add_column("measure")
    table.add_column("P50", justify="right")
    table.add_column("P95", justify="right")
    table.add_column("P99", justify="right")
    measures = [
        name for name, value in report.items() if name.endswith("_ms") and isinstance(value, dict)
    ]
    for name in measures:
        table.add_row(name, *(str(report[name][q]) for q in (50, 95, 99)))
    Console().print(table)
    extras = {k: v for k, v in report.items() if k not in measures}
    Console().print(extras)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2))
