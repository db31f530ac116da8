r"""Training one mesh-study model with DistributedDataParallel (``torchrun``: gloo on the CPU,
nccl on CUDA), the same training as :func:`~.train.fit_mesh_model` shared by the ranks.

The batch of a step is the study's **global** batch: ``config.batch_size`` meshes, the same
on every rank, drawn (with the input noise) from the same seeded generator as the
one-process trainer draws them; rank :math:`r` of :math:`R` trains on the :math:`r`-th run
of ``batch_size / R`` consecutive meshes of it (a ``batch_size`` that :math:`R` does not
divide is refused). What one process computes over the whole batch is rebuilt exactly:

* **loss**: each rank sums its squared errors over its free nodes and divides by the free
  nodes of the *global* batch (known to every rank from the batch's trajectory ids) times
  :math:`R`; DDP averages the gradients over the ranks, which gives the gradient of the
  global mean;
* **online normalisers**: each rank computes the count, sum and sum of squares of its
  share of the node features, edge features and targets; one ``all_reduce`` per step sums
  them, and every rank adds the same totals (one accumulation per global batch, as one
  process adds the whole batch), so the three normalisers hold identical statistics on every
  rank before the forward pass reads them. The modules are then called with
  ``accumulate=False``. DDP's own buffer broadcast before every forward is off:
  the buffers are kept equal by this reduction instead;
* **time cap**: the same ``all_reduce`` carries whether any rank has spent
  ``max_seconds``, so that all ranks stop at the same step;
* **validation**: the validation rollouts (and the plateau check) run on rank 0 alone, with
  the unwrapped model; the mean training loss between validations is summed over the ranks.

The results equal the one-process trainer's up to the order of floating-point sums.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ....data import NODE_TYPES, MeshSimulation
from ....models import MeshSimulator, OnlineNormalizer
from ...training import DistContext
from .config import MeshConfig
from .train import (
    budget_clock,
    check_training,
    learning_rate,
    make_optimiser,
    training_record,
    transition_batches,
    validate,
    validation_steps,
)

__all__ = [
    "check_whole_meshes",
    "fit_mesh_model_distributed",
    "rank_loss",
    "rank_share",
    "reduce_normalizer_statistics",
]

_OBSTACLE = NODE_TYPES.index("obstacle")


def rank_share(batch_size: int, ctx: DistContext) -> slice:
    """The meshes of a global batch of ``batch_size`` that rank ``ctx.rank`` trains on;
    ``ValueError`` naming ``batch_size`` when the ranks cannot share it equally."""
    if batch_size % ctx.world_size:
        raise ValueError(
            f"batch_size: {batch_size} meshes per step cannot be shared equally by "
            f"world_size={ctx.world_size} ranks; give a multiple of {ctx.world_size} (the "
            "batch size is the global batch of a step, split over the ranks)"
        )
    per_rank = batch_size // ctx.world_size
    return slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)


def check_whole_meshes(config: MeshConfig) -> None:
    """``ValueError`` naming ``partitions`` when ``config`` asks for sub-mesh training, which
    the one-process trainer does and the ranks here do not share."""
    partitions = config.partitions
    if partitions != 1:
        raise ValueError(
            f"partitions: sub-mesh training ({partitions} parts) runs in one process "
            "(gnnagg-bench mesh); data-parallel training takes whole meshes, give 1"
        )


def rank_loss(
    prediction: Tensor, target: Tensor, free: Tensor, free_total: int, world_size: int
) -> tuple[Tensor, Tensor]:
    """``(loss, squared)``: this rank's part of the global batch's mean squared error over the
    free nodes, ``squared`` (the sum of this rank's squared errors over its ``free`` nodes)
    times ``world_size / free_total``, where ``free_total`` counts the free nodes of the whole
    global batch; the mean of the ranks' gradients (DDP's average) is the gradient of the
    global mean. ``prediction`` ``[B, N]``, ``target`` ``[F, 1]`` for the ``F`` free nodes."""
    squared = (prediction[free].reshape(-1, 1) - target).pow(2).sum()
    return squared * (world_size / free_total), squared


def _statistics(normalizer: OnlineNormalizer, x: Tensor) -> Tensor:
    """``[count, sum (size), sum of squares (size)]`` of the rows of ``x`` (float64); zeros
    once the normaliser has seen ``max_accumulations`` batches."""
    if int(normalizer.accumulations) >= normalizer.max_accumulations:
        return torch.zeros(1 + 2 * normalizer.size, dtype=torch.float64, device=x.device)
    flat = x.detach().reshape(-1, normalizer.size).to(torch.float64)
    count = torch.tensor([flat.shape[0]], dtype=torch.float64, device=x.device)
    return torch.cat([count, flat.sum(dim=0), (flat * flat).sum(dim=0)])


def _add(normalizer: OnlineNormalizer, totals: Tensor) -> None:
    if int(normalizer.accumulations) >= normalizer.max_accumulations:
        return
    size = normalizer.size
    normalizer.count += totals[0]
    normalizer.total += totals[1 : 1 + size]
    normalizer.total_squared += totals[1 + size :]
    normalizer.accumulations += 1


def reduce_normalizer_statistics(
    pairs: list[tuple[OnlineNormalizer, Tensor]],
    ctx: DistContext,
    extra: list[float] | None = None,
    apply: Callable[[list[float]], bool] | None = None,
) -> list[float]:
    """Add the rows of every ``(normalizer, x)`` of all ranks to the normalisers' running sums,
    as one batch each (:meth:`~gnnagg.models.OnlineNormalizer.accumulate` of the
    concatenation over ranks), with one ``all_reduce``; ``extra`` values ride along and are
    returned summed over the ranks. ``apply(summed extra)`` can veto the update (``False``):
    every rank sees the same sums, so every rank decides alike."""
    extra = list(extra or [])
    device = pairs[0][1].device if pairs else torch.device(ctx.device)
    parts = [_statistics(normalizer, x) for normalizer, x in pairs]
    packed = torch.cat([torch.tensor(extra, dtype=torch.float64, device=device), *parts])
    if ctx.distributed:
        torch.distributed.all_reduce(packed)
    summed = packed[: len(extra)].tolist()
    if apply is not None and not apply(summed):
        return summed
    offset = len(extra)
    for (normalizer, _), part in zip(pairs, parts):
        _add(normalizer, packed[offset : offset + part.numel()])
        offset += part.numel()
    return summed


def _wrap(simulator: MeshSimulator, ctx: DistContext) -> nn.Module:
    if not ctx.distributed:
        return simulator
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.local_rank] if str(ctx.device).startswith("cuda") else None
    # The normalisers' buffers are kept equal by their reduction, not re-sent every forward
    # (torch >= 2.13 names the switch forward_sync_buffers, older ones broadcast_buffers).
    parameters = inspect.signature(DistributedDataParallel.__init__).parameters
    switch = "forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers"
    return DistributedDataParallel(simulator, device_ids=device_ids, **{switch: False})


def fit_mesh_model_distributed(
    simulator: MeshSimulator,
    sim: MeshSimulation,
    config: MeshConfig,
    seed: int = 0,
    ctx: DistContext | None = None,
    on_validation: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``simulator`` as :func:`~.train.fit_mesh_model` does, this rank taking its share
    (:func:`rank_share`) of every global batch of ``config.batch_size`` meshes, gradients
    averaged by DDP and the normalisers reduced over the ranks (see the module docstring).
    ``ctx``: the process's place (:func:`~gnnagg.bench.training.init_distributed`; default
    one process on the CPU, where this is the one-process training).

    Returns :func:`~.train.fit_mesh_model`'s record on every rank plus ``world_size``,
    ``backend``, ``batch_per_rank`` and this rank's ``wall_per_step_s`` and
    ``cpu_per_step_s`` (both clocks, whatever ``config.budget_clock``); ``curve`` and
    ``plateau`` are measured on rank 0 only (empty and ``None`` on the others).
    ``train_time_s`` is this rank's; with the ``cpu`` clock, the waits for other ranks in
    the collectives cost little CPU time.
    ``on_validation(step, val_rollout_rmse)`` is called on rank 0 after each validation.
    """
    check_training(simulator, sim, config)
    ctx = ctx or DistContext()
    check_whole_meshes(config)
    share = rank_share(config.batch_size, ctx)
    device, dtype = simulator.device, simulator.dtype
    clock_name, clock = budget_clock(config.budget_clock, device)
    generator = torch.Generator().manual_seed(seed)
    noise_std = config.noise * sim.delta_rms("train")
    net = _wrap(simulator, ctx)
    optimiser = make_optimiser(net.parameters(), config)

    def make_batch(pairs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        # The global batch's random draws, in the one-process trainer's order and shapes.
        free_all = sim.node_types(pairs[:, 0]) != _OBSTACLE
        noise = None
        if noise_std > 0:
            noise = torch.randn(free_all.shape, generator=generator)[share]
        traj, step = pairs[share, 0], pairs[share, 1]
        free = free_all[share].to(device)
        current = sim.u[traj, step].to(device=device, dtype=dtype)
        target = sim.u[traj, step + 1].to(device=device, dtype=dtype)
        if noise is not None:
            current = current + noise_std * noise.to(device=device, dtype=dtype) * free
        return traj, current, target - current, free, int(free_all.sum())

    def statistics(traj: Tensor, current: Tensor, delta: Tensor, free: Tensor) -> list:
        return [
            (simulator.node_normalizer, simulator.node_features(current, traj, sim)),
            (simulator.edge_normalizer, simulator.batched_mesh(sim, traj).edge_attr),
            (simulator.output_normalizer, delta[free].reshape(-1, 1)),
        ]

    stream = transition_batches(sim, config.batch_size, generator)
    simulator.train()
    for _ in range(config.normalizer_batches):
        traj, current, delta, free, _ = make_batch(next(stream))
        reduce_normalizer_statistics(statistics(traj, current, delta, free), ctx)

    checkpoints = validation_steps(config)
    curve: list[dict[str, Any]] = []
    loss_sum, loss_steps = 0.0, 0
    steps, elapsed, stopped_by = 0, 0.0, "train_steps"
    both = {"wall": 0.0, "cpu": 0.0}
    while steps < config.train_steps:
        over_budget = config.max_seconds is not None and elapsed >= config.max_seconds
        start, wall_start, cpu_start = clock(), time.perf_counter(), time.process_time()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(steps, config)
        traj, current, delta, free, free_total = make_batch(next(stream))
        (ranks_over,) = reduce_normalizer_statistics(
            statistics(traj, current, delta, free), ctx, [float(over_budget)],
            apply=lambda summed: summed[0] == 0,
        )  # fmt: skip
        if ranks_over > 0:
            stopped_by = "max_seconds"
            break
        prediction = net(current, traj, sim)
        target = simulator.output_normalizer(delta[free].reshape(-1, 1))
        loss, squared = rank_loss(prediction, target, free, free_total, ctx.world_size)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
        loss_sum, loss_steps = loss_sum + float(squared.detach()) / free_total, loss_steps + 1
        elapsed += clock() - start
        both["wall"] += time.perf_counter() - wall_start
        both["cpu"] += time.process_time() - cpu_start
        if steps in checkpoints:
            (train_loss,) = ctx.all_sum([loss_sum / loss_steps])
            loss_sum, loss_steps = 0.0, 0
            if ctx.rank == 0:
                validate(simulator, sim, steps, train_loss, curve, on_validation)
    simulator.eval()
    record = training_record(
        steps, elapsed, stopped_by, clock_name, noise_std, curve, config, ctx.rank == 0
    )
    return {
        **record,
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "batch_per_rank": share.stop - share.start,
        "wall_per_step_s": both["wall"] / steps if steps else None,
        "cpu_per_step_s": both["cpu"] / steps if steps else None,
    }
