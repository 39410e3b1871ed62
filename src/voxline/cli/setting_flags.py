"""Command options that each set one setting, declared by flag and setting path alone: the
option's type and help come from the setting's field, so a setting is described once."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import NoneType, UnionType
from typing import Annotated, Any, TypeVar, get_args

import typer
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from voxline.config import Settings, section_type

Command = TypeVar("Command", bound=Callable[..., None])


def setting_field(path: str) -> FieldInfo:
    """The field of the setting at a dotted path: ``port``, ``stt.model``."""
    model: type[BaseSettings] = Settings
    *sections, name = path.split(".")
    for section in sections:
        section_model = section_type(model.model_fields[section])
        if section_model is None:
            raise ValueError(f"{path}: {section} is not a section")
        model = section_model
    return model.model_fields[name]


def _parameter_name(flag: str) -> str:
    """The command parameter a flag's value arrives in: ``--stt-model`` → ``stt_model``."""
    return flag.removeprefix("--").replace("-", "_")


class SettingFlags:
    """Flags that each set the setting at a path: ``{"--stt-model": "stt.model"}``."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self.paths = dict(paths)
        self._parameters = [_option(flag, setting_field(path)) for flag, path in paths.items()]

    def add_options(self, command: Command) -> Command:
        """``command`` with an option per flag ahead of its own parameters, as typer reads a
        command's signature; the flags' values reach the command's ``**flags``."""
        signature = inspect.signature(command, eval_str=True)
        own = [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for parameter in signature.parameters.values()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        parameters = [*self._parameters, *own]
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return command

    def overrides(self, flags: Mapping[str, Any]) -> dict[str, Any]:
        """``Settings`` arguments, nested by section, from the flags given in a command's
        ``**flags`` (those left out are None)."""
        overrides: dict[str, Any] = {}
        for flag, path in self.paths.items():
            value = flags[_parameter_name(flag)]
            if value is None or value == []:  # a list flag not given at all
                continue
            *sections, name = path.split(".")
            target = overrides
            for section in sections:
                target = target.setdefault(section, {})
            target[name] = value
        return overrides


def _option(flag: str, field: FieldInfo) -> inspect.Parameter:
    """An option for ``field`` that is None when not given (the setting's other sources then
    decide)."""
    if field.description is None:
        raise ValueError(f"{flag}: its setting has no description to help with")
    option = typer.Option(flag, help=field.description)
    return inspect.Parameter(
        _parameter_name(flag),
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[_without_none(field.annotation) | None, option],
    )


def _without_none(annotation: Any) -> Any:
    """``X`` of ``X | None``; any other annotation as it is."""
    if isinstance(annotation, UnionType):
        (value_type,) = (arg for arg in get_args(annotation) if arg is not NoneType)
        return value_type
    return annotation
