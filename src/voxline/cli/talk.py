"""``voxline talk``: hold a conversation with a server, the caller's side played from WAVs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from voxline.audio.pcm import pcm16_samples
from voxline.audio.resample import resample
from voxline.cli.options import configure_fields
from voxline.client.sdk import (
    FRAME_MS,
    Closed,
    OmniClient,
    realtime_subprotocols,
    realtime_url,
)
from voxline.client.wav import read_wav, write_wav
from voxline.protocol.connect import RATES
from voxline.protocol.frames import Framing
from voxline.protocol.server_messages import AgentAudio, ServerEvent, audio_rate, close_meaning

END_TIMEOUT = 10.0  # seconds to wait for session_end and the close after session_ending
REPLY_START_TIMEOUT = 15.0  # seconds after the last WAV for the agent to start its reply
MAX_WAIT = 120.0  # seconds after the last WAV at most, however long the agent talks
WORDLESS_REPLY_QUIET = 1.0  # seconds without audio that end a reply without words (echo)
_ROLES = {"user": "user", "assistant": "agent"}
_STYLES = {
    "flush": "bold magenta",
    "barge_in": "bold magenta",
    "assistant_interrupted": "magenta",
    "error": "bold red",
    "warning": "yellow",
}


@dataclass(slots=True)
class _Segment:
    start: float
    pcm: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.rate)

    @property
    def end(self) -> float:
        return self.start + self.seconds


class AgentTrack:
    """The agent's audio as the caller heard it, on the caller's timeline (seconds since the
    first caller frame).

    Like a client's player, a chunk plays when it arrives or when the audio queued before it
    ends, whichever is later; a flush drops what has not played yet.
    """

    def __init__(self) -> None:
        self._segments: list[_Segment] = []

    @property
    def end(self) -> float:
        return self._segments[-1].end if self._segments else 0.0

    @property
    def speech_seconds(self) -> float:
        return sum(segment.seconds for segment in self._segments)

    def add(self, at: float, pcm: bytes, rate: int) -> None:
        if pcm:
            self._segments.append(_Segment(max(at, self.end), pcm, rate))

    def flush(self, at: float) -> None:
        while self._segments and self._segments[-1].start >= at:
            self._segments.pop()
        if self._segments and self._segments[-1].end > at:
            last = self._segments[-1]
            last.pcm = last.pcm[: 2 * round((at - last.start) * last.rate)]

    def render(self, rate: int, seconds: float) -> bytes:
        """PCM16 at ``rate`` lasting at least ``seconds``, silent where the agent was."""
        out = np.zeros(max(round(seconds * rate), round(self.end * rate)), dtype=np.int16)
        for segment in self._segments:
            begin = round(segment.start * rate)
            samples = resample(pcm16_samples(segment.pcm), segment.rate, rate)[: len(out) - begin]
            out[begin : begin + len(samples)] = samples
        return out.astype("<i2").tobytes()


class Display:
    """One line per server event, transcripts as ``user:``/``agent:`` lines (finals bold).

    On a terminal the current partial transcripts show in place below the log; elsewhere
    they are printed dimmed.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._partials: dict[str, Text] = {}
        self._live = (
            Live(console=console, transient=True, auto_refresh=False)
            if console.is_terminal
            else None
        )

    def __enter__(self) -> Display:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()

    def event(self, at: float, event: ServerEvent) -> None:
        if event.name == "transcript":
            self._transcript(at, event.data)
            return
        style = _STYLES.get(event.name)
        line = Text.assemble(_stamp(at), (event.name, style or "bold"))
        if event.data:
            body = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
            line.append(" " + body, style=style or "")
        self.console.print(line, soft_wrap=True)

    def _transcript(self, at: float, data: dict[str, Any]) -> None:
        role = _ROLES.get(str(data.get("role")), str(data.get("role")))
        final = data.get("final") is True
        line = Text.assemble(
            _stamp(at),
            (f"{role}: ", "bold cyan" if role == "agent" else "bold green"),
            (str(data.get("text", "")), "bold" if final else "dim"),
        )
        in_place = not final and self._live is not None
        if in_place:
            self._partials[role] = line
        else:
            self._partials.pop(role, None)
        if self._live is not None:
            self._live.update(Group(*self._partials.values()), refresh=True)
        if not in_place:
            self.console.print(line, soft_wrap=True)


