"""The permutation-invariance regulariser of the recurrent aggregators (Cohen-Karlik et al.,
2020, "Regularizing towards permutation invariance in recurrent models").

A forward with gradients records its packed messages and every layer's states, detached
(:class:`RecordedForward`); the regulariser samples steps from them (:func:`sample_steps`),
recovers the state reached before each (:func:`hidden_before`, and for an LSTM
:func:`lstm_cells_before`) and penalises the commutator of the state transition there
(:func:`commutator_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .sequences import State

__all__ = [
    "RecordedForward",
    "Transition",
    "commutator_loss",
    "hidden_before",
    "lstm_cells_before",
    "sample_steps",
]

#: One step of a recurrence: ``transition(state, x)`` is the next state.
Transition = Callable[[State, Tensor], State]


def commutator_loss(transition: Transition, state: State, x_i: Tensor, x_j: Tensor) -> Tensor:
    """Mean squared commutator of a state transition over a batch of samples.

    ``(1/K) Σ_k Σ_parts ‖f(f(s_k, x_ik), x_jk) − f(f(s_k, x_jk), x_ik)‖²`` where ``state`` is a
    tuple of ``[K, H]`` tensors (one per part of the state: ``(h,)`` for a GRU, ``(h, c)`` for an
    LSTM), ``x_i``/``x_j`` are ``[K, F]`` and ``transition(state, x)`` returns the next state.
    Zero exactly when ``f`` commutes on every sample.
    """
    ij = transition(transition(state, x_i), x_j)
    ji = transition(transition(state, x_j), x_i)
    total = sum((a - b).square().sum(-1) for a, b in zip(ij, ji))
    return total.mean()


@dataclass
class RecordedForward:
    """What the regulariser needs from a forward: packed inputs, every layer's outputs and the
    initial state, all detached, so no autograd graph is kept."""

    inputs: Tensor
    outputs: Tensor
    lengths: Tensor
    offsets: Tensor
    initial: State
    #: Every layer's ``h`` at every packed row (the last one is ``outputs``).
    layer_outputs: tuple[Tensor, ...] = ()


def hidden_before(recorded: RecordedForward, seq: Tensor, step: Tensor, layer: int = 0) -> Tensor:
    """Layer ``layer``'s ``h`` of packed sequence ``seq`` before it reads its message ``step``."""
    outputs = recorded.layer_outputs[layer]
    previous = outputs[recorded.offsets[(step - 1).clamp_min(0)] + seq]
    return torch.where((step == 0).unsqueeze(-1), recorded.initial[0][layer], previous)


def sample_steps(
    recorded: RecordedForward, num_samples: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(seq, step, other)``: ``num_samples`` steps drawn uniformly (with replacement) among
    all steps of recorded sequences with at least two messages, and for each another step of
    the same sequence, uniformly; ``None`` when no sequence has two messages."""
    lengths = recorded.lengths
    if lengths.numel() == 0:
        return None
    eligible = torch.where(lengths >= 2, lengths, 0)
    cumulative = eligible.cumsum(0)
    total = int(cumulative[-1])
    if total == 0:
        return None
    device = lengths.device
    # Uniform over the steps of all sequences of length >= 2 ...
    draw = torch.randint(total, (num_samples,), device=device, generator=generator)
    seq = torch.searchsorted(cumulative, draw, right=True)
    step = draw - (cumulative[seq] - eligible[seq])
    # ... and the partner message uniform over the other steps of the same sequence.
    length = lengths[seq]
    uniform = torch.rand(num_samples, device=device, generator=generator)
    other = (uniform * (length - 1)).long().clamp_max(length - 2)
    other = other + (other >= step).long()
    return seq, step, other


def lstm_cells_before(
    recorded: RecordedForward,
    seq: Tensor,
    step: Tensor,
    num_layers: int,
    gates: Callable[[int, Tensor, Tensor], Tensor],
) -> list[Tensor]:
    """Every layer's LSTM cell state ``c`` of packed sequence ``seq`` before step ``step``.

    The recorded outputs hold every layer's ``h`` at every step but ``nn.LSTM`` returns ``c``
    only at the end. The gates of step ``t`` (``gates(layer, x, h)``: the pre-activations
    ``[i, f, g, o]``) depend only on the layer's input at ``t`` and its ``h_{t-1}``, both
    recorded, so ``c`` follows from the linear recurrence ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t``,
    run only for the sampled sequences and only up to their largest sampled step: per layer at
    most ``min(E·R, K·D_max)`` gate rows and ``D_max`` short element-wise steps.
    """
    unique, inverse = torch.unique(seq, return_inverse=True)
    need = torch.zeros_like(unique).scatter_reduce(0, inverse, step, "amax")
    need, by_need = torch.sort(need, descending=True, stable=True)
    unique = unique[by_need]
    slot = torch.empty_like(by_need)
    slot[by_need] = torch.arange(by_need.numel(), device=seq.device)
    longest = int(need[0])
    if longest == 0:
        return [recorded.initial[1][layer].expand(seq.numel(), -1) for layer in range(num_layers)]

    # The sub-problem is laid out like a packed batch: step tau of slot j at row
    # sub_offsets[tau] + j, with sub_sizes[tau] = #slots that need more than tau steps.
    counts = torch.bincount(need, minlength=longest + 1)
    sub_sizes = unique.numel() - counts.cumsum(0)[:-1]
    sub_offsets = torch.zeros_like(sub_sizes)
    sub_offsets[1:] = sub_sizes.cumsum(0)[:-1]
    slots = torch.repeat_interleave(torch.arange(unique.numel(), device=seq.device), need)
    starts = torch.zeros_like(need)
    starts[1:] = need.cumsum(0)[:-1]
    tau = torch.arange(slots.numel(), device=seq.device) - starts[slots]
    row = torch.empty_like(slots)
    row[sub_offsets[tau] + slots] = torch.arange(slots.numel(), device=seq.device)
    slots, tau = slots[row], tau[row]
    source = unique[slots]
    rows = recorded.offsets[tau] + source
    slot_k = slot[inverse]

    cells = []
    for layer in range(num_layers):
        inputs = recorded.inputs if layer == 0 else recorded.layer_outputs[layer - 1]
        h_prev = hidden_before(recorded, source, tau, layer)
        pre_activations = gates(layer, inputs[rows], h_prev)
        i, f, g, _ = pre_activations.chunk(4, dim=-1)
        increment = torch.sigmoid(i) * torch.tanh(g)
        forget = torch.sigmoid(f)
        trajectory = torch.empty_like(increment)
        initial = recorded.initial[1][layer]
        c = initial.expand(int(sub_sizes[0]), -1)
        for start, size in zip(sub_offsets.tolist(), sub_sizes.tolist()):
            block = slice(start, start + size)
            c = forget[block] * c[:size] + increment[block]
            trajectory[block] = c
        before = trajectory[sub_offsets[(step - 1).clamp_min(0)] + slot_k]
        cells.append(torch.where((step == 0).unsqueeze(-1), initial, before))
    return cells
