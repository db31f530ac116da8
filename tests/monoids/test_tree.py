"""tree_reduce builds exactly the balanced trees it promises, for every group at once."""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.monoids import tree_reduce, tree_schedule
from gnnagg.segment import SegmentPlan


def naive_tree(items, combine):
    while len(items) > 1:
        paired = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]


def non_associative(a, b):
    # Neither commutative nor associative: any deviation from the promised tree shows up.
    return 2 * a + 3 * b + 0.1 * a * b


@given(degrees=st.lists(st.integers(0, 40), min_size=0, max_size=12), seed=st.integers(0, 99))
def test_matches_per_group_recursion(degrees, seed):
    degrees = torch.tensor(degrees, dtype=torch.long)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), degrees.cumsum(0)])
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(int(degrees.sum()), 2, generator=generator, dtype=torch.float64)
    identity = torch.full((degrees.numel(), 2), -1.0, dtype=torch.float64)
    out = tree_reduce(x, SegmentPlan.from_ptr(ptr), non_associative, identity)
    for group, degree in enumerate(degrees.tolist()):
        rows = list(x[ptr[group] : ptr[group + 1]])
        expected = identity[group] if degree == 0 else naive_tree(rows, non_associative)
        torch.testing.assert_close(out[group], expected)


def test_depth_is_log2_of_max_degree():
    degrees = torch.tensor([1, 10, 3, 5000, 0, 2])
    schedule = tree_schedule(degrees)
    combining_levels = [level for level in schedule.levels if level.num_pairs > 0]
    assert len(combining_levels) == math.ceil(math.log2(5000))
    # Work is linear: the number of combines is sum(d - 1) over non-empty groups.
    assert sum(level.num_pairs for level in schedule.levels) == sum(
        d - 1 for d in degrees.tolist() if d > 0
    )


def test_schedule_is_cached_on_the_plan():
    plan = SegmentPlan.from_ptr(torch.tensor([0, 3, 4]))
    x = torch.randn(4, 2)
    identity = torch.zeros(2, 2)
    tree_reduce(x, plan, torch.add, identity)
    schedule = plan.__dict__["_tree_schedule"]
    tree_reduce(x, plan, torch.add, identity)
    assert plan.__dict__["_tree_schedule"] is schedule
