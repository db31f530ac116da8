"""Training helpers every study shares: seeding, parameter digests, the (possibly
distributed) process context, seeded graph loaders, the regulariser's schedule, the
validation bookkeeping of a fit (best state, early stopping, first crossings of thresholds)
and the train-and-keep-the-best-on-validation loop."""

from __future__ import annotations

import copy
import hashlib
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .validation import check_finite, check_int

__all__ = [
    "SCHEDULES",
    "DistContext",
    "FitTracker",
    "RegulariserSchedule",
    "init_distributed",
    "param_digest",
    "seed_everything",
    "seeded_loaders",
    "train_best_on_val",
]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_digest(model: nn.Module) -> str:
    """sha256 over the model's parameters and buffers in ``state_dict`` order (exact bytes)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class DistContext:
    """Where this process sits in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Sum ``values`` over all ranks (identity in one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group when launched by ``torchrun``; a one-process context otherwise.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available). With CUDA each rank
    uses GPU ``LOCAL_RANK`` and the ``nccl`` backend; on the CPU ``gloo``.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but torch sees no GPU")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world_size < 2:
        return DistContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank, device, backend)


def seeded_loaders(train: Any, val: Any, test: Any, batch_size: int, seed: int) -> dict[str, Any]:
    """``train``/``val``/``test`` loaders; the training loader shuffles with its own generator
    seeded with ``seed``, so that models compared on one seed draw the same batches."""
    from torch_geometric.loader import DataLoader

    return {
        "train": DataLoader(
            train,
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        ),
        "val": DataLoader(val, batch_size=256),
        "test": DataLoader(test, batch_size=256),
    }


@dataclass(frozen=True)
class RegulariserSchedule:
    """The weight of a regulariser at each training step (steps count from 0).

    ``weight`` is the nominal weight. ``every=k``: the regulariser runs on every ``k``-th step
    only, at ``k`` times the weight, so its average over steps is unchanged and the steps in
    between pay nothing for it. ``warmup``: the weight ramps linearly from ``weight/warmup``
    to ``weight`` over the first ``warmup`` steps. ``until``: it is off from this step on.
    """

    weight: float = 0.0
    every: int = 1
    warmup: int = 0
    until: int | None = None

    def __post_init__(self) -> None:
        check_finite(self.weight, "weight")
        check_int(self.every, "every", minimum=1)
        check_int(self.warmup, "warmup", minimum=0)
        if self.until is not None:
            check_int(self.until, "until", minimum=0)

    def weight_at(self, step: int) -> float:
        """The weight to apply at ``step`` (0 where the regulariser is skipped)."""
        if self.weight == 0 or step % self.every or (self.until is not None and step >= self.until):
            return 0.0
        ramp = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return self.every * self.weight * ramp


@dataclass
class FitTracker:
    """What a fit's validations decide: the best score and when it was reached, early stopping
    after ``patience`` validations without a better score, and the first validation at which
    the score reached each of ``thresholds`` (scores where higher is better).

    :meth:`update` takes one validation ``(step, cpu_s, value)``; ``curve`` keeps them all.
    The state round-trips through :meth:`state_dict` (plain Python values) for checkpoints.
    """

    patience: int | None = None
    thresholds: tuple[float, ...] = ()
    best: float | None = None
    best_step: int = 0
    since_best: int = 0
    curve: list[list[float]] = field(default_factory=list)
    crossings: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.patience is not None:
            check_int(self.patience, "patience", minimum=1)
        self.thresholds = tuple(check_finite(t, "thresholds") for t in self.thresholds)

    def update(self, step: int, cpu_s: float, value: float) -> tuple[bool, list[float]]:
        """Record a validation; returns ``(improved, thresholds first reached now)``."""
        self.curve.append([int(step), round(float(cpu_s), 3), float(value)])
        improved = self.best is None or value > self.best
        if improved:
            self.best, self.best_step, self.since_best = float(value), int(step), 0
        else:
            self.since_best += 1
        reached = [t for t in self.thresholds if value >= t and self.key(t) not in self.crossings]
        for t in reached:
            self.crossings[self.key(t)] = {"step": int(step), "cpu_s": float(cpu_s), "val": value}
        return improved, reached

    @property
    def plateaued(self) -> bool:
        """``patience`` validations in a row brought no better score."""
        return self.patience is not None and self.since_best >= self.patience

    @staticmethod
    def key(threshold: float) -> str:
        """The key of ``threshold`` in :attr:`crossings` (and in results files)."""
        return f"{threshold:g}"

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_step": self.best_step,
            "since_best": self.since_best,
            "curve": [list(row) for row in self.curve],
            "crossings": {k: dict(v) for k, v in self.crossings.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.since_best = state["since_best"]
        self.curve = [list(row) for row in state["curve"]]
        self.crossings = {k: dict(v) for k, v in state["crossings"].items()}


SCHEDULES: tuple[str, ...] = ("constant", "cosine", "plateau")
# ReduceLROnPlateau: halve the learning rate after this many epochs without a better
# validation score; cosine annealing ends at this fraction of the initial rate.
PLATEAU_FACTOR, PLATEAU_PATIENCE, COSINE_FLOOR = 0.5, 10, 0.01


def _scheduler(optimiser: Any, schedule: str, epochs: int, lr: float, higher: bool) -> Any:
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=epochs, eta_min=lr * COSINE_FLOOR
        )
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser,
            mode="max" if higher else "min",
            factor=PLATEAU_FACTOR,
            patience=PLATEAU_PATIENCE,
        )
    if schedule != "constant":
        raise ValueError(f"schedule: expected one of {list(SCHEDULES)}, got {schedule!r}")
    return None


