"""tree_reduce builds exactly the balanced trees it promises, for every group at once."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.monoids import fused_tree_reduce, tree, tree_reduce
from gnnagg.monoids.tree import TREE_SCHEDULE_KEY, cached_tree_schedule, tree_schedule
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
    schedule = plan.derived(TREE_SCHEDULE_KEY, lambda plan: pytest.fail("built twice"))
    tree_reduce(x, plan, torch.add, identity)
    assert plan.derived(TREE_SCHEDULE_KEY, lambda plan: None) is schedule


class NonAssociativeKernel:
    """``2a + 3b + p·ab`` as a PairKernel: neither commutative nor associative, so the fused
    tree must pair exactly the rows (and in the order) that the promised tree pairs."""

    def saved_width(self, channels):
        return 0

    def reference(self, a, b, p):
        return 2 * a + 3 * b + p * a * b

    def pack(self, p):
        return (p,)

    def unpack_grads(self, packed_grads):
        return packed_grads

    def packed_grad_buffers(self, packed):
        return (torch.zeros_like(packed[0]),)

    def forward(self, pair, packed, saved):
        return self.reference(pair[:, 0], pair[:, 1], packed[0])

    def backward(self, grad, pair, saved, packed, packed_grads, grad_pair):
        (p,) = packed
        a, b = pair[:, 0], pair[:, 1]
        torch.mul(grad, 2 + p * b, out=grad_pair[:, 0])
        torch.mul(grad, 3 + p * a, out=grad_pair[:, 1])
        packed_grads[0].add_((grad * a * b).sum(0))


def _ptr(degrees):
    return torch.cat([torch.zeros(1, dtype=torch.long), degrees.cumsum(0)])


@given(
    degrees=st.lists(st.integers(0, 40), min_size=0, max_size=12),
    heads=st.sampled_from([(), (2,)]),
    chunk_bytes=st.sampled_from([1, 64, 1 << 18]),
    seed=st.integers(0, 99),
)
def test_fused_tree_matches_autograd_tree(degrees, heads, chunk_bytes, seed):
    degrees = torch.tensor(degrees, dtype=torch.long)
    plan = SegmentPlan.from_ptr(_ptr(degrees))
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(int(degrees.sum()), *heads, 3, generator=generator, dtype=torch.float64)
    x.requires_grad_(True)
    p = torch.rand(3, generator=generator, dtype=torch.float64).requires_grad_(True)
    identity = torch.full((degrees.numel(), *heads, 3), -1.0, dtype=torch.float64)
    identity.requires_grad_(True)
    kernel = NonAssociativeKernel()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tree, "CPU_CHUNK_BYTES", chunk_bytes)
        out = fused_tree_reduce(x, plan, kernel, (p,), identity)
        expected = tree_reduce(x, plan, lambda a, b: kernel.reference(a, b, p), identity)
        torch.testing.assert_close(out, expected, rtol=1e-13, atol=1e-13)
        grad = torch.randn(out.shape, generator=generator, dtype=torch.float64)
        inputs = [x, p, identity]
        got = torch.autograd.grad(out, inputs, grad, allow_unused=True, materialize_grads=True)
        want = torch.autograd.grad(
            expected, inputs, grad, allow_unused=True, materialize_grads=True
        )
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_fused_tree_gradcheck_and_second_derivatives():
    degrees = torch.tensor([0, 1, 2, 3, 5, 8])
    plan = SegmentPlan.from_ptr(_ptr(degrees))
    x = torch.rand(int(degrees.sum()), 2, dtype=torch.float64, requires_grad=True)
    p = torch.rand(2, dtype=torch.float64, requires_grad=True)
    identity = torch.zeros(6, 2, dtype=torch.float64)

    def reduce(x, p):
        return fused_tree_reduce(x, plan, NonAssociativeKernel(), (p,), identity)

    assert torch.autograd.gradcheck(reduce, (x, p))
    assert torch.autograd.gradgradcheck(reduce, (x, p))


def test_fused_tree_without_grad_and_without_rows():
    plan = SegmentPlan.from_ptr(torch.tensor([0, 3, 3, 7]))
    x = torch.rand(7, 2, dtype=torch.float64)
    p = torch.rand(2, dtype=torch.float64)
    identity = torch.zeros(3, 2, dtype=torch.float64)
    kernel = NonAssociativeKernel()
    with torch.no_grad():
        out = fused_tree_reduce(x, plan, kernel, (p,), identity)
    expected = tree_reduce(x, plan, lambda a, b: kernel.reference(a, b, p), identity)
    torch.testing.assert_close(out, expected)
    empty = SegmentPlan.from_ptr(torch.zeros(4, dtype=torch.long))
    identity = torch.ones(3, 2, dtype=torch.float64)
    # No rows: the identity, as a fresh tensor (it may be a view of a parameter).
    out = fused_tree_reduce(x[:0], empty, kernel, (p,), identity)
    assert torch.equal(out, identity) and out.data_ptr() != identity.data_ptr()


def test_gru_monoid_fused_tree_matches_reference_cell():
    from gnnagg.monoids import GRUMonoid
    from gnnagg.monoids.gru_kernel import symmetric_gru_reference

    torch.manual_seed(0)
    monoid = GRUMonoid(4).double()
    degrees = torch.tensor([3, 0, 1, 17, 6])
    plan = SegmentPlan.from_ptr(_ptr(degrees))
    x = torch.randn(int(degrees.sum()), 4, dtype=torch.float64, requires_grad=True)
    identity = monoid.identity(x, 5)
    out = fused_tree_reduce(x, plan, *monoid.pair_kernel(), identity)
    expected = tree_reduce(
        x, plan, lambda a, b: symmetric_gru_reference(monoid.cell, a, b), identity
    )
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    params = [x, *monoid.parameters()]
    for g, w in zip(
        torch.autograd.grad(out.sum(), params), torch.autograd.grad(expected.sum(), params)
    ):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def _count_aten(fn, name):
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return sum(1 for event in prof.events() if event.name == name)


def test_with_several_threads_each_level_is_one_chunk():
    """With several CPU threads every split op opens an OpenMP region whose end waits for each
    thread (a scheduler time slice on a busy machine), so a level is not cut into chunks."""
    from gnnagg.monoids import GRUMonoid

    degrees = torch.tensor([200] + [40] * 100)
    plan = SegmentPlan.from_ptr(_ptr(degrees))
    monoid = GRUMonoid(64)
    states = torch.randn(int(degrees.sum()), 64)
    kernel, params = monoid.pair_kernel()
    identity = monoid.identity(states, plan.dim_size)
    levels = sum(1 for level in tree_schedule(degrees).levels if level.num_pairs)

    def forward():
        with torch.no_grad():
            return fused_tree_reduce(states, plan, kernel, params, identity)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        whole_levels = _count_aten(forward, "aten::addmm")
        out_whole = forward()
        torch.set_num_threads(1)
        chunked = _count_aten(forward, "aten::addmm")
        out_chunked = forward()
    finally:
        torch.set_num_threads(threads)
    # Three projections per chunk (GRUPairKernel.forward).
    assert whole_levels == 3 * levels
    assert chunked > whole_levels
    torch.testing.assert_close(out_whole, out_chunked)


# A tree schedule is derived data of its plan: a plan moved to another device rebuilds it there
# instead of keeping the old device's tensors.
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


def test_tree_levels_hold_every_state_of_each_level():
    # Degrees 1, 2, 3, 5: 11 leaves; after one round 6 states (group 0's root left at level
    # 0), then 3, then group 3's root alone.
    degrees = torch.tensor([1, 2, 3, 5])
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), degrees.cumsum(0)])
    x = torch.rand(11, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    plan = SegmentPlan.from_ptr(ptr)
    levels = tree.tree_levels(x, plan, non_associative)
    assert [level.shape[0] for level in levels] == [11, 6, 3, 1]
    torch.testing.assert_close(levels[-1][0], naive_tree(list(x[6:]), non_associative))
    roots = tree_reduce(x, plan, non_associative, torch.zeros(4, 2, dtype=torch.float64))
    # Every root appears at the level its group finished.
    every = torch.cat(levels)
    for root in roots:
        assert (every - root).abs().sum(1).min() == 0


def test_tree_levels_rejects_bad_arguments():
    plan = SegmentPlan.from_ptr(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="plan's 2 rows"):
        tree.tree_levels(torch.zeros(3, 2), plan, non_associative)
    with pytest.raises(TypeError, match="combine must be callable"):
        tree.tree_levels(torch.zeros(2, 2), plan, None)
    with pytest.raises(TypeError, match="plan must be a SegmentPlan"):
        tree.tree_levels(torch.zeros(2, 2), None, non_associative)
