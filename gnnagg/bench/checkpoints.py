"""Checkpoints of training jobs: written atomically with their sha256 beside them, read back
with ``weights_only=True`` after the hash and the format are checked, and fingerprinted by the
settings that must match for one to be resumed or reused."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .._files import write_bytes

__all__ = ["load_checkpoint", "save_checkpoint", "settings_digest"]


def settings_digest(config: Any, fields: Sequence[str], **job: Any) -> str:
    """sha256 of ``config``'s ``fields`` and the ``job``'s own values (JSON with sorted keys):
    what a kept checkpoint must match to be resumed or reused."""
    payload = {name: getattr(config, name) for name in fields}
    payload.update(job)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` with its sha256 beside it (``<path>.sha256``), each with
    :func:`gnnagg._files.write_bytes` (atomic, never through a link): a run killed while
    writing leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)
    write_bytes(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())


def load_checkpoint(path: Path, format: str) -> dict[str, Any]:
    """Read a checkpoint of :func:`save_checkpoint` (``weights_only=True``) after checking
    its sha256; ``ValueError`` naming the file when it is damaged, when it is not a dict of
    tensors and plain values (a forged file whose hash was recomputed), or when its
    ``"format"`` entry is not ``format``."""
    path = Path(path)
    digest_path = path.with_name(path.name + ".sha256")
    for file in (path, digest_path):
        # A FIFO or a link to a device planted there would block or never end a read.
        if file.exists() and not stat.S_ISREG(file.stat().st_mode):
            raise ValueError(f"checkpoint {path}: {file.name} is not a regular file")
    data = path.read_bytes()
    try:
        with open(digest_path, "rb") as handle:
            expected = handle.read(256).decode("ascii", "replace").strip()
    except OSError:
        raise ValueError(
            f"checkpoint {path}: its sha256 file {digest_path.name} is missing"
        ) from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(
            f"checkpoint {path}: sha256 mismatch (damaged or half-written); delete it and its "
            ".sha256 file to train that job from the start"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, TypeError, ValueError) as error:
        raise ValueError(
            f"checkpoint {path}: not a checkpoint torch can read safely "
            f"({type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != format:
        raise ValueError(f"checkpoint {path}: not a {format} file")
    return state
