"""The training loop of the real-data and polynomial-feature sections: learning-rate
schedules, the per-epoch history, and the best state restored."""

import math

import pytest
import torch
from torch import nn

from gnnagg.bench.training import COSINE_FLOOR, PLATEAU_PATIENCE, train_best_on_val


def _problem(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    model = nn.Linear(3, 1)
    loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

    def loss(batch):
        inputs, targets = batch
        return (model(inputs).view(-1) - targets).square().mean()

    def validate():
        with torch.no_grad():
            return float((model(x).view(-1) - y).abs().mean())

    return model, loader, loss, validate


def _run(schedule, epochs=20, lr=0.05, validate=None):
    model, loader, loss, default_validate = _problem()
    batches = [_Pair(*b) for b in loader]
    history = []
    best, best_epoch, _ = train_best_on_val(
        model,
        batches,
        epochs,
        lr,
        lambda b: loss((b.inputs, b.targets)),
        validate or default_validate,
        schedule=schedule,
        history=history,
    )
    return model, best, best_epoch, history


class _Pair:
    """An (inputs, targets) batch that survives ``batch.to(device)``."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = inputs, targets

    def to(self, device):
        return self


def test_history_has_one_record_per_epoch():
    _, best, best_epoch, history = _run("constant", epochs=5)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert all(h["lr"] == 0.05 for h in history)
    assert best == min(h["val"] for h in history)
    assert history[best_epoch - 1]["val"] == best
    assert all(h["time_s"] >= 0 and h["cpu_s"] >= 0 for h in history)
    assert all(math.isfinite(h["train_loss"]) for h in history)


def test_cosine_anneals_to_the_floor():
    _, _, _, history = _run("cosine", epochs=10)
    rates = [h["lr"] for h in history]
    assert rates[0] == 0.05
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(0.05 * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 *
                                              (1 + math.cos(math.pi * 9 / 10))))  # fmt: skip


def test_plateau_halves_the_rate_when_validation_stalls():
    epochs = PLATEAU_PATIENCE + 4
    _, _, _, history = _run("plateau", epochs=epochs, validate=lambda: 1.0)
    rates = [h["lr"] for h in history]
    assert rates[0] == 0.05 and rates[-1] == pytest.approx(0.025)


def test_unknown_schedule_names_the_argument():
    with pytest.raises(ValueError, match="schedule"):
        _run("linear", epochs=1)


def test_the_best_state_is_restored():
    values = iter([3.0, 1.0, 2.0])
    model, best, best_epoch, history = _run("constant", epochs=3, validate=lambda: next(values))
    assert (best, best_epoch) == (1.0, 2)
    assert [h["val"] for h in history] == [3.0, 1.0, 2.0]
