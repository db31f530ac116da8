r"""Training one learned mesh simulator under the study's protocol, and its evaluation.

The recipe is MeshGraphNet's (Pfaff et al. 2021, https://arxiv.org/abs/2010.03409, and its
public code): a :class:`~gnnagg.models.MeshSimulator` is trained on single steps with Gaussian
noise added to the input state (the target is the change from the *noisy* state, so the
network learns to undo its own drift), its online normalisers accumulating over the first
batches. The optimiser and schedule are graph-physics' (Garnier et al.'s trainer): AdamW with
betas (0.9, 0.95) and a learning rate :math:`\eta_s = \eta \cdot \min(1, (s+1)/W) \cdot
\tfrac12 (1 + \cos(\pi s / S))` at step :math:`s` of :math:`S`, with :math:`W` warm-up steps.
Every model gets the same number of steps :math:`S`.

The validation rollout is measured ``val_points`` times over the training. A model has
converged when two checks pass: :func:`plateau`, that error moved by at most
:data:`PLATEAU_TOLERANCE` (5 %) over the last :data:`PLATEAU_WINDOW` (20 %) of the steps;
and :func:`half_budget_moved`, a run of the same model with half the steps ends within that
tolerance of it. The first alone is weak under a cosine decay to 0: the last steps' learning
rate is too small to move the model, however far it is from where more steps would take it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ....data import NODE_TYPES, MeshSimulation
from ....models import MeshSimulator, one_step_rmse, rollout_rmse
from ...measure import peak_extra_memory
from .config import MeshConfig
from .partitioned import SubMeshSteps

__all__ = [
    "PLATEAU_TOLERANCE",
    "PLATEAU_WINDOW",
    "ROLLOUT_BATCH",
    "budget_clock",
    "check_training",
    "evaluation_record",
    "fit_mesh_model",
    "half_budget_moved",
    "learning_rate",
    "make_optimiser",
    "plateau",
    "train_and_evaluate",
    "training_record",
    "transition_batches",
    "validate",
    "validation_steps",
]

_OBSTACLE = NODE_TYPES.index("obstacle")
#: Trajectories rolled out at once in evaluation.
ROLLOUT_BATCH = 8
#: The plateau check looks at the validation rollouts of the last this fraction of the steps...
PLATEAU_WINDOW = 0.2
#: ... and calls the model converged when they lie within this fraction of their smallest.
PLATEAU_TOLERANCE = 0.05


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


def learning_rate(step: int, config: MeshConfig) -> float:
    """The learning rate of optimiser step ``step`` (from 0): linear warm-up over
    ``config.warmup_steps`` under a cosine decay from ``config.lr`` to 0 at
    ``config.train_steps``."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    return config.lr * warmup * 0.5 * (1.0 + math.cos(math.pi * step / config.train_steps))


def plateau(curve: list[dict[str, Any]], train_steps: int) -> dict[str, Any]:
    """The plateau check on a validation curve (``[{"step", "val_rollout_rmse"}, ...]``):
    ``{"converged", "moved", "window_start"}``, where ``moved`` is (largest − smallest) /
    smallest of the validation rollouts measured at or after step ``window_start`` (80 % of
    ``train_steps``), and ``converged`` is ``moved <= PLATEAU_TOLERANCE``; ``None`` with fewer
    than two measurements in the window (a run cut short)."""
    start = math.floor((1.0 - PLATEAU_WINDOW) * train_steps)
    window = [point["val_rollout_rmse"] for point in curve if point["step"] >= start]
    if len(window) < 2 or curve[-1]["step"] < train_steps:
        return {"converged": None, "moved": None, "window_start": start}
    low = min(window)
    moved = (max(window) - low) / low if low > 0 else 0.0
    return {"converged": moved <= PLATEAU_TOLERANCE, "moved": moved, "window_start": start}


def half_budget_moved(
    curve: list[dict[str, Any]], half_curve: list[dict[str, Any]]
) -> float | None:
    """The half-budget check: | v_half − v | / v, for ``v`` and ``v_half`` the last validation
    rollouts of a run (``curve``) and of the same model trained with half its steps
    (``half_curve``); ``None`` when either curve is empty. The model has converged on this
    check when the value is at most :data:`PLATEAU_TOLERANCE`."""
    if not curve or not half_curve:
        return None
    full, half = curve[-1]["val_rollout_rmse"], half_curve[-1]["val_rollout_rmse"]
    return abs(half - full) / full if full > 0 else 0.0


