"""A tree schedule is derived data of its plan: a plan moved to another device rebuilds it
there instead of keeping the old device's tensors."""

import pytest
import torch

from gnnagg.monoids import tree_reduce
from gnnagg.monoids.tree import TREE_SCHEDULE_KEY, cached_tree_schedule
from gnnagg.segment import SegmentPlan


def test_moved_plan_does_not_carry_the_old_schedule():
    plan = SegmentPlan.from_index(torch.tensor([0, 0, 0, 2, 2]))
    schedule = cached_tree_schedule(plan)
    moved = plan.to("meta")
    built = []
    rebuilt = moved.derived(TREE_SCHEDULE_KEY, lambda p: built.append(p) or "rebuilt")
    assert built == [moved] and rebuilt == "rebuilt"
    assert cached_tree_schedule(plan) is schedule


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_schedule_of_a_plan_moved_to_cuda_lives_on_cuda():
    plan = SegmentPlan.from_index(torch.tensor([0, 0, 0, 2, 2, 1]))
    x = torch.randn(6, 3)
    expected = tree_reduce(x, plan, torch.add, torch.zeros(3, 3))
    moved = plan.to("cuda")
    out = tree_reduce(x.cuda(), moved, torch.add, torch.zeros(3, 3, device="cuda"))
    assert cached_tree_schedule(moved).root_groups.is_cuda
    torch.testing.assert_close(out.cpu(), expected)
