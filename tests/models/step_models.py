"""Mesh simulation fixtures and small step models for the simulator tests."""

import torch
from torch import nn

from gnnagg.data import NODE_TYPES


class TinyMessagePassing(nn.Module):
    """A two-step message-passing network called as ``model(x, edge_index, edge_attr)``."""

    def __init__(self, in_channels: int, edge_channels: int, hidden: int = 8):
        super().__init__()
        self.encode = nn.Linear(in_channels, hidden)
        self.message = nn.Linear(2 * hidden + edge_channels, hidden)
        self.update = nn.Linear(2 * hidden, hidden)
        self.decode = nn.Linear(hidden, 1)

    def forward(self, x, edge_index, edge_attr):
        h = torch.relu(self.encode(x))
        src, dst = edge_index
        for _ in range(2):
            m = torch.relu(self.message(torch.cat([h[src], h[dst], edge_attr], dim=1)))
            h = h + torch.relu(
                self.update(torch.cat([h, torch.zeros_like(h).index_add_(0, dst, m)], 1))
            )
        return self.decode(h)


class Recorder(nn.Module):
    """Records how it is called; returns zeros."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return torch.zeros(args[0].shape[0], 1) * self.weight


class NormalisedSolverOracle(nn.Module):
    """A step model that undoes the simulator's input normalisation, runs the exact solver and
    normalises its answer like a trained network would: the whole learned path with the
    network replaced by the truth."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim
        self.weight = nn.Parameter(torch.zeros((), dtype=torch.float64))
        # Set after wrapping: the normalisers live in the simulator (a list, so that the
        # simulator is not registered as a submodule of its own model).
        self.simulator = []

    def forward(self, x, edge_index, *, pos, edge_attr, batch):
        sim, simulator = self.sim, self.simulator[0]
        raw = simulator.node_normalizer.inverse(x)
        n = sim.num_nodes
        u = raw[:, 0].reshape(-1, n)
        kappa = raw[::n, 1 + len(NODE_TYPES)]
        trajectories = [int((sim.kappa - k).abs().argmin()) for k in kappa]
        nxt = torch.stack(
            [
                torch.from_numpy(sim.solver(t).step(u[row].numpy()))
                for row, t in enumerate(trajectories)
            ]
        )
        return simulator.output_normalizer((nxt - u).reshape(-1, 1)) + 0 * self.weight
