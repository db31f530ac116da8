"""The monoids obey the laws they claim; check_laws and the regularisers measure them."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.monoids import (
    MONOIDS,
    ConjugatedSumMonoid,
    GRUMonoid,
    SoftmaxMonoid,
    associativity_by_level,
    associativity_gap,
    check_laws,
    identity_gap,
    relative_associativity_gap,
)
from gnnagg.segment import SegmentPlan

EXACT = ["conjugated_sum", "softmax"]


def make(name, channels=6, seed=0):
    torch.manual_seed(seed)
    monoid = MONOIDS[name](channels).double()
    # Move learnable parts away from their identity-like initialisation.
    with torch.no_grad():
        for p in monoid.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return monoid


def elements(monoid, seed, rows=16, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, rows, monoid.channels, generator=generator, dtype=torch.float64) * scale
    return [monoid.lift(part) for part in x]


@given(seed=st.integers(0, 10_000))
@pytest.mark.parametrize("name", sorted(MONOIDS))
def test_commutativity_is_exact(name, seed):
    monoid = make(name)
    a, b, _ = elements(monoid, seed)
    with torch.no_grad():
        assert torch.equal(monoid.combine(a, b), monoid.combine(b, a))


@given(seed=st.integers(0, 10_000))
@pytest.mark.parametrize("name", EXACT)
def test_exact_monoids_are_associative_with_identity(name, seed):
    monoid = make(name)
    a, b, c = elements(monoid, seed)
    with torch.no_grad():
        assert float(associativity_gap(monoid, a, b, c)) < 1e-18
        assert float(identity_gap(monoid, a)) < 1e-18
        e = monoid.identity(a, 1)
        assert float(identity_gap(monoid, monoid.combine(e, e))) < 1e-18


def test_gru_monoid_is_not_associative_and_check_laws_says_so():
    monoid = make("gru")
    x = torch.randn(64, 6, dtype=torch.float64)
    gaps = check_laws(monoid, x)
    assert gaps["commutativity"] == 0.0
    assert gaps["associativity"] > 1e-3
    assert gaps["identity"] > 0
    for name in EXACT:
        gaps = check_laws(make(name), x)
        assert gaps["associativity"] < 1e-9 and gaps["identity"] < 1e-9


def test_check_laws_rejects_wrong_width_and_dtype():
    with pytest.raises(ValueError, match="x must be"):
        check_laws(GRUMonoid(4), torch.randn(10, 5))
    with pytest.raises(TypeError, match="x has dtype torch.float64"):
        check_laws(ConjugatedSumMonoid(4), torch.randn(10, 4, dtype=torch.float64))


def test_associativity_gap_is_differentiable():
    monoid = GRUMonoid(4)
    a, b, c = torch.randn(3, 8, 4).unbind(0)
    associativity_gap(monoid, a, b, c).backward()
    assert monoid.cell.weight_ih.grad.abs().sum() > 0


def test_conjugated_sum_inverse_is_exact():
    monoid = make("conjugated_sum")
    x = torch.randn(20, 6, dtype=torch.float64) * 3
    torch.testing.assert_close(monoid.g.inverse(monoid.g(x)), x)


def test_softmax_monoid_lowers_to_softmax_weighted_mean():
    monoid = SoftmaxMonoid(3, beta=2.0).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    state = monoid.lift(x[0:1])
    for row in x[1:]:
        state = monoid.combine(state, monoid.lift(row[None]))
    expected = (torch.softmax(2.0 * x, 0) * x).sum(0, keepdim=True)
    torch.testing.assert_close(monoid.lower(state), expected)
    # The identity lowers to zeros: isolated nodes output 0.
    assert monoid.lower(monoid.identity(state, 2)).abs().sum() == 0


@pytest.mark.parametrize("cls", [GRUMonoid, ConjugatedSumMonoid, SoftmaxMonoid])
def test_bad_channels(cls):
    with pytest.raises(ValueError, match="channels must be"):
        cls(0)


@pytest.mark.parametrize("direct", [True, False])
def test_softmax_monoid_propagates_nan_to_its_own_node(direct):
    """A NaN message is not mistaken for an empty neighbourhood (which would give 0)."""
    from gnnagg import LCMAggregation

    aggr = LCMAggregation(4, 4, monoid="softmax", project=False, allow_direct_reduce=direct).eval()
    x = torch.randn(6, 4)
    x[1, 2] = float("nan")
    out = aggr(x, torch.tensor([0, 0, 0, 1, 1, 2]), dim_size=4)
    assert out[0, 2].isnan() and not out[0, [0, 1, 3]].isnan().any()
    assert out[1:3].isfinite().all() and (out[3] == 0).all()


@pytest.mark.parametrize("cls", [GRUMonoid, ConjugatedSumMonoid, SoftmaxMonoid])
def test_bool_channels_are_rejected(cls):
    with pytest.raises(TypeError, match="channels must be an integer, got a bool"):
        cls(True)


def _grouped(num_groups=6, size=16, channels=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_groups * size, channels, generator=generator, dtype=torch.float64)
    ptr = torch.arange(0, num_groups * size + 1, size)
    return x, SegmentPlan.from_ptr(ptr)


@pytest.mark.parametrize("name", sorted(MONOIDS))
def test_associativity_by_level_reports_every_level(name):
    monoid = make(name)
    x, plan = _grouped()
    rows = associativity_by_level(monoid, monoid.lift(x), plan, num_samples=64, seed=1)
    # 16 leaves per group: levels 0 (leaves) to 4 (roots).
    assert [r["level"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["states"] for r in rows] == [96, 48, 24, 12, 6]
    assert all(r["norm"] > 0 and r["gap_max"] >= r["gap"] >= 0 for r in rows)
    if name in EXACT:
        assert max(r["gap_max"] for r in rows) < 1e-10
    else:
        assert min(r["gap"] for r in rows) > 1e-4
    again = associativity_by_level(monoid, monoid.lift(x), plan, num_samples=64, seed=1)
    assert again == rows


def test_relative_gap_is_relative():
    monoid = make("gru")
    a, b, c = elements(monoid, 3)
    gaps = relative_associativity_gap(monoid, a, b, c)
    left = monoid.combine(monoid.combine(a, b), c)
    right = monoid.combine(a, monoid.combine(b, c))
    torch.testing.assert_close(gaps, (left - right).norm(dim=1) / right.norm(dim=1))


def test_associativity_by_level_rejects_bad_arguments():
    monoid = make("gru")
    x, plan = _grouped()
    with pytest.raises(ValueError, match="6\\] lifted messages"):
        associativity_by_level(monoid, x[:, :4], plan)
    with pytest.raises(TypeError, match="seed must be an int"):
        associativity_by_level(monoid, x, plan, seed=None)
    with pytest.raises(ValueError, match="num_samples must be positive"):
        associativity_by_level(monoid, x, plan, num_samples=0)
    with pytest.raises(TypeError, match="monoid must be a gnnagg.monoids.Monoid"):
        associativity_by_level(torch.nn.Linear(6, 6), x, plan)
