"""GraphTransformer's memory options: activation checkpointing (same values and gradients,
dropout replayed, torch.compile) and bfloat16 autocast."""

import pytest
import torch
from torch import _dynamo as dynamo

from gnnagg.attention import adjacency, global_tokens, khop
from gnnagg.models import GraphTransformer

from .model_graphs import random_graph


def model(checkpoint, backend="sparse", dropout=0.0, mask=None, dtype=torch.float64):
    torch.manual_seed(0)
    mask = khop(2) | global_tokens(2) if mask is None else mask
    return GraphTransformer(5, 16, 3, heads=2, num_layers=3, mask=mask, dropout=dropout,
                            backend=backend, checkpoint=checkpoint).to(dtype)


def values_and_gradients(net, x, edge_index, seed=1):
    net.zero_grad()
    # The attention dropout draws from the global generator: the same seed, the same draws.
    torch.manual_seed(seed)
    out = net(x, edge_index)
    out.square().mean().backward()
    return out.detach(), {name: p.grad.clone() for name, p in net.named_parameters()}


@pytest.mark.parametrize("backend", ["sparse", "dense"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_checkpointing_gives_the_same_values_and_gradients(backend, dropout):
    x, edge_index, _ = random_graph()
    plain = values_and_gradients(model(False, backend, dropout), x, edge_index)
    recomputed = values_and_gradients(model(True, backend, dropout), x, edge_index)
    torch.testing.assert_close(recomputed, plain, rtol=0, atol=0)
    if dropout:
        # The dropout was drawn (another seed gives other values), and replayed in backward.
        other = values_and_gradients(model(True, backend, dropout), x, edge_index, seed=2)
        assert not torch.allclose(other[0], plain[0])


def test_checkpointing_keeps_fewer_tensors_for_backward():
    x, edge_index, _ = random_graph(200, 800)

    def saved_bytes(checkpoint):
        net = model(checkpoint, mask=adjacency())
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            net(x, edge_index).square().mean()
        return total

    assert saved_bytes(True) < 0.5 * saved_bytes(False)


def test_checkpointing_changes_nothing_without_gradients():
    x, edge_index, _ = random_graph()
    plain, recomputed = model(False).eval(), model(True).eval()
    with torch.no_grad():
        torch.testing.assert_close(recomputed(x, edge_index), plain(x, edge_index))


@pytest.mark.parametrize("value", ["yes", 1, None, torch.tensor(True)])
def test_a_checkpoint_that_is_not_a_bool_is_named(value):
    with pytest.raises(TypeError, match="checkpoint must be a bool"):
        GraphTransformer(5, 8, 3, heads=2, checkpoint=value)


def test_checkpointed_model_compiles():
    """The dense backend compiles (with graph breaks at the mask's sizes); checkpointing keeps
    it so, with the eager values and gradients."""
    x, edge_index, _ = random_graph()
    net = model(True, "dense", dtype=torch.float32)
    x = x.float()
    built = net.mask.build(edge_index, num_nodes=x.size(0))
    eager = net(x, mask_index=built)
    eager_grads = torch.autograd.grad(eager.square().mean(), list(net.parameters()))
    dynamo.reset()
    try:
        compiled = torch.compile(net, backend="aot_eager")
        out = compiled(x, mask_index=built)
        grads = torch.autograd.grad(out.square().mean(), list(net.parameters()))
    finally:
        dynamo.reset()
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(grads, eager_grads)


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("backend", ["sparse", "dense"])
def test_bfloat16_autocast_trains_close_to_float32(backend, checkpoint):
    x, edge_index, _ = random_graph(60, 300)
    x = x.float()
    net = model(checkpoint, backend, mask=khop(2) | global_tokens(2), dtype=torch.float32)
    reference, reference_grads = values_and_gradients(net, x, edge_index)
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, edge_index)
    assert out.dtype == torch.bfloat16
    out.float().square().mean().backward()
    assert all(p.grad.dtype == torch.float32 and p.grad.isfinite().all()
               for p in net.parameters())
    assert out.isfinite().all()
    # bfloat16 keeps 8 bits of mantissa: a loose tolerance, on the whole output and gradient.
    scale = reference.abs().max()
    assert (out.float() - reference).abs().max() <= 0.05 * scale
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    expected = torch.cat([g.flatten() for g in reference_grads.values()])
    assert (grads - expected).norm() <= 0.05 * expected.norm()
