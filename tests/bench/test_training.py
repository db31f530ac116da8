"""The shared training helpers: the regulariser's schedule, the fit's validation bookkeeping
(best, early stopping, threshold crossings) and early stopping in train_best_on_val."""

import pytest
import torch

from gnnagg.bench.training import FitTracker, RegulariserSchedule, train_best_on_val


def test_regulariser_schedule_every_warmup_until():
    assert [RegulariserSchedule(0.1).weight_at(s) for s in range(3)] == [0.1, 0.1, 0.1]
    every = RegulariserSchedule(0.1, every=4)
    weights = [every.weight_at(s) for s in range(8)]
    assert weights == pytest.approx([0.4, 0, 0, 0, 0.4, 0, 0, 0])
    # The average over steps is the nominal weight.
    assert sum(weights) / len(weights) == pytest.approx(0.1)
    warm = RegulariserSchedule(1.0, warmup=4)
    assert [warm.weight_at(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    until = RegulariserSchedule(1.0, until=3)
    assert [until.weight_at(s) for s in range(5)] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert RegulariserSchedule(0.0, every=2).weight_at(0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight": float("nan")}, "weight"),
        ({"weight": 1.0, "every": 0}, "every"),
        ({"weight": 1.0, "warmup": -1}, "warmup"),
        ({"weight": 1.0, "until": -2}, "until"),
    ],
)
def test_regulariser_schedule_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RegulariserSchedule(**kwargs)


def test_fit_tracker_best_plateau_and_crossings():
    tracker = FitTracker(patience=2, thresholds=(0.5, 0.8))
    assert tracker.update(10, 1.0, 0.3) == (True, [])
    assert tracker.update(20, 2.0, 0.6) == (True, [0.5])
    assert tracker.update(30, 3.0, 0.55) == (False, [])
    assert not tracker.plateaued
    assert tracker.update(40, 4.0, 0.6) == (False, [])  # equal is not better
    assert tracker.plateaued
    assert tracker.best == 0.6 and tracker.best_step == 20
    assert tracker.crossings == {"0.5": {"step": 20, "cpu_s": 2.0, "val": 0.6}}
    # One validation may cross several thresholds at once.
    assert tracker.update(50, 5.0, 0.9)[1] == [0.8]
    again = FitTracker(patience=2, thresholds=(0.5, 0.8))
    again.load_state_dict(tracker.state_dict())
    assert again == tracker
    assert FitTracker(thresholds=(0.1,)).update(1, 0, 0.05) == (True, [])


def test_fit_tracker_without_patience_never_plateaus():
    tracker = FitTracker()
    for step in range(50):
        tracker.update(step, 0.0, 0.1)
    assert not tracker.plateaued and tracker.since_best == 49


def test_fit_tracker_rejects_bad_values():
    with pytest.raises(ValueError, match="patience"):
        FitTracker(patience=0)
    with pytest.raises(ValueError, match="thresholds"):
        FitTracker(thresholds=(float("inf"),))


def test_train_best_on_val_stops_at_a_plateau():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    batches = [torch.ones(4, 1)]
    scores = iter([3.0, 2.0, 2.5, 2.5, 2.5, 1.0])
    history = []
    best, best_epoch, _ = train_best_on_val(
        model, batches, 6, 1e-3, lambda b: model(b).square().mean(), lambda: next(scores),
        history=history, patience=3,
    )  # fmt: skip
    # Lower is better here: epoch 2 is the best and three epochs without better stop it.
    assert (best, best_epoch) == (2.0, 2)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
