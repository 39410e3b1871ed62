"""Files of the repository's ``examples`` folder that tests run against."""

from __future__ import annotations

from pathlib import Path

ACME_DENTAL = Path(__file__).parents[2] / "examples" / "knowledge" / "acme-dental.json"
"""The example dental office's knowledge file, which the default agent answers from."""
