"""Training helpers every study shares: seeding, parameter digests, the (possibly
distributed) process context, seeded graph loaders and the train-and-keep-the-best-on-validation
loop."""

from __future__ import annotations

import copy
import hashlib
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "SCHEDULES",
    "DistContext",
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

    Reloads the best state into ``model`` and returns ``(best value, best epoch, training
    time in seconds)``.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _scheduler(optimiser, schedule, epochs, lr, higher_is_better)
    best, best_epoch, best_state = None, 0, None
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
    train_time = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return best, best_epoch, train_time
