"""The hand-derived symmetrised GRU cell equals ½(GRUCell(a, b) + GRUCell(b, a)) with its
gradients, stays exactly commutative, and refuses what it cannot do."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from gnnagg.monoids.gru_kernel import symmetric_gru, symmetric_gru_reference


def make_cell(channels, seed=0, bias=True, dtype=torch.float64):
    torch.manual_seed(seed)
    cell = nn.GRUCell(channels, channels, bias=bias).to(dtype)
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return cell


def operands(shape, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    a, b = (2 * torch.randn(2, *shape, generator=generator, dtype=dtype)).unbind(0)
    return a.requires_grad_(True), b.requires_grad_(True)


@given(
    rows=st.integers(1, 40),
    heads=st.sampled_from([(), (3,)]),
    channels=st.integers(1, 9),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_matches_grucell_reference_with_gradients(rows, heads, channels, bias, seed):
    cell = make_cell(channels, seed, bias)
    a, b = operands((rows, *heads, channels), seed)
    out = symmetric_gru(a, b, cell)
    expected = symmetric_gru_reference(cell, a.reshape(-1, channels), b.reshape(-1, channels)).view(
        out.shape
    )
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    inputs = [a, b, *cell.parameters()]
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(expected, inputs, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64():
    cell = make_cell(4)
    a, b = operands((5, 4), seed=1)
    params = list(cell.parameters())

    def through_parameters(a, b, *weights):
        with torch.no_grad():
            for p, w in zip(params, weights):
                p.copy_(w)
        # gradcheck perturbs ``weights``; route them into the cell functionally.
        from gnnagg.monoids.gru_kernel import _SymmetricGRU

        return _SymmetricGRU.apply(a, b, *weights)

    weights = [p.detach().clone().requires_grad_(True) for p in params]
    assert torch.autograd.gradcheck(through_parameters, (a, b, *weights))


@given(seed=st.integers(0, 10_000), rows=st.integers(1, 300), channels=st.integers(1, 70))
def test_commutativity_is_bitwise_in_float32(seed, rows, channels):
    cell = make_cell(channels, seed, dtype=torch.float32)
    a, b = operands((rows, channels), seed, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(symmetric_gru(a, b, cell), symmetric_gru(b, a, cell))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_close_to_float32(dtype):
    cell = make_cell(8, dtype=torch.float32)
    a, b = operands((20, 8), seed=3, dtype=torch.float32)
    expected = symmetric_gru_reference(cell, a, b)
    out = symmetric_gru(a.to(dtype), b.to(dtype), cell.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)
    out.sum().backward()


def test_second_derivatives_match_the_reference():
    cell = make_cell(3)
    a, b = operands((4, 3), seed=0)
    grads = []
    for f in (symmetric_gru, lambda a, b, cell: symmetric_gru_reference(cell, a, b)):
        (grad_a,) = torch.autograd.grad(f(a, b, cell).pow(2).sum(), a, create_graph=True)
        grads.append(torch.autograd.grad(grad_a.pow(2).sum(), [a, b, *cell.parameters()]))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradgradcheck(lambda a, b: symmetric_gru(a, b, cell), (a, b))


def test_bad_arguments():
    cell = make_cell(3)
    a, b = operands((4, 3), seed=0)
    with pytest.raises(ValueError, match="same shape"):
        symmetric_gru(a, b[:2], cell)
    with pytest.raises(ValueError, match="input_size"):
        symmetric_gru(a, b, nn.GRUCell(2, 3).double())
    with pytest.raises(ValueError, match="end in 2 channels"):
        # 4 x 3 would reshape to 6 x 2 without complaint.
        symmetric_gru(a, b, nn.GRUCell(2, 2).double())
    with pytest.raises(TypeError, match="share a dtype"):
        symmetric_gru(a.float(), b.float(), cell)