def validation_steps(config: MeshConfig) -> set[int]:
    """Steps after which the validation rollout is measured: ``val_points`` evenly spaced ones
    ending at ``train_steps``, and the start of the plateau window."""
    every = config.train_steps / config.val_points
    points = {round(every * k) for k in range(1, config.val_points + 1)}
    points.add(math.floor((1.0 - PLATEAU_WINDOW) * config.train_steps))
    return {p for p in points if p > 0}


def check_training(simulator: MeshSimulator, sim: MeshSimulation, config: MeshConfig) -> None:
    """The argument checks of the trainers: ``TypeError`` / ``ValueError`` naming ``config``,
    ``simulator`` or the empty ``train`` split."""
    if not isinstance(config, MeshConfig):
        raise TypeError(f"config: expected a MeshConfig, got {type(config).__name__}")
    if simulator.dim != sim.config.dim:
        raise ValueError(f"simulator: built for dim={simulator.dim}, data has {sim.config.dim}")
    if len(sim.transition_index("train")) == 0:
        raise ValueError("split: 'train' has no trajectories in this data set")


def make_optimiser(parameters: Any, config: MeshConfig) -> torch.optim.Optimizer:
    """The protocol's optimiser: AdamW at ``config.lr``, betas 0.9 / 0.95 (graph-physics')."""
    return torch.optim.AdamW(
        parameters, lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )


def transition_batches(
    sim: MeshSimulation, batch_size: int, generator: torch.Generator
) -> Iterator[Tensor]:
    """Endless ``[batch_size, 2]`` (trajectory, step) batches of the ``train`` split, a new
    permutation (drawn from ``generator``) per epoch, the last incomplete batch dropped."""
    transitions = sim.transition_index("train")
    while True:
        order = transitions[torch.randperm(len(transitions), generator=generator)]
        for first in range(0, len(order) - batch_size + 1, batch_size):
            yield order[first : first + batch_size]


def evaluation_record(
    name: str,
    seed: int,
    simulator: MeshSimulator,
    sim: MeshSimulation,
    config: MeshConfig,
    training: dict[str, Any],
    train_extra: int,
    split: str = "test",
) -> dict[str, Any]:
    """The JSON-friendly record of a trained ``simulator`` (see :func:`train_and_evaluate`):
    its training record, and its 1-step and all-rollout RMSE on every trajectory of
    ``split``."""
    one_step = one_step_rmse(simulator, sim, split, ROLLOUT_BATCH, stride=config.one_step_stride)
    rolled = rollout_rmse(simulator, sim, split, ROLLOUT_BATCH)
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


def validate(
    simulator: MeshSimulator,
    sim: MeshSimulation,
    step: int,
    train_loss: float,
    curve: list[dict[str, Any]],
    on_validation: Callable[[int, float], None] | None = None,
) -> None:
    """Append the validation rollout RMSE after ``step`` (and the mean training loss since the
    last validation) to ``curve``, then call ``on_validation(step, rmse)``; the simulator is
    left in training mode."""
    simulator.eval()
    val = rollout_rmse(simulator, sim, "val", ROLLOUT_BATCH)["rmse"]
    simulator.train()
    curve.append({"step": step, "train_loss": train_loss, "val_rollout_rmse": val})
    if on_validation is not None:
        on_validation(step, val)


def training_record(
    steps: int,
    elapsed: float,
    stopped_by: str,
    clock_name: str,
    noise_std: float,
    curve: list[dict[str, Any]],
    config: MeshConfig,
    validated: bool = True,
) -> dict[str, Any]:
    """The training record of :func:`fit_mesh_model` (``plateau`` is ``None`` where this
    process did not validate)."""
    return {
        "steps": steps,
        "train_time_s": elapsed,
        "time_per_step_s": elapsed / steps if steps else None,
        "stopped_by": stopped_by,
        "clock": clock_name,
        "noise_std": noise_std,
        "curve": curve,
        "plateau": plateau(curve, config.train_steps) if validated else None,
    }


