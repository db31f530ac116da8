"""SegmentPlan derives the same grouping however it was built, and is reused correctly."""

import pytest
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


@pytest.mark.parametrize("bad", [2.5, float("nan"), "3", True])
def test_dim_size_must_be_an_integer(bad):
    from gnnagg.segment import segment

    index = torch.tensor([0, 1, 1])
    with pytest.raises(TypeError, match="dim_size must be an integer"):
        segment(torch.randn(3, 2), index, dim_size=bad)
    with pytest.raises(TypeError, match="dim_size must be an integer"):
        SegmentPlan.from_index(index, bad)


def test_dim_size_accepts_numpy_and_tensor_integers():
    import numpy as np

    from gnnagg.segment import segment

    index, src = torch.tensor([0, 1, 1]), torch.randn(3, 2)
    for size in (np.int64(4), torch.tensor(4)):
        assert segment(src, index, dim_size=size).shape == (4, 2)
    with pytest.raises(ValueError, match="dim_size must be non-negative"):
        segment(src, index, dim_size=-1)


def test_inference_tensors_are_planned_but_not_cached():
    from gnnagg.segment import clear_plan_cache, plan_for_index
    from gnnagg.segment.plan import _PLAN_CACHE

    clear_plan_cache()
    with torch.inference_mode():
        index = torch.tensor([2, 0, 2])
        plan = plan_for_index(index, 3)
    assert plan.degrees.tolist() == [1, 0, 2] and len(_PLAN_CACHE) == 0


def test_plan_cache_can_be_turned_off(monkeypatch):
    from gnnagg.segment import clear_plan_cache, plan, plan_for_index

    clear_plan_cache()
    monkeypatch.setattr(plan, "PLAN_CACHE_SIZE", 0)
    index = torch.tensor([0, 1, 1])
    assert plan_for_index(index, 2) is not plan_for_index(index, 2)
