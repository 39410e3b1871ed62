"""Numbers read from client text: ASCII digits only, within bounds."""

from __future__ import annotations

import pytest

from voxline.protocol.digits import parse_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("16000", 16000),
        ("0016000", 16000),
        ("24000", 24000),
        ("24001", None),  # above the bound
        ("", None),
        ("²", None),  # passes str.isdigit(), then int() raises
        ("١٦٠٠٠", None),  # Arabic-Indic digits: int() accepts them
        ("１６０００", None),  # fullwidth digits: int() accepts them
        ("+16000", None),
        ("-1", None),
        (" 16000", None),
        ("16000\n", None),
        ("16_000", None),
        ("1e4", None),
        ("9" * 19, None),  # not even converted
    ],
)
def test_only_ascii_digits_within_bounds_are_numbers(text: str, expected: int | None) -> None:
    assert parse_decimal(text, 0, 24000) == expected


def test_the_lower_bound_holds() -> None:
    assert parse_decimal("7999", 8000, 24000) is None
    assert parse_decimal("8000", 8000, 24000) == 8000
