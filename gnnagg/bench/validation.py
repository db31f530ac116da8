"""Checks shared by the section configs and the readers of ``results.json``.

Every check raises a ``ValueError`` whose message starts with the name of the bad field, so
that ``gnnagg-bench`` can print it as one line (exit code 2) instead of running with poison
(an ``Infinity`` learning rate trains to 0 % and exits 0) or crashing in the report. The
field checks are :mod:`gnnagg._checks`' (the ones every layer uses), with their ``TypeError``
raised as a ``ValueError``; ``format_bytes`` is that module's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _checks
from .._checks import format_bytes

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_SEEDS",
    "NUMBER",
    "STATS",
    "check_bool",
    "check_finite",
    "check_int",
    "check_memory",
    "check_names",
    "check_optional_path",
    "check_seeds",
    "check_shape",
    "format_bytes",
    "memory_limit",
    "read_json",
]

# results.json of the full suite is a few MB; anything far larger is not one.
MAX_JSON_BYTES = 256 * 2**20
# Deeper than any results.json the harness writes (about 8 levels); a nesting bomb is refused
# before the recursive decoder gets near Python's recursion limit.
MAX_JSON_DEPTH = 64


def _one_line(check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)`` with its ``TypeError`` raised as a ``ValueError``: a bad
    config field is one line on stderr and exit code 2, whatever kind of mistake it is."""
    try:
        return check(*args, **kwargs)
    except TypeError as error:
        raise ValueError(str(error)) from None


def check_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int (not a bool) in ``[minimum, maximum]``
    (:func:`gnnagg._checks.check_int`)."""
    return _one_line(_checks.check_int, value, name, minimum=minimum, maximum=maximum)


def check_finite(
    value: Any, name: str, positive: bool = False, maximum: float | None = None
) -> float:
    """``value`` as a finite float, ``> 0`` with ``positive`` (else ``>= 0``), and at most
    ``maximum`` (:func:`gnnagg._checks.check_finite`)."""
    minimum = None if positive else 0
    return _one_line(
        _checks.check_finite, value, name, minimum=minimum, maximum=maximum, positive=positive
    )


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool (JSON ``true``/``false``; not ``"no"`` or ``0``)."""
    return _one_line(_checks.check_bool, value, name)


def check_names(values: Any, valid: tuple[str, ...] | list[str], name: str) -> tuple[str, ...]:
    """``values`` as a non-empty tuple of strings from ``valid``
    (:func:`gnnagg._checks.check_names`, whose arguments come in the order ``values, name,
    valid``)."""
    return _one_line(_checks.check_names, values, name, valid)


MAX_SEEDS = 1000
_FALLBACK_MEMORY = 64 * 2**30


def check_seeds(seeds: Any, name: str = "seeds") -> tuple[int, ...]:
    """``seeds`` as a tuple of 1 to :data:`MAX_SEEDS` distinct ints in ``[0, 2**32)``."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple)):
        raise ValueError(f"{name} must be a list of ints, got {seeds!r}")
    if not seeds:
        raise ValueError(f"{name} needs at least one seed")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{name} holds at most {MAX_SEEDS} seeds, got {len(seeds)}")
    seeds = tuple(check_int(seed, f"{name}[{i}]", 0, 2**32 - 1) for i, seed in enumerate(seeds))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name}: seeds repeat: {list(seeds)}")
    return seeds


def check_optional_path(value: Any, name: str) -> str | None:
    """``value`` if it is ``None`` or a non-empty string without NUL characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(f"{name}: expected a folder path or null, got {value!r}")
    return value


def memory_limit() -> int:
    """Bytes of physical memory of this machine (64 GiB when it cannot be read): the most a
    benchmark config may ask to hold."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MEMORY


def check_memory(nbytes: float, name: str, what: str) -> None:
    """Refuse a config whose data would need ``nbytes`` (estimated) when that exceeds
    :func:`memory_limit`, before anything is allocated; the message names the field and the
    memory."""
    limit = memory_limit()
    if nbytes > limit:
        raise ValueError(
            f"{name}: {what} would need about {format_bytes(nbytes)} of memory, more than "
            f"this machine's {format_bytes(limit)}"
        )


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text`` (brackets inside strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constants(token: str) -> None:
    raise ValueError(f"{token} is not a number JSON allows")


def read_json(path: str | Path) -> Any:
    """Parse the JSON file ``path``; ``ValueError`` (one line) when it cannot be read, is
    larger than :data:`MAX_JSON_BYTES`, nested deeper than :data:`MAX_JSON_DEPTH`, holds
    ``NaN``/``Infinity`` or is not JSON."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(f"{size} bytes, more than the {MAX_JSON_BYTES} a results file has")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels: not a gnnagg-bench file")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise ValueError("nested too deeply: not a gnnagg-bench file") from None


# Shapes for check_shape: a type (bool is not an int), NUMBER (int or float, not bool), None,
# a tuple of alternatives, [shape] for a list of items of that shape, {key: shape} for an
# object with those keys (a key ending in "?" may be missing) and other keys allowed, and
# {str: shape} for an object whose every value has that shape.
NUMBER = "number"
# mean ± std over seeds, as gnnagg.bench.report.mean_std writes them.
STATS = {"mean": NUMBER, "std": NUMBER}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_shape(value: Any, shape: Any, path: str) -> None:
    """``ValueError`` naming the first place (``path`` with keys and indices, e.g.
    ``sizegen.summary[0].val.mean``) where ``value`` does not have ``shape`` (see above)."""
    if shape is Any:
        return
    if shape is None:
        if value is not None:
            raise ValueError(f"{path}: expected null, got {_type_name(value)}")
        return
    if shape == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: expected a number, got {_type_name(value)}")
        return
    if isinstance(shape, tuple):
        errors = []
        for alternative in shape:
            try:
                check_shape(value, alternative, path)
                return
            except ValueError as error:
                errors.append(str(error))
        if len(errors) == 1:
            raise ValueError(errors[0])
        raise ValueError(f"{path}: unexpected {_type_name(value)} ({'; or '.join(errors)})")
    if isinstance(shape, type):
        if shape is int and isinstance(value, bool) or not isinstance(value, shape):
            expected = {dict: "an object", list: "a list"}.get(shape, shape.__name__)
            raise ValueError(f"{path}: expected {expected}, got {_type_name(value)}")
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {_type_name(value)}")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{path}[{i}]")
        return
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {_type_name(value)}")
        if set(shape) == {str}:
            for key, item in value.items():
                check_shape(item, shape[str], f"{path}.{key}")
            return
        for key, sub in shape.items():
            optional = key.endswith("?")
            name = key[:-1] if optional else key
            if name not in value:
                if optional:
                    continue
                raise ValueError(f"{path}: missing key {name!r}")
            check_shape(value[name], sub, f"{path}.{name}")
        return
    raise TypeError(f"shape: unsupported {shape!r}")
