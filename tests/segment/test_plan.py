"""SegmentPlan derives the same grouping however it was built, and is reused correctly."""

import pytest
import torch

from gnnagg.segment import SegmentPlan, clear_plan_cache, resolve_plan, segment, use_backend


def cached_plan(index, dim_size):
    return resolve_plan(None, index, dim_size=dim_size, cache=True)


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
    clear_plan_cache()
    edge_index = torch.tensor([[0, 1, 2, 3], [2, 0, 2, 1]])
    first = cached_plan(edge_index[1], 3)
    # A new view of the same row (what every PyG layer takes) shares the plan.
    assert cached_plan(edge_index[1], 3) is first
    assert cached_plan(edge_index[1], 4) is not first
    assert cached_plan(edge_index[0], 4) is not first
    edge_index[1, 0] = 1  # in place: the version counter moves, the plan is stale
    fresh = cached_plan(edge_index[1], 3)
    assert fresh is not first
    assert fresh.degrees.tolist() == [1, 2, 1]
    clear_plan_cache()
    assert cached_plan(edge_index[1], 3) is not fresh


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
    from gnnagg.segment.plan import _PLAN_CACHE

    clear_plan_cache()
    with torch.inference_mode():
        index = torch.tensor([2, 0, 2])
        plan = cached_plan(index, 3)
    assert plan.degrees.tolist() == [1, 0, 2] and len(_PLAN_CACHE) == 0


def test_plan_cache_can_be_turned_off(monkeypatch):
    from gnnagg.segment import plan

    clear_plan_cache()
    monkeypatch.setattr(plan, "PLAN_CACHE_SIZE", 0)
    index = torch.tensor([0, 1, 1])
    assert cached_plan(index, 2) is not cached_plan(index, 2)


def test_constructor_is_private_and_points_to_the_checked_factories():
    with pytest.raises(TypeError, match="from_index.*from_ptr"):
        SegmentPlan(3, 4, ptr=torch.tensor([0, 2, 2, 3]))


def test_a_ptr_that_ends_early_is_refused_even_without_validation():
    # Four rows but offsets covering three: the last row would be dropped silently.
    for validate in (True, False):
        with pytest.raises(ValueError, match="ptr must end at the number of rows of src \\(4\\)"):
            segment(torch.randn(4, 2), ptr=torch.tensor([0, 2, 3]), validate=validate)


@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("reduce", ["mean", "var", "logsumexp", "max"])
def test_plan_is_a_snapshot_of_the_index_it_was_built_from(eager, reduce):
    torch.manual_seed(0)
    index = torch.tensor([0, 2, 0, 1, 2])
    src = torch.randn(5, 3, dtype=torch.float64)
    expected = segment(src, index.clone(), reduce=reduce)
    plan = SegmentPlan.from_index(index, eager=eager)
    index[1] = 1  # in place, after the plan was built: the plan keeps the original grouping
    torch.testing.assert_close(segment(src, plan=plan, reduce=reduce), expected)
    from gnnagg.segment import segment_softmax

    soft = segment_softmax(src, plan=plan)
    group_sums = segment(soft, torch.tensor([0, 2, 0, 1, 2]), reduce="sum")
    torch.testing.assert_close(group_sums, torch.ones(3, 3, dtype=torch.float64))


def test_ptr_plan_is_a_snapshot_too():
    ptr = torch.tensor([0, 2, 3])
    plan = SegmentPlan.from_ptr(ptr)
    ptr[1] = 1
    assert plan.ptr.tolist() == [0, 2, 3] and plan.index.tolist() == [0, 0, 1]