def _stamp(at: float) -> Text:
    return Text(f"{at:7.2f}s  ", style="dim")


class Replies:
    """When the agent's replies start and end, from what the server sends (docs/protocol.md):
    a reply starts with ``turn``, and is over once its final assistant ``transcript`` comes
    (sent when its audio has all been played out), or a ``flush`` (the caller interrupted
    it); a reply without words (the echo agent's) once its audio has stopped."""

    def __init__(self) -> None:
        self.speaking = False
        self.last_start = -1.0
        self._worded = False
        self._last_audio = 0.0

    def event(self, at: float, event: ServerEvent) -> None:
        if event.name == "turn":
            self.speaking, self._worded, self.last_start = True, False, at
            self._last_audio = at
        elif event.name == "flush":
            self.speaking = False
        elif event.name == "transcript" and event.data.get("role") == "assistant":
            self._worded = True
            if event.data.get("final") is True:
                self.speaking = False

    def audio(self, at: float) -> None:
        self._last_audio = at

    def answered(self, since: float, now: float) -> bool:
        """Whether the agent has replied to what the caller said up to ``since`` and is done
        (or has not started a reply in time, or has talked too long)."""
        if self.speaking and not self._worded and now - self._last_audio >= WORDLESS_REPLY_QUIET:
            self.speaking = False
        if now - since >= MAX_WAIT:
            return True
        if self.speaking:
            return False
        return self.last_start >= since or now - since >= REPLY_START_TIMEOUT


@dataclass(frozen=True, slots=True)
class Outcome:
    closed: Closed
    started: bool
    out_rate: int
    agent: AgentTrack
    error: ServerEvent | None
    caller_seconds: float
    """How long the caller's side of the call lasted, silence after the WAVs included."""


async def converse(
    client: OmniClient, caller: bytes, display: Display, *, until_answered: bool = True
) -> Outcome:
    """Stream ``caller`` in real time, then (``until_answered``) silence until the agent's
    reply to it is over, then end the session, while showing what comes back and recording
    the agent's audio; returns once the connection has closed."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    replies = Replies()
    caller_seconds = 0.0

    async def speak() -> None:
        nonlocal caller_seconds
        with contextlib.suppress(ConnectionClosed):
            await client.send_audio(caller, realtime=True)
            said = loop.time() - start
            sent = len(caller)
            silence = bytes(2 * client.rate * FRAME_MS // 1000)
            while until_answered and not replies.answered(said, loop.time() - start):
                await client.send_audio(silence, realtime=True)
                sent += len(silence)
            caller_seconds = sent / (2 * client.rate)
            try:
                async with asyncio.timeout(END_TIMEOUT):
                    await client.end()
            except TimeoutError:
                display.console.print("the server did not end the session; closing", style="yellow")
                await client.close()

    agent = AgentTrack()
    out_rate = client.rate
    error: ServerEvent | None = None
    started = False
    closed = Closed(1006, "")
    async with asyncio.TaskGroup() as tasks:
        speaker = tasks.create_task(speak())
        async for item in client.events():
            at = loop.time() - start
            if isinstance(item, AgentAudio):
                agent.add(at, item.pcm, out_rate)
                replies.audio(at)
            elif isinstance(item, ServerEvent):
                display.event(at, item)
                replies.event(at, item)
                out_rate = audio_rate(item.data.get("audio_out")) or out_rate
                if item.name in ("hello", "session_started"):
                    started = True
                elif item.name in ("flush", "barge_in"):
                    agent.flush(at)
                elif item.name == "error":
                    error = item
            else:
                closed = item
        speaker.cancel()
    return Outcome(closed, started, out_rate, agent, error, caller_seconds)


async def _session(
    url: str,
    key: str,
    framing: Framing,
    fields: dict[str, Any],
    caller: bytes,
    display: Display,
    *,
    until_answered: bool,
) -> Outcome:
    async with OmniClient.connect(url, key, framing=framing, configure=fields) as client:
        display.console.print(
            f"connected to {url} (subprotocol {client.subprotocol}, {framing} framing)",
            style="dim",
            markup=False,
            soft_wrap=True,
        )
        with display:
            return await converse(client, caller, display, until_answered=until_answered)


def _refusal(exc: Exception) -> str:
    """Why the connection failed, with the server's error envelope when it sent one."""
    if not isinstance(exc, InvalidStatus):
        return str(exc) or type(exc).__name__
    response = exc.response
    detail = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        error = json.loads(response.body or b"")["error"]
        detail = f" {error['code']}: {error['message']}"
    return f"HTTP {response.status_code}{detail or ' ' + response.reason_phrase}"


