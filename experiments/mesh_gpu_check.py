"""Learned mesh simulators on a device against float64 on the CPU.

For a MeshGraphNet, a MeshGraphNet aggregating with gnnagg's GRU, and a masked
GraphTransformer (the widest mask, global tokens included), all with the mesh study's default
inputs (relative positions), one training step's loss and gradients (each tensor's error over
the norm of all gradients) and one rollout step's prediction on DEVICE in float32 are compared
with the same model in float64 on the CPU, on a small data set with a geometry per trajectory
(a batch of two trajectories is two different meshes; normalisers fed from the same batches
first). Prints one line per model and check and exits 1 on a failure.

    python experiments/mesh_gpu_check.py [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch

from gnnagg.aggr import GRUAggregation
from gnnagg.bench.registry import mesh_mask
from gnnagg.data import NODE_TYPES, mesh_simulation
from gnnagg.models import (
    EdgeFeatureModel,
    GraphTransformer,
    MeshGraphNet,
    MeshSimulator,
    NodeFeatureModel,
    edge_input_channels,
    node_input_channels,
)


def _models() -> dict[str, MeshSimulator]:
    def mgn(**kwargs):
        return MeshGraphNet(
            node_input_channels(2), 16, 1, edge_dim=edge_input_channels(2), num_layers=3, **kwargs
        )

    gt = GraphTransformer(
        node_input_channels(2), 16, 1, heads=2, num_layers=2,
        mask=mesh_mask("khop2+dilated+global"),
    )  # fmt: skip
    return {
        "mgn-3x16": MeshSimulator(EdgeFeatureModel(mgn()), 2),
        "mgn-3x16-gru": MeshSimulator(EdgeFeatureModel(mgn(aggr=GRUAggregation(16, 16))), 2),
        "gt-2x16-khop2+dilated+global": MeshSimulator(NodeFeatureModel(gt), 2),
    }


def _step(simulator: MeshSimulator, sim, device, dtype) -> tuple[torch.Tensor, list, torch.Tensor]:
    simulator = copy.deepcopy(simulator).to(device=device, dtype=dtype)
    traj = torch.tensor([0, 1])
    u = sim.u[traj, 2].to(device=device, dtype=dtype)
    target = (sim.u[traj, 3] - sim.u[traj, 2]).to(device=device, dtype=dtype)
    free = (sim.node_types(traj) != NODE_TYPES.index("obstacle")).to(device)
    simulator.train()
    for _ in range(3):  # the normalisers see the same batches on both sides
        simulator(u, traj, sim, accumulate=True)
        simulator.output_normalizer(target[free].reshape(-1, 1), accumulate=True)
    prediction = simulator(u, traj, sim)
    loss = (prediction[free].reshape(-1, 1) - simulator.output_normalizer(
        target[free].reshape(-1, 1))).pow(2).mean()  # fmt: skip
    grads = torch.autograd.grad(loss, [p for p in simulator.parameters() if p.requires_grad])
    simulator.eval()
    return loss.detach(), [g.detach() for g in grads], simulator.predict_next(u, traj, sim)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    sim = mesh_simulation(
        2, 300, 4, 4, splits=(0.5, 0.25, 0.25), geometry="varied", cache=False
    )
    torch.manual_seed(0)
    failures = 0
    for name, simulator in _models().items():
        ref = _step(simulator, sim, "cpu", torch.float64)
        got = _step(simulator, sim, args.device, torch.float32)
        loss_err = abs(float(got[0]) - float(ref[0])) / max(abs(float(ref[0])), 1e-12)
        # Relative to all gradients together: some are zero exactly (a key bias cannot change
        # a softmax over keys), and a per-tensor relative error would divide rounding by zero.
        scale = torch.cat([r.flatten() for r in ref[1]]).norm().clamp_min(1e-12)
        grad_err = max(float((g.double().cpu() - r).norm() / scale) for g, r in zip(got[1], ref[1]))
        pred_err = float((got[2].double().cpu() - ref[2]).abs().max())
        for check, error, tol in (
            ("loss, relative", loss_err, 1e-4),
            ("gradients, worst error / norm", grad_err, 5e-4),
            ("rollout step, max abs", pred_err, 1e-5),
        ):
            ok = error <= tol
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:30} {check:32} {error:.2e} (tol {tol:g})")
    print("all checks passed" if failures == 0 else f"{failures} checks FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
