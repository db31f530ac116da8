r"""Next-step training of learned mesh simulators, and the records of the mesh study.

The recipe is MeshGraphNet's (Pfaff et al. 2021, https://arxiv.org/abs/2010.03409, and its
public code): a :class:`~gnnagg.models.MeshSimulator` is trained on single steps with Gaussian
noise added to the input state (the target is the change from the *noisy* state, so the
network learns to undo its own drift), its online normalisers accumulating over the first
training batches; it is evaluated with :func:`~gnnagg.models.one_step_rmse` and
:func:`~gnnagg.models.rollout_rmse`.

Entry point: :func:`train_and_evaluate` (one model, one seed, a JSON-friendly record), built from
:func:`fit_mesh_model`; :func:`summarise_mesh_runs` gives mean ± std over seeds; field plots.
"""

from __future__ import annotations

import gc
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import NODE_TYPES, MeshSimulation
from ..models import MeshSimulator, one_step_rmse, rollout_rmse

__all__ = [
    "MeshTrainingConfig",
    "fit_mesh_model",
    "peak_extra_memory_bytes",
    "peak_memory_bytes",
    "plot_field",
    "plot_field_arrays",
    "summarise_mesh_runs",
    "train_and_evaluate",
]

_OBSTACLE = NODE_TYPES.index("obstacle")


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshTrainingConfig:
    """Training options. ``epochs``: passes over every training transition (``None``: only
    the time limit); ``max_seconds``: stop after the batch that crosses this time budget
    (``None``: only the epochs); at least one must be set. ``budget_clock``: what the budget
    and the epoch times count: ``"cpu"``, this process's CPU seconds, which other processes on
    a shared machine do not shrink; ``"wall"``, wall-clock seconds; ``"auto"``, ``"cpu"`` on
    the CPU and ``"wall"`` on a GPU (whose work the CPU clock does not see). ``batch_size``:
    transitions (whole meshes) per step. The learning rate decays exponentially from ``lr`` to
    ``lr_final`` over the budget. ``noise_std``: standard deviation of the Gaussian noise added
    to ``u`` on the non-obstacle nodes of training inputs. ``warmup_batches``: batches that
    only feed the normalisers before the first update (MeshGraphNet uses 1,000)."""

    epochs: int | None = 10
    max_seconds: float | None = None
    budget_clock: str = "auto"
    batch_size: int = 2
    lr: float = 1e-3
    lr_final: float = 1e-5
    noise_std: float = 0.01
    warmup_batches: int = 20
    max_accumulations: int = 10**6
    rollout_batch: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs is None and self.max_seconds is None:
            raise ValueError("epochs, max_seconds: set at least one budget")
        if self.epochs is not None:
            _check_int("epochs", self.epochs, 1)
        if self.max_seconds is not None and not (
            isinstance(self.max_seconds, (int, float)) and 0 < self.max_seconds < math.inf
        ):
            raise ValueError(f"max_seconds: expected a positive number, got {self.max_seconds!r}")
        check_budget_clock(self.budget_clock)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("warmup_batches", self.warmup_batches, 0)
        _check_int("max_accumulations", self.max_accumulations, 0)
        _check_int("rollout_batch", self.rollout_batch, 1)
        _check_int("seed", self.seed, 0)
        for name in ("lr", "lr_final"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        if self.lr_final > self.lr:
            raise ValueError(f"lr_final: expected at most lr={self.lr}, got {self.lr_final}")
        noise = self.noise_std
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise ValueError(f"noise_std: expected a number >= 0, got {noise!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BUDGET_CLOCKS = ("auto", "cpu", "wall")


def check_budget_clock(name: object) -> str:
    """``name`` if it is one of :data:`BUDGET_CLOCKS`, else a ``ValueError`` naming it."""
    if name not in BUDGET_CLOCKS:
        raise ValueError(f"budget_clock: expected one of {list(BUDGET_CLOCKS)}, got {name!r}")
    return name  # type: ignore[return-value]


def budget_clock(name: str, device: torch.device | str) -> tuple[str, Callable[[], float]]:
    """``(resolved name, clock)`` for a :class:`MeshTrainingConfig` ``budget_clock`` on
    ``device``. A CPU clock on a GPU is refused: it would not count the GPU's work."""
    on_gpu = torch.device(device).type != "cpu"
    if check_budget_clock(name) == "auto":
        name = "wall" if on_gpu else "cpu"
    if name == "cpu" and on_gpu:
        raise ValueError(
            f"budget_clock: 'cpu' counts this process's CPU time, not the work of device "
            f"{str(device)!r}; use 'wall' or 'auto'"
        )
    return name, time.process_time if name == "cpu" else time.perf_counter


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value}")


def fit_mesh_model(
    simulator: MeshSimulator,
    sim: MeshSimulation,
    config: MeshTrainingConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``simulator`` on the ``train`` split of ``sim`` (Adam, MSE on normalised Δu over
    the non-obstacle nodes).

    Returns ``{"epochs", "steps", "train_time_s", "time_per_epoch_s", "loss_per_epoch",
    "stopped_by", "clock"}``; the times are counted by ``clock`` (the resolved
    ``config.budget_clock``); ``time_per_epoch_s`` is the mean over completed epochs (or the
    partial epoch's time scaled to a full one when none completed). ``on_epoch(epoch, mean
    loss)`` is called after each epoch.
    """
    if not isinstance(config, MeshTrainingConfig):
        raise TypeError(f"config: expected a MeshTrainingConfig, got {type(config).__name__}")
    if simulator.dim != sim.config.dim:
        raise ValueError(f"simulator: built for dim={simulator.dim}, data has {sim.config.dim}")
    device, dtype = simulator.device, simulator.dtype
    clock_name, clock = budget_clock(config.budget_clock, device)
    generator = torch.Generator().manual_seed(config.seed)
    transitions = sim.transition_index("train")
    if len(transitions) == 0:
        raise ValueError("split: 'train' has no trajectories in this data set")
    batches_per_epoch = math.ceil(len(transitions) / config.batch_size)
    total_steps = None if config.epochs is None else config.epochs * batches_per_epoch
    obstacle = (sim.node_type == _OBSTACLE).to(device)
    free = ~obstacle
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


def peak_memory_bytes(device: str | torch.device = "cpu") -> int:
    """Peak memory so far: CUDA's peak allocation on ``device`` (reset it with
    ``torch.cuda.reset_peak_memory_stats`` before the part to measure), or on the CPU the
    process's peak resident set size (it never decreases, so it bounds the run so far)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``), so that a model
    measured after another one pays for its own memory instead of reusing freed pages unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak resident set size of this process to its current size (Linux
    4.0+: ``5`` into ``/proc/self/clear_refs``); ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def peak_extra_memory_bytes(fn: Callable[[], Any], device: str | torch.device = "cpu"):
    """Run ``fn()``; return ``(its result, the peak memory it added in bytes)``.

    CUDA: peak allocation on ``device`` above what was allocated before. CPU (Linux): the
    kernel's peak resident set size (reset before ``fn``, so no sampling thread competes for
    the core) above the resident size before; elsewhere a sampling thread
    (:func:`gnnagg.bench.speed.timing.peak_rss_extra_mb`, a lower bound).
    """
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, max(int(torch.cuda.max_memory_allocated(device)) - base, 0)
    _release_free_heap()
    base_kib = _proc_status_kib("VmRSS")
    if base_kib is not None and _reset_peak_rss():
        result = fn()
        peak_kib = _proc_status_kib("VmHWM")
        if peak_kib is not None:
            return result, max(peak_kib - base_kib, 0) * 1024
    from .measure import peak_extra_memory

    return peak_extra_memory(fn, device)


# --------------------------------------------------------------------------------------------
# One run, and the summary over seeds
# --------------------------------------------------------------------------------------------


def train_and_evaluate(
    name: str,
    build_model: Callable[[], nn.Module],
    sim: MeshSimulation,
    config: MeshTrainingConfig,
    *,
    position_features: bool = False,
    device: str = "cpu",
    split: str = "test",
    on_epoch: Callable[[int, float], None] | None = None,
    max_trajectories: int | None = None,
    on_trained: Callable[[MeshSimulator], None] | None = None,
    one_step_stride: int = 1,
) -> dict[str, Any]:
    """Seed torch with ``config.seed``, build the step model (``build_model()``, already
    adapted to :class:`~gnnagg.models.MeshStepModel`), train it and evaluate it on ``split``
    (its first ``max_trajectories`` trajectories when given; the 1-step RMSE from every
    ``one_step_stride``-th step, see :func:`~gnnagg.models.one_step_rmse`);
    ``on_trained(simulator)`` is called with the trained simulator after the evaluation.

    Returns a JSON-friendly record: ``name``, ``seed``, ``num_params``, the training record of
    :func:`fit_mesh_model`, ``one_step_rmse``, ``rollout_rmse``, ``rollout_rmse_per_step``,
    ``inference_s_per_step`` (one rollout step of one mesh, from batched rollouts),
    ``train_peak_extra_bytes`` (the memory training added at its peak, see
    :func:`peak_extra_memory_bytes`), ``peak_memory_bytes`` (see :func:`peak_memory_bytes`),
    ``ell`` (the data's ℓ) and ``config``.
    """
    torch.manual_seed(config.seed)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    simulator = MeshSimulator(
        build_model(),
        sim.config.dim,
        position_features=position_features,
        max_accumulations=config.max_accumulations,
    ).to(dev)
    training, train_extra = peak_extra_memory_bytes(
        lambda: fit_mesh_model(simulator, sim, config, on_epoch=on_epoch), dev
    )
    one_step = one_step_rmse(
        simulator,
        sim,
        split,
        batch_size=config.rollout_batch,
        max_trajectories=max_trajectories,
        stride=one_step_stride,
    )
    rolled = rollout_rmse(
        simulator, sim, split, batch_size=config.rollout_batch, max_trajectories=max_trajectories
    )
    if on_trained is not None:
        on_trained(simulator)
    return {
        "name": name,
        "seed": config.seed,
        "num_params": sum(p.numel() for p in simulator.parameters()),
        **training,
        "one_step_rmse": one_step,
        "rollout_rmse": rolled["rmse"],
        "rollout_rmse_per_step": rolled["rmse_per_step"],
        "inference_s_per_step": rolled["seconds_per_graph_step"],
        "train_peak_extra_bytes": train_extra,
        "peak_memory_bytes": peak_memory_bytes(dev),
        "ell": sim.config.ell,
        "config": config.to_dict(),
    }


def _mean_std(values: Sequence[float]) -> dict[str, float | int]:
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarise_mesh_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (name, ℓ), in run order: mean ± sample std over seeds of both RMSEs, the
    per-step rollout curve (mean), training steps, timings and memory (the largest over
    seeds); ``num_params`` and the training ``clock`` of the first seed."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["name"], run["ell"]), []).append(run)
    rows = []
    for (name, ell), members in groups.items():
        curves = torch.tensor([m["rollout_rmse_per_step"] for m in members], dtype=torch.float64)
        epoch_times = [m["time_per_epoch_s"] for m in members if m["time_per_epoch_s"] is not None]
        rows.append(
            {
                "name": name,
                "ell": ell,
                "seeds": [m["seed"] for m in members],
                "num_params": members[0]["num_params"],
                "one_step_rmse": _mean_std([m["one_step_rmse"] for m in members]),
                "rollout_rmse": _mean_std([m["rollout_rmse"] for m in members]),
                "rollout_rmse_per_step": curves.mean(dim=0).tolist(),
                "train_time_s": _mean_std([m["train_time_s"] for m in members]),
                "time_per_epoch_s": _mean_std(epoch_times) if epoch_times else None,
                "inference_s_per_step": _mean_std([m["inference_s_per_step"] for m in members]),
                "peak_memory_bytes": max(m["peak_memory_bytes"] for m in members),
                "train_peak_extra_bytes": max(m.get("train_peak_extra_bytes", 0) for m in members),
                "steps": _mean_std([m["steps"] for m in members]),
                "clock": members[0].get("clock", "wall"),
            }
        )
    return rows


def plot_field(
    sim: MeshSimulation,
    predicted: Tensor,
    trajectory: int,
    step: int,
    path: str | Path,
    title: str = "",
) -> Path:
    """Save a PNG of one 2-D field: the prediction, the truth and their difference side by side
    (matplotlib ``tripcolor`` on the mesh's triangles, Gouraud shading, a shared colour scale
    for the two fields and a symmetric one for the error).

    ``predicted``: ``[N]`` (the state at ``step`` of ``trajectory``, e.g. a row of
    :func:`~gnnagg.models.rollout`'s output).
    """
    if sim.config.dim != 2:
        raise ValueError(f"sim: plot_field draws 2-D meshes, this one is {sim.config.dim}-D")
    if not 0 <= step <= sim.num_steps:
        raise ValueError(f"step: expected 0..{sim.num_steps}, got {step}")
    if not 0 <= trajectory < sim.num_trajectories:
        raise ValueError(f"trajectory: expected 0..{sim.num_trajectories - 1}, got {trajectory}")
    predicted = torch.as_tensor(predicted).detach().cpu().to(torch.float64).reshape(-1)
    if predicted.numel() != sim.num_nodes:
        raise ValueError(f"predicted: expected {sim.num_nodes} values, got {predicted.numel()}")
    heading = f"trajectory {trajectory}, step {step}" + (f": {title}" if title else "")
    return plot_field_arrays(
        sim.mesh.pos, sim.mesh.cells, sim.u[trajectory, step], predicted, path, heading
    )


def plot_field_arrays(
    pos: Any, cells: Any, truth: Any, predicted: Any, path: str | Path, title: str = ""
) -> Path:
    """:func:`plot_field` from plain arrays (e.g. read back from a ``results.json``): 2-D node
    positions ``[N, 2]``, triangles ``[C, 3]`` (node ids), the true and predicted fields ``[N]``."""
    pos = torch.as_tensor(pos, dtype=torch.float64)
    cells = torch.as_tensor(cells, dtype=torch.long)
    if pos.dim() != 2 or pos.shape[1] != 2:
        raise ValueError(f"pos: expected [N, 2] positions of a 2-D mesh, got {tuple(pos.shape)}")
    n = pos.shape[0]
    if cells.dim() != 2 or cells.shape[1] != 3 or cells.numel() == 0:
        raise ValueError(f"cells: expected [C, 3] triangles, got {tuple(cells.shape)}")
    if cells.min() < 0 or cells.max() >= n:
        raise ValueError(f"cells: node ids must lie in [0, {n})")
    truth = torch.as_tensor(truth, dtype=torch.float64).reshape(-1)
    predicted = torch.as_tensor(predicted, dtype=torch.float64).reshape(-1)
    for name, values in (("truth", truth), ("predicted", predicted)):
        if values.numel() != n:
            raise ValueError(f"{name}: expected {n} values (one per node), got {values.numel()}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.tri import Triangulation

    mesh = Triangulation(pos[:, 0].numpy(), pos[:, 1].numpy(), cells.numpy())
    truth = truth.numpy()
    guess = predicted.numpy()
    error = guess - truth
    low, high = float(min(truth.min(), guess.min())), float(max(truth.max(), guess.max()))
    bound = float(abs(error).max()) or 1.0
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), dpi=110, sharex=True)
    panels = [
        ("predicted", guess, "viridis", low, high),
        ("true", truth, "viridis", low, high),
        ("predicted - true", error, "RdBu_r", -bound, bound),
    ]
    for ax, (label, values, cmap, vmin, vmax) in zip(axes, panels):
        image = ax.tripcolor(mesh, values, shading="gouraud", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_aspect("equal")
        ax.set_ylabel(label)
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