@pytest.mark.parametrize("sort", [True, False])
def test_plan_used_under_inference_mode_serves_training(sort):
    """Evaluate (inference mode), then train on the same index: nothing the plan computed
    during evaluation is an inference tensor, which autograd could not save."""
    clear_plan_cache()
    index = torch.tensor([0, 0, 1, 2, 2]) if sort else torch.tensor([2, 0, 1, 0, 2])
    src = torch.randn(5, 3)
    with torch.inference_mode():
        plan = cached_plan(index, 3)
        segment(src, plan=plan, reduce="max")
        plan.materialize()
        built = plan.derived("tests.segment.ptr_copy", lambda plan: plan.ptr.clone())
    for name in ("index", "ptr", "degrees", "sorted_index") + (() if sort else ("perm",)):
        assert not getattr(plan, name).is_inference(), name
    assert not built.is_inference()
    assert cached_plan(index, 3) is plan
    x = src.clone().requires_grad_()
    for reduce in ("sum", "mean", "max", "mul", "std"):
        segment(x, plan=plan, reduce=reduce).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_plan_of_an_inference_index_serves_training():
    with torch.inference_mode():
        index = torch.tensor([1, 0, 1])
        plan = SegmentPlan.from_index(index)
    x = torch.randn(3, 2, requires_grad=True)
    segment(x, plan=plan, reduce="max").sum().backward()
    assert x.grad.abs().sum() > 0


def test_derived_data_is_built_once_and_kept_with_the_plan():
    plan = SegmentPlan.from_index(torch.tensor([1, 0, 1]))
    calls = []

    def build(p):
        calls.append(p)
        return p.degrees * 2

    first = plan.derived("tests.segment.double_degrees", build)
    assert plan.derived("tests.segment.double_degrees", build) is first
    assert calls == [plan] and first.tolist() == [2, 4]


def test_to_moves_fields_and_rebuilds_derived_data_on_the_new_device():
    plan = SegmentPlan.from_index(torch.tensor([2, 0, 2, 1]))
    on_cpu = plan.derived("tests.segment.ptr_plus_one", lambda p: p.ptr + 1)
    assert plan.to("cpu") is plan
    moved = plan.to("meta")
    assert moved is not plan and moved.device.type == "meta"
    assert moved.ptr.device.type == "meta" and moved.perm.device.type == "meta"
    assert (moved.dim_size, moved.num_rows) == (plan.dim_size, plan.num_rows)
    # What was derived on the CPU is not carried over: it is rebuilt from the moved plan.
    rebuilt = moved.derived("tests.segment.ptr_plus_one", lambda p: p.ptr + 1)
    assert rebuilt.device.type == "meta" and rebuilt.shape == on_cpu.shape
    assert plan.derived("tests.segment.ptr_plus_one", lambda p: None) is on_cpu


def test_plan_cache_is_thread_safe(monkeypatch):
    """Lookups, insertions and evictions from several threads at once. The cache is smaller
    than the set of indices in use, so it evicts all the time, and each lookup pauses (letting
    the other threads run) between finding an entry and using it: without the cache's lock
    another thread evicts the entry in that pause."""
    import threading
    import time
    from collections import OrderedDict

    from gnnagg.segment import plan as plan_module

    class PausingCache(OrderedDict):
        def get(self, key, default=None):
            value = super().get(key, default)
            time.sleep(0.0002)
            return value

    monkeypatch.setattr(plan_module, "_PLAN_CACHE", PausingCache())
    monkeypatch.setattr(plan_module, "PLAN_CACHE_SIZE", 2)
    indices = [torch.tensor([k % 3, 0, k % 2, 1]) for k in range(3)]
    errors = []

    def work(seed):
        try:
            for step in range(200):
                index = indices[(seed + step) % len(indices)]
                plan = cached_plan(index, 3)
                assert plan.degrees.tolist() == torch.bincount(index, minlength=3).tolist()
        except Exception as error:  # reported below: pytest does not see a thread's errors
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(plan_module._PLAN_CACHE) <= 2


def test_threads_racing_on_derived_data_share_one_value():
    import threading

    plan = SegmentPlan.from_index(torch.tensor([0, 1, 1]))
    barrier = threading.Barrier(4)
    seen = []

    def build(p):
        return object()

    def work():
        barrier.wait()
        seen.append(plan.derived("tests.segment.token", build))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(value) for value in seen}) == 1
