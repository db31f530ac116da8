"""Bad arguments to the public constructors and functions of gnnagg.monoids get errors that name
them, instead of being coerced (bool("no"), int(2.5)) or failing later on something else."""

import pytest
import torch

from gnnagg.monoids import (
    ConjugatedSumMonoid,
    GRUMonoid,
    SoftmaxMonoid,
    associativity_gap,
    check_laws,
    identity_gap,
    symmetric_gru,
    tree_reduce,
)
from gnnagg.monoids.conjugated import AffineCoupling, InvertibleMap
from gnnagg.monoids.laws import sample_rows
from gnnagg.monoids.tree import tree_schedule
from gnnagg.segment import SegmentPlan

STATES = torch.randn(4, 3)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: SoftmaxMonoid(3, beta=float("nan")), ValueError, "beta must be finite"),
        (lambda: SoftmaxMonoid(3, beta=float("inf")), ValueError, "beta must be finite"),
        (lambda: SoftmaxMonoid(3, beta="2"), TypeError, "beta must be a real number"),
        (lambda: SoftmaxMonoid(3, beta=True), TypeError, "beta must be a real number"),
        (lambda: SoftmaxMonoid(3, learn="no"), TypeError, "learn must be a bool"),
        (lambda: ConjugatedSumMonoid(4, num_layers=2.5), TypeError, "num_layers must be an int"),
        (lambda: ConjugatedSumMonoid(4, num_layers=-1), ValueError, "num_layers must be non-neg"),
        (
            lambda: ConjugatedSumMonoid(4, hidden_channels=2.0),
            TypeError,
            "hidden_channels must be an int",
        ),
        (
            lambda: ConjugatedSumMonoid(4, hidden_channels=0),
            ValueError,
            "hidden_channels must be positive",
        ),
        (lambda: InvertibleMap(4, 4, 1.5), TypeError, "num_layers must be an int"),
        (lambda: InvertibleMap(4, "4", 1), TypeError, "hidden_channels must be an int"),
        (lambda: AffineCoupling(4, 4, flip="yes"), TypeError, "flip must be a bool"),
        (lambda: AffineCoupling(1, 4, flip=False), ValueError, "channels must be at least 2"),
        (lambda: GRUMonoid(2.5), TypeError, "channels must be an integer"),
        (lambda: GRUMonoid(0), ValueError, "channels must be positive"),
    ],
)
def test_bad_constructor_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_laws_refuse_lists_and_non_monoids():
    monoid = SoftmaxMonoid(3)
    x = torch.randn(6, 3)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        check_laws(monoid, x.tolist())
    with pytest.raises(TypeError, match="monoid must be a gnnagg.monoids.Monoid"):
        check_laws(torch.nn.Linear(3, 3), x)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        check_laws(monoid, x, num_samples=2.5)
    with pytest.raises(ValueError, match="num_samples must be positive"):
        check_laws(monoid, x, num_samples=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        check_laws(monoid, x, seed=None)
    states = monoid.lift(x)
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        associativity_gap(monoid, states, states.tolist(), states)
    with pytest.raises(ValueError, match="c must be .* states"):
        associativity_gap(monoid, states, states, x)
    with pytest.raises(ValueError, match="operands differ in shape"):
        associativity_gap(monoid, states, states[:2], states)
    with pytest.raises(TypeError, match="monoid must be"):
        identity_gap("softmax", states)
    with pytest.raises(TypeError, match="states must be a torch.Tensor"):
        sample_rows(states.tolist(), 3, 1)
    with pytest.raises(TypeError, match="num .* must be an int"):
        sample_rows(states, 2.5, 1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        sample_rows(states, 2, 1, generator=0)


def test_tree_functions_refuse_bad_inputs():
    plan = SegmentPlan.from_index(torch.tensor([0, 0, 1, 1]), 2)
    identity = torch.zeros(2, 3)
    add = torch.add
    with pytest.raises(TypeError, match="states must be a torch.Tensor"):
        tree_reduce(STATES.tolist(), plan, add, identity)
    with pytest.raises(TypeError, match="plan must be a SegmentPlan"):
        tree_reduce(STATES, torch.tensor([0, 0, 1, 1]), add, identity)
    with pytest.raises(ValueError, match="states must have the plan's 4 rows"):
        tree_reduce(STATES[:3], plan, add, identity)
    with pytest.raises(ValueError, match="identity must be \\[2, \\*states.shape"):
        tree_reduce(STATES, plan, add, identity[:1])
    with pytest.raises(TypeError, match="combine must be callable"):
        tree_reduce(STATES, plan, "add", identity)
    with pytest.raises(ValueError, match="degrees must be a 1-D integer tensor"):
        tree_schedule(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="degrees must be non-negative"):
        tree_schedule(torch.tensor([1, -2]))
    with pytest.raises(TypeError, match="degrees must be a torch.Tensor"):
        tree_schedule([1, 2])
    cell = torch.nn.GRUCell(3, 3)
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        symmetric_gru(STATES.tolist(), STATES, cell)
    with pytest.raises(TypeError, match="cell must be an nn.GRUCell"):
        symmetric_gru(STATES, STATES, torch.nn.Linear(3, 3))


@pytest.mark.parametrize("cls", [GRUMonoid, ConjugatedSumMonoid, SoftmaxMonoid])
def test_combine_and_identity_name_bad_operands(cls):
    monoid = cls(4)
    width = monoid.state_channels
    a = torch.randn(3, width)
    with pytest.raises(ValueError, match="a and b must share shape"):
        monoid.combine(a, a[:2])
    with pytest.raises(ValueError, match=f"a must end in the {width} state channels"):
        monoid.combine(torch.randn(3, width + 1), torch.randn(3, width + 1))
    with pytest.raises(TypeError, match="a must be floating-point states"):
        monoid.combine(a.long(), a.long())
    with pytest.raises(ValueError, match="num must be non-negative"):
        monoid.identity(a, -1)


@pytest.mark.parametrize("cls", [GRUMonoid, ConjugatedSumMonoid, SoftmaxMonoid])
def test_parameters_beyond_memory_are_refused_before_allocating(cls, monkeypatch):
    from gnnagg import _checks

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    with pytest.raises(ValueError, match="channels=1000000000000000000000000000000.*parameters"):
        cls(10**30)
