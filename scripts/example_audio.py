"""Regenerate the caller WAVs of ``examples/audio``: questions to the example dental office
(``examples/knowledge/acme-dental.json``), spoken by the packaged Piper voice, 16 kHz mono.

    .venv/bin/python scripts/example_audio.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from voxline.bench.speech import synthesize
from voxline.client.wav import write_wav

RATE: Final = 16_000
PAUSE_S: Final = 0.3
"""Silence before and after each question, as a recording has."""
QUESTIONS: Final = {
    "opening-hours": "Hi there. What are your opening hours?",
    "parking": "Is there parking near your office?",
    "new-patients": "Are you accepting new patients?",
}
DIRECTORY: Final = Path(__file__).parents[1] / "examples" / "audio"


def main() -> None:
    pause = np.zeros(round(PAUSE_S * RATE), dtype=np.int16)
    for name, text in QUESTIONS.items():
        pcm = np.concatenate([pause, synthesize(text, RATE), pause])
        path = DIRECTORY / f"{name}.wav"
        write_wav(path, pcm.astype("<i2").tobytes(), RATE)
        print(f"{path.name}: {len(pcm) / RATE:.1f} s, {text!r}")


if __name__ == "__main__":
    main()