def _caller_audio(wavs: list[Path], rate: int, gap: float, wait: float) -> bytes:
    """The caller's whole stream: the WAVs with ``gap`` of silence between, then ``wait``."""
    parts: list[bytes] = []
    for index, path in enumerate(wavs):
        if index:
            parts.append(bytes(2 * round(gap * rate)))
        try:
            parts.append(read_wav(path, rate))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--wav") from exc
    parts.append(bytes(2 * round(wait * rate)))
    return b"".join(parts)


def talk(
    url: Annotated[str, typer.Option(help="server URL, e.g. http://127.0.0.1:8000")],
    key: Annotated[str, typer.Option(envvar="VOXLINE_API_KEY", help="secret key or browser token")],
    wav: Annotated[
        list[Path],
        typer.Option(
            exists=True, dir_okay=False, help="caller WAV; repeat to play several in turn"
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="save the agent's audio, aligned with the caller's"),
    ] = None,
    rate: Annotated[int, typer.Option(help="caller audio rate: 8000, 16000 or 24000")] = 24000,
    framing: Annotated[
        Framing, typer.Option(help="raw (text JSON, bare audio) or tagged (all binary)")
    ] = Framing.TAGGED,
    label: Annotated[str | None, typer.Option(help="session label (agent id)")] = None,
    gap: Annotated[float, typer.Option(min=0.0, help="seconds of silence between WAVs")] = 2.0,
    wait: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="seconds of silence after the last WAV; unset: until the agent's reply to "
            "it has been heard",
            show_default=False,
        ),
    ] = None,
    configure: Annotated[
        str | None, typer.Option(help='JSON object merged into configure, e.g. {"greeting":"Hi"}')
    ] = None,
) -> None:
    """Talk to an agent: stream WAVs as the caller in real time, show what comes back, and
    hang up once the agent has answered the last one."""
    if rate not in RATES:
        raise typer.BadParameter(
            f"must be one of {', '.join(map(str, RATES))}", param_hint="--rate"
        )
    try:
        ws_url = realtime_url(url, session_label=label, rate=rate)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from exc
    try:
        realtime_subprotocols(key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--key") from exc
    fields = configure_fields(configure)
    caller = _caller_audio(wav, rate, gap, wait or 0.0)
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        outcome = asyncio.run(
            _session(
                ws_url, key, framing, fields, caller, Display(console), until_answered=wait is None
            )
        )
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        errors.print(
            Text.assemble(("error: ", "bold red"), f"cannot connect to {ws_url}: {_refusal(exc)}"),
            soft_wrap=True,
        )
        raise typer.Exit(1) from None

    if out is not None and outcome.started:
        pcm = outcome.agent.render(outcome.out_rate, outcome.caller_seconds)
        write_wav(out, pcm, outcome.out_rate)
        console.print(
            f"saved {outcome.agent.speech_seconds:.1f} s of agent audio to {out} "
            f"({len(pcm) / (2 * outcome.out_rate):.1f} s at {outcome.out_rate} Hz, "
            "aligned with the caller)",
            markup=False,
            soft_wrap=True,
        )
    closed = outcome.closed
    if closed.code != 1000:
        message = Text.assemble(
            ("the server closed the session: ", "bold red"),
            f"{closed.code} {closed.reason}".rstrip(),
            f" ({close_meaning(closed.code)})",
        )
        if outcome.error is not None:
            data = outcome.error.data
            message.append(f"\n  {data.get('code')}: {data.get('message')}")
        errors.print(message, soft_wrap=True)
        raise typer.Exit(1)
