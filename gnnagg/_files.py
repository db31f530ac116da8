"""The one way gnnagg writes a file: atomically, inside the target's own folder, never through a
link (it imports nothing from the package).

A temporary file with a random name is created exclusively (``O_EXCL``: a name planted in
advance, link or not, is never opened) in the folder of the target, filled, and moved into
place with ``os.replace``, which swaps the directory entry: a symbolic link at the target is
replaced, not followed, and a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "write_bytes", "write_figure", "write_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a fresh temporary file beside ``path``, then move it to ``path``.

    The file is readable by everyone (0o644), like one written with ``open``. If ``write``
    raises, nothing is left behind and ``path`` is untouched. Returns ``path``.
    """
    path = Path(path)
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """``data`` into ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda handle: handle.write(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """``text`` (UTF-8) into ``path`` with :func:`atomic_write`."""
    return write_bytes(path, text.encode("utf-8"))


def write_figure(figure: Any, path: str | os.PathLike[str], **savefig: Any) -> Path:
    """A matplotlib ``figure`` as a PNG into ``path`` with :func:`atomic_write` (``savefig``
    itself opens the target by name, following a link planted there)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    return write_bytes(path, buffer.getvalue())
