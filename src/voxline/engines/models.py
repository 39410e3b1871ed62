"""Packaged model files: where they are and whether they are the exact bytes we tested."""

from __future__ import annotations

import hashlib
from pathlib import Path


class ModelIntegrityError(RuntimeError):
    """A model file is not the exact one this code was written and tested against."""


def sha256_file(path: Path, *, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, package: str) -> None:
    """Raise :class:`ModelIntegrityError` naming the file and the package on mismatch."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: SHA-256 is {actual}, but the file shipped in the PyPI package {package} "
            f"has {expected}; reinstall that package, or point voxline at a model of your own"
        )