def fit_mesh_model(
    simulator: MeshSimulator,
    sim: MeshSimulation,
    config: MeshConfig,
    seed: int = 0,
    on_validation: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``simulator`` on the ``train`` split of ``sim`` under the protocol of ``config``
    (batches and noise drawn from ``seed``): MSE on normalised Δu over the free nodes (of the
    sub-meshes' cores with ``config.partitions`` > 1, :class:`~.partitioned.SubMeshSteps`).

    Returns ``{"steps", "train_time_s", "time_per_step_s", "stopped_by" ("train_steps" or
    "max_seconds"), "clock", "noise_std", "curve" ([{"step", "train_loss",
    "val_rollout_rmse"}]), "plateau"}``. Training times exclude the validation rollouts and
    are counted by ``clock`` (the resolved ``config.budget_clock``).
    ``on_validation(step, val_rollout_rmse)`` is called after each validation.
    """
    check_training(simulator, sim, config)
    device, dtype = simulator.device, simulator.dtype
    clock_name, clock = budget_clock(config.budget_clock, device)
    generator = torch.Generator().manual_seed(seed)
    noise_std = config.noise * sim.delta_rms("train")
    optimiser = make_optimiser(simulator.parameters(), config)

    def make_batch(pairs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        traj, step = pairs[:, 0], pairs[:, 1]
        free = (sim.node_types(traj) != _OBSTACLE).to(device)
        current = sim.u[traj, step].to(device=device, dtype=dtype)
        target = sim.u[traj, step + 1].to(device=device, dtype=dtype)
        if noise_std > 0:
            noise = torch.randn(current.shape, generator=generator).to(device=device, dtype=dtype)
            current = current + noise_std * noise * free
        return traj, current, target - current, free

    stream = transition_batches(sim, config.batch_size, generator)
    simulator.train()
    for _ in range(config.normalizer_batches):
        traj, current, delta, free = make_batch(next(stream))
        mesh = simulator.batched_mesh(sim, traj)
        simulator.node_normalizer.accumulate(simulator.node_features(current, traj, sim))
        simulator.edge_normalizer.accumulate(mesh.edge_attr)
        simulator.output_normalizer.accumulate(delta[free].reshape(-1, 1))

    sub_meshes = (
        SubMeshSteps(simulator, sim, config.partitions, seed) if config.partitions > 1 else None
    )
    checkpoints = validation_steps(config)
    curve: list[dict[str, Any]] = []
    losses: list[float] = []
    steps, elapsed, stopped_by = 0, 0.0, "train_steps"
    while steps < config.train_steps:
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            stopped_by = "max_seconds"
            break
        start = clock()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(steps, config)
        traj, current, delta, free = make_batch(next(stream))
        if sub_meshes is None:
            prediction = simulator(current, traj, sim, accumulate=True)[free].reshape(-1, 1)
            target = simulator.output_normalizer(delta[free].reshape(-1, 1), accumulate=True)
        else:
            prediction, target = sub_meshes(traj, current, delta, free)
        loss = (prediction - target).pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
        losses.append(float(loss.detach()))
        elapsed += clock() - start
        if steps in checkpoints:
            validate(simulator, sim, steps, sum(losses) / len(losses), curve, on_validation)
            losses = []
    simulator.eval()
    return training_record(steps, elapsed, stopped_by, clock_name, noise_std, curve, config)


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
    on_validation: Callable[[int, float], None] | None = None,
    on_trained: Callable[[MeshSimulator], None] | None = None,
) -> dict[str, Any]:
    """Seed torch with ``seed``, build the step model (``build_model()``, already adapted to
    :class:`~gnnagg.models.MeshStepModel`), train it (:func:`fit_mesh_model`) and evaluate it
    on every trajectory of ``split`` (the 1-step RMSE from every ``config.one_step_stride``-th
    step); ``on_trained(simulator)`` is called with the trained simulator after the evaluation.

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
        lambda: fit_mesh_model(simulator, sim, config, seed, on_validation=on_validation), dev
    )
    record = evaluation_record(name, seed, simulator, sim, config, training, train_extra, split)
    if on_trained is not None:
        on_trained(simulator)
    return record
