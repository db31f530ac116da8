"""Baselines for the size-generalisation tables: what a model that learned nothing scores.

Two reference points per task and multiset size:

* **uniform chance**: ``1 / num_classes`` (guessing a class at random);
* **the constant predictor**: always answer the most common label of the *training*
  distribution (multiset sizes drawn uniformly from ``train_sizes``). This is what a model
  that learned only the label prior would score, and it is the number an aggregator must beat
  at every test size. Its accuracy at test size ``n`` is the probability of that label at
  size ``n``.

For reference the tables also give the **best constant per test size**: the most common
label *of that size*, which no model trained on sizes 2–16 can know; it bounds every constant
predictor from above.

The label distributions are computed exactly (closed forms in float64) for the built-in tasks
of :data:`gnnagg.data.TASKS`, with values i.i.d. uniform on ``0 .. 255``:

================== =====================================================================
``second_minimum`` :math:`P(s \\ge k) = (1-p)^n + n p (1-p)^{n-1}`, :math:`p = k / 256`
``maximum``        :math:`P(m = k) = ((k+1)/256)^n - (k/256)^n`
``range``          :math:`P(r = 0) = 256^{1-n}`;
                   :math:`P(r = k) = (256-k)\\,[(k+1)^n - 2k^n + (k-1)^n] / 256^n`
``count_parity``   :math:`1/2` each (the top bit is a fair coin per element)
``distinct_count`` the occupancy distribution, by the recursion over elements
                   :math:`p_{t+1}(d) = p_t(d)\\,d/256 + p_t(d-1)\\,(257-d)/256`
================== =====================================================================

A task without a closed form here is estimated by sampling (``exact`` is then ``False``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ...._checks import check_int
from ....data import TASKS
from ....data.synthetic import NUM_VALUES

__all__ = ["MAX_BASELINE_SIZE", "constant_baselines", "label_distribution"]

# The distinct-count recursion costs size x 257 steps and sampling size x samples values:
# beyond this size the baseline is refused rather than computed for minutes.
MAX_BASELINE_SIZE = 1 << 16
_SAMPLES = 1 << 16


def _second_minimum(n: int) -> torch.Tensor:
    p = torch.arange(NUM_VALUES + 1, dtype=torch.float64) / NUM_VALUES
    q = 1 - p
    at_least = q**n + n * p * q ** (n - 1)
    return at_least[:-1] - at_least[1:]


def _maximum(n: int) -> torch.Tensor:
    c = torch.arange(NUM_VALUES + 1, dtype=torch.float64) / NUM_VALUES
    below = c**n
    return below[1:] - below[:-1]


def _range(n: int) -> torch.Tensor:
    k = torch.arange(NUM_VALUES, dtype=torch.float64)
    m = float(NUM_VALUES)
    # Divide each power by m**n before subtracting: (k/m)**n stays in float64 range.
    inner = ((k + 1) / m) ** n - 2 * (k / m) ** n + ((k - 1).clamp(min=0) / m) ** n
    probs = (m - k) * inner
    probs[0] = m * (1 / m) ** n
    return probs


def _count_parity(n: int) -> torch.Tensor:
    return torch.tensor([0.5, 0.5], dtype=torch.float64)


def _distinct_count(n: int) -> torch.Tensor:
    m = NUM_VALUES
    d = torch.arange(m + 1, dtype=torch.float64)
    probs = torch.zeros(m + 1, dtype=torch.float64)
    probs[0] = 1.0
    stay, new = d / m, (m - d + 1) / m
    for _ in range(n):
        shifted = torch.cat([probs.new_zeros(1), probs[:-1]])
        probs = probs * stay + shifted * new
    return probs


_EXACT = {
    "second_minimum": _second_minimum,
    "maximum": _maximum,
    "range": _range,
    "count_parity": _count_parity,
    "distinct_count": _distinct_count,
}


def _sampled(task: str, n: int) -> torch.Tensor:
    spec = TASKS[task]
    gen = torch.Generator().manual_seed(n)
    rows = max(1, min(_SAMPLES, (1 << 24) // n))
    values = torch.randint(0, NUM_VALUES, (rows, n), generator=gen)
    labels = spec.label(values, torch.ones(rows, n, dtype=torch.bool))
    counts = torch.bincount(labels, minlength=spec.num_classes).to(torch.float64)
    return counts / rows


def _check_size(task: str, size: Any) -> int:
    size = check_int(size, "size")
    low = TASKS[task].min_size
    if not low <= size <= MAX_BASELINE_SIZE:
        raise ValueError(
            f"size: expected {low} <= size <= {MAX_BASELINE_SIZE} for {task!r}, got {size}"
        )
    return size


def label_distribution(task: str, size: int) -> tuple[torch.Tensor, bool]:
    """``(probs, exact)``: the probability of every label of ``task`` for multisets of
    ``size`` i.i.d. uniform values (float64, ``[num_classes]``); ``exact`` is ``False`` when
    it was estimated by sampling (tasks without a closed form)."""
    if task not in TASKS:
        raise ValueError(f"task: unknown task {task!r}; valid tasks are {sorted(TASKS)}")
    size = _check_size(task, size)
    if task in _EXACT:
        return _EXACT[task](size), True
    return _sampled(task, size), False


def constant_baselines(
    task: str, train_sizes: Iterable[int], test_sizes: Iterable[int]
) -> dict[str, Any]:
    """The baselines of one size-generalisation table.

    Returns ``{"label", "exact", "chance", "constant": {"val", "<n>": ...},
    "best_constant": {"val", "<n>": ...}, "best_label": {"<n>": ...}}``: ``label`` is the most
    common label of the training distribution (sizes drawn uniformly from ``train_sizes``),
    ``constant`` its accuracy on that distribution (``val``) and at every test size,
    ``best_constant``/``best_label`` the most common label of each size and its accuracy.
    Accuracies are fractions in ``[0, 1]``.
    """
    if task not in TASKS:
        raise ValueError(f"task: unknown task {task!r}; valid tasks are {sorted(TASKS)}")
    train_sizes, test_sizes = list(train_sizes), list(test_sizes)
    if not train_sizes or not test_sizes:
        raise ValueError("train_sizes, test_sizes: need at least one size each")
    train = [label_distribution(task, n) for n in sorted(set(train_sizes))]
    mixture = torch.stack([p for p, _ in train]).mean(0)
    label = int(mixture.argmax())
    exact = all(e for _, e in train)
    constant: dict[str, float] = {"val": float(mixture[label])}
    best: dict[str, float] = {"val": float(mixture.max())}
    best_label: dict[str, int] = {"val": label}
    for n in sorted(set(test_sizes)):
        probs, was_exact = label_distribution(task, n)
        exact = exact and was_exact
        constant[str(n)] = float(probs[label])
        best[str(n)] = float(probs.max())
        best_label[str(n)] = int(probs.argmax())
    return {
        "label": label,
        "exact": exact,
        "chance": 1.0 / TASKS[task].num_classes,
        "constant": constant,
        "best_constant": best,
        "best_label": best_label,
    }
