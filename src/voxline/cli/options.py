"""Options the ``voxline`` commands share."""

from __future__ import annotations

import json
from typing import Any

import typer


def configure_fields(configure: str | None) -> dict[str, Any]:
    """The ``--configure`` option: a JSON object of ``configure`` fields."""
    if configure is None:
        return {}
    try:
        fields = json.loads(configure)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--configure") from exc
    if not isinstance(fields, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--configure")
    return fields
