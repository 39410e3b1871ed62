"""Files of the repository's ``examples`` folder that tests run against."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).parents[2]
EXAMPLES = REPOSITORY / "examples"

ACME_DENTAL = EXAMPLES / "knowledge" / "acme-dental.json"
"""The example dental office's knowledge file, which the default agent answers from."""
CONFIG = EXAMPLES / "voxline.toml"
"""The commented example settings file."""
CALLER_AUDIO = EXAMPLES / "audio"
"""Caller questions to the example dental office, as WAVs."""
ACME_DENTAL_MD = EXAMPLES / "knowledge" / "acme-dental.md"
"""The same office's knowledge in Markdown, as a business would write it."""