def train_best_on_val(
    model: nn.Module,
    train_loader: Any,
    epochs: int,
    lr: float,
    batch_loss: Callable[[Any], Tensor],
    validate: Callable[[], float],
    higher_is_better: bool = False,
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
    schedule: str = "constant",
    history: list[dict[str, float]] | None = None,
    patience: int | None = None,
) -> tuple[float | None, int, float]:
    """Train ``model`` with Adam (learning rate ``lr``) for ``epochs`` epochs over
    ``train_loader`` minimising ``batch_loss(batch)``; after each epoch score it with
    ``validate()`` and keep a copy of the best state, then call ``on_epoch(epoch)``.

    ``schedule``: ``"constant"``, ``"cosine"`` (cosine annealing over ``epochs`` down to
    :data:`COSINE_FLOOR` times ``lr``) or ``"plateau"`` (``ReduceLROnPlateau`` on the
    validation score: factor :data:`PLATEAU_FACTOR` after :data:`PLATEAU_PATIENCE` epochs).
    ``history``, when given, receives one record per epoch: ``epoch``, ``train_loss`` (the
    mean batch loss), ``val``, ``lr`` (the rate used in that epoch), ``time_s`` (training
    and validation wall time of the epoch) and ``cpu_s`` (the CPU time this process spent on
    it: on a shared machine the wall time grows with the load, the CPU time much less).
    ``patience``: stop early after that many epochs without a better validation score
    (:class:`FitTracker`); ``None`` trains every epoch.

    Reloads the best state into ``model`` and returns ``(best value, best epoch, training
    time in seconds)``.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _scheduler(optimiser, schedule, epochs, lr, higher_is_better)
    best, best_epoch, best_state = None, 0, None
    # Scores where higher is better, for the tracker's early stopping.
    sign = 1.0 if higher_is_better else -1.0
    tracker = FitTracker(patience=patience)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        current_lr = float(optimiser.param_groups[0]["lr"])
        model.train()
        total, batches = 0.0, 0
        for batch in train_loader:
            batch = batch.to(device)
            loss = batch_loss(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, batches = total + float(loss.detach()), batches + 1
        value = validate()
        if scheduler is not None:
            if schedule == "plateau":
                scheduler.step(value)
            else:
                scheduler.step()
        better = best is None or (value > best if higher_is_better else value < best)
        if better:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
        if history is not None:
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / max(batches, 1),
                    "val": float(value),
                    "lr": current_lr,
                    "time_s": time.perf_counter() - epoch_start,
                    "cpu_s": time.process_time() - epoch_cpu,
                }
            )
        if on_epoch is not None:
            on_epoch(epoch)
        tracker.update(epoch, 0.0, sign * float(value))
        if tracker.plateaued:
            break
    train_time = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return best, best_epoch, train_time
