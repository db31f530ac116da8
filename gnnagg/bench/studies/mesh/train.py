r"""Next-step training of one learned mesh simulator, and its evaluation.

The recipe is MeshGraphNet's (Pfaff et al. 2021, https://arxiv.org/abs/2010.03409, and its
public code): a :class:`~gnnagg.models.MeshSimulator` is trained on single steps with Gaussian
noise added to the input state (the target is the change from the *noisy* state, so the
network learns to undo its own drift), its online normalisers accumulating over the first
training batches; it is evaluated with :func:`~gnnagg.models.one_step_rmse` and
:func:`~gnnagg.models.rollout_rmse`. Every option comes from the study's
:class:`~gnnagg.bench.studies.mesh.config.MeshConfig`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ....data import NODE_TYPES, MeshSimulation
from ....models import MeshSimulator, one_step_rmse, rollout_rmse
from ...measure import peak_extra_memory
from .config import MeshConfig

__all__ = ["budget_clock", "fit_mesh_model", "train_and_evaluate"]

_OBSTACLE = NODE_TYPES.index("obstacle")
# Test trajectories rolled out at once.
ROLLOUT_BATCH = 8


def budget_clock(name: str, device: torch.device | str) -> tuple[str, Callable[[], float]]:
    """``(resolved name, clock)`` for a :class:`MeshConfig` ``budget_clock`` on ``device``. A
    CPU clock on a GPU is refused: it would not count the GPU's work."""
    on_gpu = torch.device(device).type != "cpu"
    if name == "auto":
        name = "wall" if on_gpu else "cpu"
    if name == "cpu" and on_gpu:
        raise ValueError(
            f"budget_clock: 'cpu' counts this process's CPU time, not the work of device "
            f"{str(device)!r}; use 'wall' or 'auto'"
        )
    return name, time.process_time if name == "cpu" else time.perf_counter


