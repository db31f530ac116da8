"""Recurrent aggregators in eval mode can still be differentiated (cuDNN needs training mode),
without eval mode's dropout being switched on."""

import pytest
import torch

from gnnagg.aggr import GRUAggregation, LSTMAggregation


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
@pytest.mark.parametrize("backend", ["packed", "segments"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_eval_mode_runs_rnn_in_training_mode_only_when_differentiating(
    cls, backend, bidirectional, monkeypatch
):
    aggr = cls(
        4, 4, backend=backend, num_layers=2, dropout=0.5, bidirectional=bidirectional
    ).eval()
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
