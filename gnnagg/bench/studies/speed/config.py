"""The speed-and-memory config: every field declared once (check, option)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...fields import StudyConfig, bool_check, finite, names, optional, setting

__all__ = ["AGGR_METHODS", "RECURRENT_CASES", "RECURRENT_METHODS", "SPEED_PARTS", "SpeedConfig"]

# The parts, in the order they run (each a module of this folder: see parts.py).
SPEED_PARTS: tuple[str, ...] = ("aggr", "segment", "recurrent", "compile", "poly")
RECURRENT_CASES: tuple[str, ...] = ("uniform", "hub200", "hub5000")
RECURRENT_METHODS: tuple[str, ...] = (
    "gnnagg GRU",
    "gnnagg GRU+reg",
    "pyg GRU",
    "gnnagg LSTM",
    "gnnagg LSTM+reg",
    "pyg LSTM",
)
# The methods of the aggr part (aggr.aggregator_methods builds them; the Triton one only with
# CUDA).
AGGR_METHODS: tuple[str, ...] = (
    "pyg Sum", "pyg LCM", "pyg GRU", "pyg LSTM", "gnnagg LCM[gru]", "gnnagg LCM[conjugated_sum]",
    "gnnagg LCM[softmax]", "gnnagg LCM[gru] triton", "gnnagg GRU", "gnnagg LSTM",
)  # fmt: skip
# The message sets of the aggr part (messages.py): E = 100k messages into 10k nodes, so a hub
# has at most this degree.
_AGGR_CASE = re.compile(r"uniform|random|hub([1-9][0-9]{0,4})")
_MAX_HUB = 10_000 * 10 - (10_000 - 1)


def _cases(cases: Any, name: str) -> tuple[str, ...]:
    if isinstance(cases, str) or not isinstance(cases, (list, tuple)):
        raise ValueError(f"{name}: expected a list of cases, got {cases!r}")
    for case in cases:
        match = _AGGR_CASE.fullmatch(case) if isinstance(case, str) else None
        if match is None or (match.group(1) and int(match.group(1)) > _MAX_HUB):
            raise ValueError(
                f"{name}: expected 'uniform', 'random' or 'hub<k>' with 1 <= k <= {_MAX_HUB}, "
                f"got {case!r}"
            )
    return tuple(cases)


def _methods(methods: Any, name: str) -> tuple[str, ...]:
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise ValueError(f"{name}: needs at least one method name, or null for all")
    if not all(isinstance(m, str) and m for m in methods):
        raise ValueError(f"{name}: expected method names, got {methods!r}")
    unknown = sorted(set(methods) - set(AGGR_METHODS))
    if unknown:
        raise ValueError(f"{name}: unknown {unknown}; valid methods are {list(AGGR_METHODS)}")
    return tuple(methods)


@dataclass
class SpeedConfig(StudyConfig):
    """Speed and memory: the parts of the speed study (``parts``).

    ``aggr_methods`` are the ``aggr`` part's methods to run (``None``: all of them; the quick
    suite keeps PyG's sum and LCM and three gnnagg aggregators, because every measurement is a
    fresh process). ``aggr_cases`` run for every method; ``aggr_unpadded_cases`` run only for
    methods that do not pad every node to the largest degree (PyG's LCM, GRU and LSTM allocate
    ``[N, max degree, F]``: 12.8 GB at hub5000), which are reported as skipped there.
    ``recurrent_methods`` (``None``: all) run on ``recurrent_cases`` in the ``recurrent``
    part. ``compile_methods`` (``None``: all) run eager and compiled on ``compile_cases`` in the
    ``compile`` part. ``quick``: fewer repeats and sizes; ``smoke``: toy sizes for the smoke
    suite (every part in seconds; the numbers mean nothing). ``cap_gb`` caps the address space
    of a CPU worker process, ``timeout_s`` the seconds per measurement.
    """

    parts: tuple[str, ...] = setting(
        ("aggr", "segment", "poly"), names(SPEED_PARTS), "parts to run",
        choices=lambda: SPEED_PARTS,
    )  # fmt: skip
    quick: bool = setting(True, bool_check, "fewer repeats and sizes")
    smoke: bool = setting(False, bool_check, "toy sizes (every part in seconds)", flag=None)
    aggr_methods: tuple[str, ...] | None = setting(
        ("pyg Sum", "pyg LCM", "gnnagg LCM[gru]", "gnnagg LCM[conjugated_sum]", "gnnagg GRU"),
        optional(_methods), "methods of the aggr part (default: the quick line-up)",
    )  # fmt: skip
    aggr_cases: tuple[str, ...] = setting(
        ("uniform", "hub200"), _cases, "message sets of the aggr part for every method"
    )
    aggr_unpadded_cases: tuple[str, ...] = setting(
        ("hub5000",), _cases, "message sets of the aggr part for the methods that do not pad"
    )
    recurrent_cases: tuple[str, ...] = setting(
        RECURRENT_CASES, names(RECURRENT_CASES), "message sets of the recurrent part",
        choices=lambda: RECURRENT_CASES,
    )  # fmt: skip
    recurrent_methods: tuple[str, ...] | None = setting(
        None, optional(names(RECURRENT_METHODS)), "methods of the recurrent part (default: all)",
        choices=lambda: RECURRENT_METHODS,
    )  # fmt: skip
    compile_methods: tuple[str, ...] | None = setting(
        None, optional(_methods), "methods of the compile part (default: all)"
    )
    compile_cases: tuple[str, ...] = setting(
        ("uniform",), _cases, "message sets of the compile part"
    )
    cap_gb: float = setting(
        12.0, finite(positive=True, maximum=1 << 20), "address-space cap of a CPU worker (GB)"
    )
    timeout_s: float = setting(
        180.0, finite(positive=True, maximum=86400), "seconds per measurement"
    )
