"""SegmentPlan derives the same grouping however it was built, and is reused correctly."""

import torch

from gnnagg.segment import SegmentPlan, segment, use_backend


def test_fields_from_unsorted_index():
    index = torch.tensor([2, 0, 2, 1, 0])
    plan = SegmentPlan.from_index(index, dim_size=4)
    assert not plan.is_sorted
    assert plan.ptr.tolist() == [0, 2, 3, 5, 5]
    assert plan.degrees.tolist() == [2, 1, 2, 0]
    assert plan.perm.tolist() == [1, 4, 3, 0, 2]  # stable: equal ids keep their order
    assert plan.sorted_index.tolist() == [0, 0, 1, 2, 2]
    assert plan.max_degree == 2


def test_sorted_index_needs_no_permutation():
    plan = SegmentPlan.from_index(torch.tensor([0, 0, 1, 3]))
    assert plan.is_sorted and plan.perm is None and plan.dim_size == 4


def test_from_ptr_derives_index():
    plan = SegmentPlan.from_ptr(torch.tensor([0, 2, 2, 3]), dim_size=5)
    assert plan.index.tolist() == [0, 0, 2]
    assert plan.degrees.tolist() == [2, 0, 1, 0, 0]
    assert plan.is_sorted


def test_lazy_plan_computes_only_what_is_asked():
    plan = SegmentPlan.from_index(torch.tensor([1, 0]), eager=False)
    assert not plan.knows("perm")
    segment(torch.randn(2, 3), plan=plan)
    assert not plan.knows("perm")  # the torch backend scatters unsorted input: no sort needed


def test_plan_moved_to_a_device_reduces_like_the_index():
    index = torch.tensor([3, 1, 1, 0, 3])
    plan = SegmentPlan.from_index(index).to("cpu")
    src = torch.randn(5, 2)
    with use_backend("torch"):
        expected = segment(src, index, reduce="max")
        torch.testing.assert_close(segment(src, plan=plan, reduce="max"), expected)
    assert "SegmentPlan(dim_size=4" in repr(plan)


def test_plan_cache_hits_for_the_same_index_and_misses_after_a_change():
    from gnnagg.segment import clear_plan_cache, plan_for_index

    clear_plan_cache()
    edge_index = torch.tensor([[0, 1, 2, 3], [2, 0, 2, 1]])
    first = plan_for_index(edge_index[1], 3)
    # A new view of the same row (what every PyG layer takes) shares the plan.
    assert plan_for_index(edge_index[1], 3) is first
    assert plan_for_index(edge_index[1], 4) is not first
    assert plan_for_index(edge_index[0], 4) is not first
    edge_index[1, 0] = 1  # in place: the version counter moves, the plan is stale
    fresh = plan_for_index(edge_index[1], 3)
    assert fresh is not first
    assert fresh.degrees.tolist() == [1, 2, 1]
    clear_plan_cache()
    assert plan_for_index(edge_index[1], 3) is not fresh
