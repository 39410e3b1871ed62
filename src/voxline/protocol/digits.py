"""Numbers a client writes as text (``?rate=``, ``?limit=``, ``"pcm16@16000"``), read strictly.

``str.isdigit()`` and ``int()`` accept far more than ``0-9``: superscripts (``"²"`` passes
``isdigit`` and then fails ``int``), other scripts' digits, signs, spaces and underscores.
Only ASCII ``[0-9]+`` is a number here, and a short one.
"""

from __future__ import annotations

import re
from typing import Final

_DECIMAL: Final = re.compile(r"[0-9]{1,18}")


def parse_decimal(text: str, lo: int, hi: int) -> int | None:
    """``text`` as an integer from ``lo`` to ``hi`` if it is only ASCII digits, else None."""
    if not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if lo <= value <= hi else None
