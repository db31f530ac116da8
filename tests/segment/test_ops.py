"""segment / segment_softmax against the float64 reference, across backends, dtypes and dims."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.segment import REDUCTIONS, SegmentPlan, available_backends, segment, segment_softmax

from .reference import reference_segment, reference_softmax

BACKENDS = available_backends()
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
TOLERANCE = {
    torch.float64: dict(rtol=1e-9, atol=1e-9),
    torch.float32: dict(rtol=1e-4, atol=1e-4),
    torch.float16: dict(rtol=2e-2, atol=2e-2),
    torch.bfloat16: dict(rtol=5e-2, atol=5e-2),
}


@st.composite
def segment_problems(draw):
    num_rows = draw(st.integers(0, 24))
    dim_size = draw(st.integers(1 if num_rows else 0, 7))
    trailing = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    dim = draw(st.integers(0, len(trailing)))
    sort = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, max(dim_size, 1), (num_rows,), generator=generator)
    if sort:
        index = index.sort().values
    shape = list(trailing)
    shape.insert(dim, num_rows)
    values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2.4 - 1.2
    return values, index, dim_size, dim


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(problem=segment_problems(), reduce=st.sampled_from(REDUCTIONS), use_plan=st.booleans())
def test_matches_reference(backend, dtype, problem, reduce, use_plan):
    values, index, dim_size, dim = problem
    src = values.to(dtype)
    kwargs = (
        dict(plan=SegmentPlan.from_index(index, dim_size))
        if use_plan
        else dict(index=index, dim_size=dim_size)
    )
    out = segment(src, dim=dim, reduce=reduce, backend=backend, **kwargs)
    expected = reference_segment(src, index, dim_size, dim, reduce)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
@given(problem=segment_problems())
def test_softmax_matches_reference(backend, problem):
    values, index, dim_size, dim = problem
    out = segment_softmax(values, index, dim_size=dim_size, dim=dim, backend=backend)
    torch.testing.assert_close(out, reference_softmax(values, index, dim))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_ptr_input_equals_index_input(backend, reduce):
    index = torch.tensor([0, 0, 2, 2, 2, 3])
    ptr = torch.tensor([0, 2, 2, 5, 6])
    src = torch.randn(6, 4)
    by_ptr = segment(src, ptr=ptr, reduce=reduce, backend=backend)
    by_index = segment(src, index, reduce=reduce, backend=backend)
    torch.testing.assert_close(by_ptr, by_index)
    wider = segment(src, ptr=ptr, dim_size=6, reduce=reduce, backend=backend)
    assert wider.shape == (6, 4) and wider[4:].abs().sum() == 0


def _gradcheck_problem(sort: bool, seed: int) -> tuple[SegmentPlan, torch.Tensor]:
    index = torch.tensor([3, 0, 3, 1, 0, 3, 3, 1])
    if sort:
        index = index.sort().values
    generator = torch.Generator().manual_seed(seed)
    # Distinct values keep max/min away from ties, where the gradient is a choice, not a limit.
    src = (torch.randperm(16, generator=generator).double() / 8 - 1).view(8, 2)
    return SegmentPlan.from_index(index, 5), src.requires_grad_()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("sort", [True, False])
def test_gradcheck(backend, reduce, sort):
    plan, src = _gradcheck_problem(sort, seed=1)
    assert torch.autograd.gradcheck(
        lambda x: segment(x, plan=plan, reduce=reduce, backend=backend), (src,)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_gradcheck(backend):
    index = torch.tensor([1, 0, 1, 1, 0, 2])
    src = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, index, backend=backend), (src,))


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eager", [True, False], ids=["csr", "scatter"])
def test_tied_rows_share_the_gradient(reduce, backend, eager):
    src = torch.tensor([[2.0], [2.0], [1.0] if reduce == "max" else [3.0]], requires_grad=True)
    # An eager plan knows its offsets (the CSR path); a lazy one is reduced by scatter.
    plan = SegmentPlan.from_index(torch.zeros(3, dtype=torch.long), eager=eager)
    segment(src, plan=plan, reduce=reduce, backend=backend).sum().backward()
    assert src.grad.flatten().tolist() == [0.5, 0.5, 0.0]


def test_std_of_constant_group_has_finite_gradient():
    src = torch.ones(4, 2, dtype=torch.float64, requires_grad=True)
    out = segment(src, torch.tensor([0, 0, 1, 1]), reduce="std")
    out.sum().backward()
    assert out.abs().sum() == 0 and torch.isfinite(src.grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_rows_and_empty_groups_give_the_identity_of_mul_and_zero_otherwise(backend):
    for reduce in REDUCTIONS:
        out = segment(
            torch.empty(0, 3),
            torch.empty(0, dtype=torch.long),
            dim_size=4,
            reduce=reduce,
            backend=backend,
        )
        assert out.shape == (4, 3)
        assert torch.equal(out, torch.full((4, 3), 1.0 if reduce == "mul" else 0.0)), reduce
    assert segment(torch.empty(0, 3), torch.empty(0, dtype=torch.long)).shape == (0, 3)


def test_int32_index_is_accepted():
    src = torch.randn(5, 2)
    index = torch.tensor([0, 1, 0, 1, 1])
    torch.testing.assert_close(segment(src, index.int()), segment(src, index))


def test_plan_on_wrong_device_or_size_is_rejected():
    plan = SegmentPlan.from_index(torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="plan covers 3 rows"):
        segment(torch.randn(4, 2), plan=plan)
    with pytest.raises(ValueError, match="dim_size"):
        segment(torch.randn(3, 2), plan=plan, dim_size=7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min", "mul"])
@pytest.mark.parametrize("sort", [True, False])
def test_second_derivatives(backend, reduce, sort):
    """Double backward works on every path (torch's own segment_reduce backward has none)."""
    plan, src = _gradcheck_problem(sort, seed=2)
    # Squared, so that the second derivative is not zero everywhere.
    assert torch.autograd.gradgradcheck(
        lambda x: segment(x, plan=plan, reduce=reduce, backend=backend).square(), (src,)
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sort", [True, False])
def test_max_and_min_keep_extreme_values_and_nan(backend, sort):
    """The true extreme of a group is returned even where it equals the dtype's limit or
    ±inf (torch_scatter's empty-group marker), and NaN propagates as in torch.amax."""
    lo, hi = torch.finfo(torch.float32).min, torch.finfo(torch.float32).max
    groups = [[-math.inf], [lo], [math.nan, 1.0], [math.inf, 2.0], [hi, 0.0], [math.nan]]
    index = torch.tensor([g for g, rows in enumerate(groups) for _ in rows])
    src = torch.tensor([v for rows in groups for v in rows]).unsqueeze(1)
    if not sort:
        order = torch.randperm(len(index), generator=torch.Generator().manual_seed(0))
        index, src = index[order], src[order]
    for reduce, expected in (
        ("max", [-math.inf, lo, math.nan, math.inf, hi, math.nan]),
        ("min", [-math.inf, lo, math.nan, 2.0, 0.0, math.nan]),
    ):
        out = segment(src, index, reduce=reduce, backend=backend).squeeze(1)
        torch.testing.assert_close(out, torch.tensor(expected), equal_nan=True, msg=reduce)


def test_std_of_a_group_with_nan_or_inf_is_nan():
    src = torch.tensor([[math.nan], [1.0], [math.inf], [2.0], [3.0], [3.0]])
    std = segment(src, torch.tensor([0, 0, 1, 1, 2, 2]), reduce="std").squeeze(1)
    assert std[:2].isnan().all() and std[2] == 0


@pytest.mark.parametrize("bad", [0.0, "0", True])
def test_dim_must_be_an_int(bad):
    index = torch.tensor([0, 1, 1])
    with pytest.raises(TypeError, match="dim must be an int"):
        segment(torch.randn(3, 2), index, dim=bad)
    with pytest.raises(TypeError, match="dim must be an int"):
        segment_softmax(torch.randn(3, 2), index, dim=bad)


def test_softmax_checks_the_plan_device():
    plan = SegmentPlan.from_index(torch.tensor([0, 1, 1])).to("meta")
    with pytest.raises(ValueError, match="plan is on meta"):
        segment_softmax(torch.randn(3, 2), plan=plan)


@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("width", [4, 64], ids=["narrow", "wide"])
def test_sorted_rows_take_the_faster_cpu_path_with_the_same_results(monkeypatch, reduce, width):
    """On a CPU, torch.segment_reduce is faster than scattering for narrow rows only; wide
    sorted rows scatter (same results, same derivatives)."""
    import gnnagg.segment.backends.torch_native as torch_native

    generator = torch.Generator().manual_seed(5)
    index = torch.randint(0, 6, (30,), generator=generator).sort().values
    src = torch.randn(30, width, dtype=torch.float64, generator=generator)
    plan = SegmentPlan.from_index(index, 7)
    assert plan.known_sorted_csr
    calls = []
    native = torch.segment_reduce

    def counting_segment_reduce(*args, **kwargs):
        calls.append(args[1])
        return native(*args, **kwargs)

    monkeypatch.setattr(torch_native.torch, "segment_reduce", counting_segment_reduce)
    x = src.clone().requires_grad_()
    out = segment(x, plan=plan, reduce=reduce, backend="torch")
    torch.testing.assert_close(out, reference_segment(src, index, 7, 0, reduce))
    assert bool(calls) == (width <= 48 and reduce != "mul")


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_second_derivatives_of_wide_sorted_rows(reduce):
    generator = torch.Generator().manual_seed(6)
    plan = SegmentPlan.from_index(torch.tensor([0, 0, 0, 2, 2, 3]))
    src = torch.randn(6, 50, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda x: segment(x, plan=plan, reduce=reduce, backend="torch").square(), (src,)
    )
