"""The mesh study's pictures: rollout error per step, the validation rollout over training
(learning curves), cost against accuracy, and the predicted, true and error fields on a 2-D
mesh. Every PNG is written with
:func:`gnnagg._files.write_figure`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...._files import write_figure
from ....data import MeshSimulation

__all__ = ["BASELINE_LABELS", "plot_field", "plot_field_arrays", "write_plots"]

BASELINE_LABELS = {
    "persistence": "persistence (u' = u)",
    "mean-delta": "mean Δu at each place (train)",
    "exact-solver": "exact solver (check: 0)",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_field(
    sim: MeshSimulation,
    predicted: Tensor,
    trajectory: int,
    step: int,
    path: str | Path,
    title: str = "",
) -> Path:
    """Save a PNG of one 2-D field: the prediction, the truth and their difference stacked
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
    plt = _pyplot()
    from matplotlib.tri import Triangulation

    mesh = Triangulation(pos[:, 0].numpy(), pos[:, 1].numpy(), cells.numpy())
    truth_np, guess = truth.numpy(), predicted.numpy()
    error = guess - truth_np
    low = float(min(truth_np.min(), guess.min()))
    high = float(max(truth_np.max(), guess.max()))
    bound = float(abs(error).max()) or 1.0
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), dpi=110, sharex=True)
    panels = [
        ("predicted", guess, "viridis", low, high),
        ("true", truth_np, "viridis", low, high),
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
    write_figure(fig, path)
    plt.close(fig)
    return path


def _save_panels(plt: Any, fig: Any, axes: Any, path: Path) -> Path:
    """The end of every one-row panel plot: the legend in the last panel, written to ``path``."""
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
    return path


def _rollout_plot(result: dict[str, Any], ells: list[float], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ells), figsize=(6 * len(ells), 4.2), dpi=110, squeeze=False)
    for ax, ell in zip(axes[0], ells):
        for b in result["baselines"]:
            if b["ell"] == ell and b["name"] != "exact-solver":
                curve = b["rollout_rmse_per_step"]
                style = "k--" if b["name"] == "persistence" else "k:"
                ax.plot(range(1, len(curve) + 1), curve, style, label=BASELINE_LABELS[b["name"]])
        for r in result["summary"]:
            if r["ell"] == ell:
                curve = r["rollout_rmse_per_step"]
                ax.plot(range(1, len(curve) + 1), curve, label=r["name"])
        ax.set_xlabel("time step")
        ax.set_ylabel("rollout RMSE (mean over seeds)")
        ax.set_title(f"ℓ = {ell:g}")
        ax.grid(alpha=0.3)
    return _save_panels(plt, fig, axes, path)


def _cost_plot(result: dict[str, Any], ells: list[float], path: Path) -> Path:
    plt = _pyplot()
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(ells), figsize=(6 * len(ells), 4.2), dpi=110, squeeze=False)
    for ax, ell in zip(axes[0], ells):
        for b in result["baselines"]:
            if b["ell"] == ell and b["name"] == "persistence":
                ax.axhline(b["rollout_rmse"], color="k", ls="--", label="persistence")
        for r in result["summary"]:
            if r["ell"] != ell:
                continue
            if r["time_per_step_s"] is None:
                continue
            x, y = 1000 * r["time_per_step_s"]["mean"], r["rollout_rmse"]["mean"]
            marker = "o" if r["family"] == "mgn" else "s"
            ax.errorbar(
                [x], [y], yerr=[r["rollout_rmse"]["std"]], fmt=marker, capsize=3, label=r["name"]
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("training time per step (ms, mean over seeds)")
        ax.set_ylabel("rollout RMSE")
        ax.set_title(f"cost–accuracy, ℓ = {ell:g}")
        ax.grid(alpha=0.3)
    return _save_panels(plt, fig, axes, path)


def _learning_plot(result: dict[str, Any], ells: list[float], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ells), figsize=(6 * len(ells), 4.2), dpi=110, squeeze=False)
    for ax, ell in zip(axes[0], ells):
        for b in result["baselines"]:
            if b["ell"] == ell and b["name"] != "exact-solver":
                style = "k--" if b["name"] == "persistence" else "k:"
                ax.axhline(b["rollout_rmse"], color="k", ls=style[1:], lw=0.8,
                           label=f"{BASELINE_LABELS[b['name']]} (test)")  # fmt: skip
        for r in result["summary"]:
            if r["ell"] == ell and r["val_curve"]:
                steps = [p["step"] for p in r["val_curve"]]
                values = [p["val_rollout_rmse"]["mean"] for p in r["val_curve"]]
                ax.plot(steps, values, marker=".", label=r["name"])
        ax.set_yscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("validation all-rollout RMSE (mean over seeds)")
        ax.set_title(f"learning curves, ℓ = {ell:g}")
        ax.grid(alpha=0.3)
    return _save_panels(plt, fig, axes, path)


def write_plots(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Every picture of ``result`` into ``out_dir``, by key: ``mesh_rollout``,
    ``mesh_learning_curves``, ``mesh_cost_accuracy`` and one ``mesh_field_ell<ℓ>`` per stored
    field."""
    ells = [d["ell"] for d in result["data"]]
    if not ells:
        return {}
    out_dir = Path(out_dir)
    files = {
        "mesh_rollout": _rollout_plot(result, ells, out_dir / "mesh_rollout.png"),
        "mesh_learning_curves": _learning_plot(result, ells, out_dir / "mesh_learning_curves.png"),
        "mesh_cost_accuracy": _cost_plot(result, ells, out_dir / "mesh_cost_accuracy.png"),
    }
    for field in result.get("fields", []):
        key = f"mesh_field_ell{field['ell']:g}".replace(".", "_")
        files[key] = plot_field_arrays(
            field["pos"], field["cells"], field["true"], field["predicted"],
            out_dir / f"{key}.png",
            f"{field['model']}, ℓ = {field['ell']:g}: trajectory {field['trajectory']}, "
            f"step {field['step']} of the rollout",
        )  # fmt: skip
    return files