def fit_mesh_model(
    simulator: MeshSimulator,
    sim: MeshSimulation,
    config: MeshConfig,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``simulator`` on the ``train`` split of ``sim`` (Adam, MSE on normalised Δu over
    the non-obstacle nodes), with the budget, batch size, learning rates, noise and normaliser
    warm-up of ``config``; batches and noise drawn from ``seed``.

    Returns ``{"epochs", "steps", "train_time_s", "time_per_epoch_s", "loss_per_epoch",
    "stopped_by", "clock"}``; the times are counted by ``clock`` (the resolved
    ``config.budget_clock``); ``time_per_epoch_s`` is the mean over completed epochs (or the
    partial epoch's time scaled to a full one when none completed). ``on_epoch(epoch, mean
    loss)`` is called after each epoch.
    """
    if not isinstance(config, MeshConfig):
        raise TypeError(f"config: expected a MeshConfig, got {type(config).__name__}")
    if simulator.dim != sim.config.dim:
        raise ValueError(f"simulator: built for dim={simulator.dim}, data has {sim.config.dim}")
    device, dtype = simulator.device, simulator.dtype
    clock_name, clock = budget_clock(config.budget_clock, device)
    generator = torch.Generator().manual_seed(seed)
    transitions = sim.transition_index("train")
    if len(transitions) == 0:
        raise ValueError("split: 'train' has no trajectories in this data set")
    batches_per_epoch = math.ceil(len(transitions) / config.batch_size)
    total_steps = None if config.epochs is None else config.epochs * batches_per_epoch
    free = (sim.node_type != _OBSTACLE).to(device)
    optimiser = torch.optim.Adam(simulator.parameters(), lr=config.lr)
    decay = math.log(config.lr_final / config.lr)

    def make_batch(pairs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        traj, step = pairs[:, 0], pairs[:, 1]
        current = sim.u[traj, step].to(device=device, dtype=dtype)
        target = sim.u[traj, step + 1].to(device=device, dtype=dtype)
        if config.noise_std > 0:
            noise = torch.randn(current.shape, generator=generator).to(device=device, dtype=dtype)
            current = current + config.noise_std * noise * free
        return traj, current, target - current

    simulator.train()
    for _ in range(config.warmup_batches):
        chosen = torch.randint(len(transitions), (config.batch_size,), generator=generator)
        pairs = transitions[chosen]
        traj, current, delta = make_batch(pairs)
        mesh = simulator.batched_mesh(sim, len(pairs))
        simulator.node_normalizer.accumulate(simulator.node_features(current, traj, sim))
        simulator.edge_normalizer.accumulate(mesh.edge_attr)
        simulator.output_normalizer.accumulate(delta[:, free].reshape(-1, 1))

    epoch_times: list[float] = []
    losses: list[float] = []
    steps, epoch, stopped_by = 0, 0, "epochs"
    start = clock()
    while config.epochs is None or epoch < config.epochs:
        epoch_start = clock()
        order = transitions[torch.randperm(len(transitions), generator=generator)]
        running, count, finished = 0.0, 0, True
        for first in range(0, len(order), config.batch_size):
            elapsed = clock() - start
            if config.max_seconds is not None and elapsed >= config.max_seconds:
                finished, stopped_by = False, "max_seconds"
                break
            fraction = max(
                steps / total_steps if total_steps else 0.0,
                elapsed / config.max_seconds if config.max_seconds else 0.0,
            )
            for group in optimiser.param_groups:
                group["lr"] = config.lr * math.exp(decay * min(fraction, 1.0))
            traj, current, delta = make_batch(order[first : first + config.batch_size])
            prediction = simulator(current, traj, sim, accumulate=True)
            target = simulator.output_normalizer(delta[:, free].reshape(-1, 1), accumulate=True)
            loss = (prediction[:, free].reshape(-1, 1) - target).pow(2).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            steps += 1
            running += float(loss.detach())
            count += 1
        if count:
            losses.append(running / count)
        if not finished:
            if not epoch_times and count:
                epoch_times.append((clock() - epoch_start) * batches_per_epoch / count)
            break
        epoch += 1
        epoch_times.append(clock() - epoch_start)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    simulator.eval()
    return {
        "epochs": epoch,
        "steps": steps,
        "train_time_s": clock() - start,
        "time_per_epoch_s": statistics.fmean(epoch_times) if epoch_times else None,
        "loss_per_epoch": losses,
        "stopped_by": stopped_by,
        "clock": clock_name,
    }


def train_and_evaluate(
    name: str,
    build_model: Callable[[], nn.Module],
    sim: MeshSimulation,
    config: MeshConfig,
    seed: int = 0,
    *,
    position_features: bool = False,
    device: str = "cpu",
    split: str = "test",
    on_epoch: Callable[[int, float], None] | None = None,
    on_trained: Callable[[MeshSimulator], None] | None = None,
) -> dict[str, Any]:
    """Seed torch with ``seed``, build the step model (``build_model()``, already adapted to
    :class:`~gnnagg.models.MeshStepModel`), train it (:func:`fit_mesh_model`) and evaluate it
    on ``split`` (its first ``config.eval_trajectories`` trajectories; the 1-step RMSE from
    every ``config.one_step_stride``-th step); ``on_trained(simulator)`` is called with the
    trained simulator after the evaluation.

    Returns a JSON-friendly record: ``name``, ``seed``, ``num_params``, the training record of
    :func:`fit_mesh_model`, ``one_step_rmse``, ``rollout_rmse``, ``rollout_rmse_per_step``,
    ``inference_s_per_step`` (one rollout step of one mesh, from batched rollouts),
    ``train_peak_extra_bytes`` (the memory training added at its peak,
    :func:`gnnagg.bench.measure.peak_extra_memory`) and ``ell`` (the data's ℓ).
    """
    torch.manual_seed(seed)
    dev = torch.device(device)
    simulator = MeshSimulator(build_model(), sim.config.dim, position_features=position_features)
    simulator = simulator.to(dev)
    training, train_extra = peak_extra_memory(
        lambda: fit_mesh_model(simulator, sim, config, seed, on_epoch=on_epoch), dev
    )
    limit = config.eval_trajectories
    one_step = one_step_rmse(
        simulator, sim, split, ROLLOUT_BATCH, max_trajectories=limit, stride=config.one_step_stride
    )
    rolled = rollout_rmse(simulator, sim, split, ROLLOUT_BATCH, max_trajectories=limit)
    if on_trained is not None:
        on_trained(simulator)
    return {
        "name": name,
        "seed": seed,
        "num_params": sum(p.numel() for p in simulator.parameters()),
        **training,
        "one_step_rmse": one_step,
        "rollout_rmse": rolled["rmse"],
        "rollout_rmse_per_step": rolled["rmse_per_step"],
        "inference_s_per_step": rolled["seconds_per_graph_step"],
        "train_peak_extra_bytes": train_extra,
        "ell": sim.config.ell,
    }
