"""Neighbourhoods as packed sequences, and the RNN calls that run them: the layout equals
torch's own pack_sequence, and recurrent aggregators in eval mode can still be differentiated
(cuDNN needs training mode) without eval mode's dropout being switched on."""

import pytest
import torch
from torch import nn

from gnnagg.aggr import GRUAggregation, LSTMAggregation
from gnnagg.aggr.base import group_neighbourhoods
from gnnagg.aggr.sequences import pack_neighbourhoods


def test_packing_matches_torch_pack_sequence():
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(0, 9, (60,), generator=gen)
    x = torch.randn(60, 3, generator=gen, dtype=torch.float64)
    groups = group_neighbourhoods(x, index, dim_size=11)
    packed = pack_neighbourhoods(groups)
    degrees = torch.bincount(index, minlength=11)
    order = torch.sort(degrees, descending=True, stable=True).indices
    active = [int(v) for v in order if degrees[v] > 0]
    expected = nn.utils.rnn.pack_sequence([x[index == v] for v in active])
    assert packed.num_active == len(active)
    assert torch.equal(packed.order[: len(active)], torch.tensor(active))
    assert torch.equal(packed.sequence.batch_sizes, expected.batch_sizes)
    assert torch.equal(packed.sequence.data, expected.data)
    assert torch.equal(packed.lengths, degrees[active])


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
@pytest.mark.parametrize("backend", ["packed", "segments"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_eval_mode_runs_rnn_in_training_mode_only_when_differentiating(
    cls, backend, bidirectional, monkeypatch
):
    aggr = cls(4, 4, backend=backend, num_layers=2, dropout=0.5, bidirectional=bidirectional).eval()
    name = "gru" if cls is GRUAggregation else "lstm"
    original = getattr(torch._VF, name)
    seen = []

    def spy(*args):
        # (..., dropout, train, bidirectional[, batch_first]): the last bool arguments.
        floats = [a for a in args if isinstance(a, float)]
        bools = [a for a in args if isinstance(a, bool)]
        seen.append((floats[-1], bools[1]))
        return original(*args)

    monkeypatch.setattr(torch._VF, name, spy)
    x = torch.randn(9, 4, requires_grad=True)
    index = torch.tensor([0, 0, 1, 2, 2, 2, 0, 1, 2])
    out = aggr(x, index)
    out.sum().backward()
    # Training mode for cuDNN's backward, dropout off as eval mode says.
    assert seen and all(train and dropout == 0.0 for dropout, train in seen)
    assert not aggr.rnn.training
    seen.clear()
    with torch.no_grad():
        torch.testing.assert_close(aggr(x, index), out)
    assert seen and not any(train for _, train in seen)
    assert x.grad is not None and torch.isfinite(x.grad).all()
