"""Recurrent aggregators in eval mode can still be differentiated (cuDNN needs training mode)."""

import pytest
import torch

from gnnagg.aggr import GRUAggregation, LSTMAggregation


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
@pytest.mark.parametrize("implementation", ["packed", "segments"])
def test_eval_mode_runs_rnn_in_training_mode_only_when_differentiating(cls, implementation):
    aggr = cls(4, 4, implementation=implementation).eval()
    seen = []
    aggr.rnn.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    x = torch.randn(9, 4, requires_grad=True)
    index = torch.tensor([0, 0, 1, 2, 2, 2, 0, 1, 2])
    aggr(x, index).sum().backward()
    assert seen and all(seen) and not aggr.rnn.training
    seen.clear()
    with torch.no_grad():
        aggr(x, index)
    assert seen and not any(seen)
    assert x.grad is not None and torch.isfinite(x.grad).all()
