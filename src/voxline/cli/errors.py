"""How the ``voxline`` commands fail: a mistake a user can make is a line or two naming it
and how to fix it, on stderr, never a traceback; ``--debug`` shows the traceback instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text
from sqlalchemy.exc import DBAPIError
from typer._click import Context
from typer.core import TyperGroup
from typer.exceptions import TyperException

from voxline.config import ConfigFileError
from voxline.server.startup import StartupError
from voxline.store.database import DatabaseUnavailable

DEBUG_FLAG: Final = "--debug"
_DATABASE_FIX: Final = (
    "--data-dir (VOXLINE_DATA_DIR) must be a directory voxline can write to, or "
    "--database-url (VOXLINE_DATABASE_URL) a PostgreSQL it can reach"
)
_SETTINGS_FIX: Final = (
    "each setting comes from its flag, a VOXLINE_* variable or the --config file; "
    "`voxline serve --help` lists them"
)


def explain(exc: Exception) -> Iterator[tuple[str, str | None]]:
    """The problems ``exc`` stands for, each with its fix when there is one to give."""
    match exc:
        case StartupError():
            yield exc.problem, exc.fix
        case ConfigFileError():
            yield (
                str(exc),
                "--config (VOXLINE_CONFIG_FILE) names a TOML file such as examples/voxline.toml",
            )
        case ValidationError():
            errors = exc.errors()
            for index, error in enumerate(errors):
                where = ".".join(str(part) for part in error["loc"])
                fix = _SETTINGS_FIX if index == len(errors) - 1 else None
                yield f"setting {where + ': ' if where else ''}{error['msg']}", fix
        case SettingsError():
            yield f"settings: {exc}", _SETTINGS_FIX
        case DatabaseUnavailable():
            yield f"the database: {exc}", _DATABASE_FIX
        case DBAPIError():
            yield f"the database: {exc.orig}", _DATABASE_FIX
        case OSError() if exc.strerror:
            where = f"{exc.filename}: " if exc.filename else ""
            yield f"{where}{exc.strerror}", None
        case _:
            yield (
                f"unexpected error: {type(exc).__name__}: {exc}",
                f"run again with {DEBUG_FLAG} for the traceback, and report it",
            )


def exit_status(exc: Exception) -> int:
    """2 for a setting given wrong (as for a wrong option), 1 for any other failure."""
    return 2 if isinstance(exc, ValidationError | SettingsError | ConfigFileError) else 1


def report(exc: Exception, console: Console) -> None:
    for problem, fix in explain(exc):
        console.print(Text.assemble(("error: ", "bold red"), problem), soft_wrap=True)
        if fix:
            console.print(Text.assemble(("  fix: ", "bold"), fix), soft_wrap=True)


class ReportingGroup(TyperGroup):
    """The root command: it reports what any command raises (see :func:`explain`) and exits
    (see :func:`exit_status`), unless the root's ``--debug`` option asks for the traceback."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):  # usage errors, exits: typer's
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            report(exc, Console(stderr=True, highlight=False))
            raise typer.Exit(exit_status(exc)) from None


def debug_first(argv: list[str]) -> list[str]:
    """``argv`` with ``--debug`` moved before the command, wherever it was given, since it
    is the root's option: ``voxline serve --debug`` works as ``voxline --debug serve``."""
    if DEBUG_FLAG not in argv:
        return argv
    return [DEBUG_FLAG, *(arg for arg in argv if arg != DEBUG_FLAG)]
