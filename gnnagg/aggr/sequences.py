"""Neighbourhoods as packed sequences, and the RNN calls that run them without padding.

:func:`pack_neighbourhoods` lays out every node's messages as one sequence of a
:class:`~torch.nn.utils.rnn.PackedSequence` (degree bucketing: nodes by degree descending, step
``t`` holds the nodes with degree ``> t``) without any ``[N, D_max]`` buffer. Three ways run an
``nn.GRU``/``nn.LSTM`` over it, all giving the same result up to rounding:

* :func:`run_packed` -- one ATen call on the packed batch (cuDNN on CUDA);
* :func:`run_segments` -- one dense call per run of steps with the same number of running nodes
  (``O(E)`` work on a CPU, where ATen's backward of a packed RNN is ``O(D_max·E)``);
* :func:`run_layer_by_layer` -- one single-layer call per layer and direction, which returns
  every layer's outputs (for the regulariser of a stacked RNN) and runs the reverse direction
  of a bidirectional RNN on rows permuted so that each sequence reads backwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .base import Neighbourhoods

__all__ = [
    "PackedNeighbourhoods",
    "call_rnn",
    "last_rows",
    "pack_neighbourhoods",
    "reversed_rows",
    "rnn_weights",
    "run_layer_by_layer",
    "run_packed",
    "run_segments",
]

#: The parts of a recurrent state: ``(h,)`` for a GRU, ``(h, c)`` for an LSTM.
State = tuple[Tensor, ...]


@dataclass
class PackedNeighbourhoods:
    """Neighbourhoods laid out as a packed sequence batch (see :func:`pack_neighbourhoods`).

    Sequence ``q`` is node ``order[q // R]``, entry ``q % R`` of the flattened extra dimensions;
    its step ``t`` is row ``offsets[t] + q`` of ``sequence.data``. Only nodes with at least one
    message are in the batch: they are ``order[:num_active]``.
    """

    sequence: PackedSequence
    order: Tensor
    rank: Tensor
    num_active: int
    lengths: Tensor
    offsets: Tensor


def pack_neighbourhoods(groups: Neighbourhoods) -> PackedNeighbourhoods:
    """Lay out grouped messages ``[E, *rest, F]`` as a ``PackedSequence`` of ``[E·R, F]`` rows.

    Nodes are ranked by degree, descending (ties by node id); ``batch_sizes[t]`` is ``R`` times
    the number of nodes with degree ``> t``, and message ``t`` of the node ranked ``r`` goes to
    packed row ``R · (offset[t] + r)`` (plus the entry of ``rest``). Everything is computed from
    the degrees and offsets with ``O(N + E + D_max)`` work and memory, and two host syncs (the
    maximum degree and the batch sizes, which ``PackedSequence`` keeps on the CPU).
    """
    plan = groups.plan
    messages = groups.messages
    num_nodes, num_rows = plan.dim_size, plan.num_rows
    sequences_per_node = math.prod(messages.shape[1:-1])
    device = messages.device
    degrees = plan.degrees
    order = torch.sort(degrees, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_nodes, device=device)

    max_degree = plan.max_degree
    counts = torch.bincount(degrees, minlength=max_degree + 1)
    # Nodes still running at step t are those of degree > t.
    running = num_nodes - counts.cumsum(0)[:-1]
    offsets = torch.zeros_like(running)
    offsets[1:] = running.cumsum(0)[:-1]
    batch_sizes = running.cpu()
    num_active = int(batch_sizes[0]) if max_degree > 0 else 0

    node = plan.sorted_index
    step = torch.arange(num_rows, device=device) - plan.ptr[node]
    packed_row = offsets[step] + rank[node]
    # Gather (rather than scatter) so that the backward is a gather too.
    source = torch.empty_like(packed_row)
    source[packed_row] = torch.arange(num_rows, device=device)
    data = messages.index_select(0, source).reshape(
        num_rows * sequences_per_node, messages.shape[-1]
    )

    lengths = degrees[order[:num_active]].repeat_interleave(sequences_per_node)
    return PackedNeighbourhoods(
        sequence=PackedSequence(data, batch_sizes * sequences_per_node),
        order=order,
        rank=rank,
        num_active=num_active,
        lengths=lengths,
        offsets=offsets * sequences_per_node,
    )


def last_rows(packed: PackedNeighbourhoods) -> Tensor:
    """The packed row of every sequence's last step, in sequence order."""
    sequences = torch.arange(packed.lengths.numel(), device=packed.lengths.device)
    return packed.offsets[packed.lengths - 1] + sequences


def reversed_rows(packed: PackedNeighbourhoods, sizes: list[int]) -> Tensor:
    """The permutation of packed rows that reads every sequence backwards (an involution):
    row ``(t, q)`` takes row ``(L_q - 1 - t, q)``."""
    device = packed.lengths.device
    batch_sizes = torch.tensor(sizes, device=device)
    step = torch.repeat_interleave(torch.arange(len(sizes), device=device), batch_sizes)
    sequence = torch.arange(step.numel(), device=device) - packed.offsets[step]
    return packed.offsets[packed.lengths[sequence] - 1 - step] + sequence


def rnn_weights(rnn: nn.RNNBase, layer: int | None = None, direction: int = 0) -> list[Tensor]:
    """``rnn``'s weights in ATen's order: all of them, or one layer's in one direction."""
    names = rnn._flat_weights_names
    if layer is not None:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        names = [name for name in names if name.endswith(suffix)]
    return [getattr(rnn, name) for name in names]


def call_rnn(
    rnn: nn.RNNBase,
    data: Tensor,
    hx: State,
    weights: list[Tensor],
    num_layers: int,
    bidirectional: bool = False,
    batch_sizes: Tensor | None = None,
) -> tuple[Tensor, State]:
    """ATen's ``gru``/``lstm`` on a dense ``[steps, batch, F]`` input, or on packed rows
    with ``batch_sizes``: ``(output, final state parts [layers·directions, batch, H])``."""
    dropout = rnn.dropout if rnn.training else 0.0
    # cuDNN refuses the backward of an RNN run in eval mode; with dropout off the training
    # flag changes nothing else, so it is on whenever a gradient may flow (an eval-mode
    # model can still be differentiated, e.g. for saliency).
    train = rnn.training or torch.is_grad_enabled()
    lstm = isinstance(rnn, nn.LSTM)
    state = hx if lstm else hx[0]
    function = torch._VF.lstm if lstm else torch._VF.gru
    if batch_sizes is None:
        args = (
            data,
            state,
            weights,
            rnn.bias,
            num_layers,
            dropout,
            train,
            bidirectional,
            False,
        )
    else:
        args = (
            data,
            batch_sizes,
            state,
            weights,
            rnn.bias,
            num_layers,
            dropout,
            train,
            bidirectional,
        )
    output, *final = function(*args)
    return output, tuple(final)


def run_packed(
    rnn: nn.RNNBase, sequence: PackedSequence, hx: State, packed: PackedNeighbourhoods
) -> tuple[Tensor, Tensor]:
    """One ATen ``gru``/``lstm`` call on the packed batch: ``(outputs, last outputs)``.

    On CUDA this is one cuDNN call. On the CPU, ATen slices one ``[E, gates·H]`` input
    projection per step and the backward of each slice materialises a zero tensor of the
    full size: ``O(D_max·E)`` work, hence :func:`run_segments` there.
    """
    output, final = call_rnn(
        rnn,
        sequence.data,
        hx,
        rnn_weights(rnn),
        rnn.num_layers,
        rnn.bidirectional,
        sequence.batch_sizes,
    )
    if not rnn.bidirectional:
        return output, final[0][-1]
    return output, output.index_select(0, last_rows(packed))


def run_segments(
    rnn: nn.RNNBase,
    data: Tensor,
    sizes: list[int],
    hx: State,
    weights: list[Tensor],
    keep_outputs: bool,
) -> tuple[Tensor, Tensor]:
    """One dense unidirectional ATen call per run of steps with the same batch size.

    ``data`` holds packed rows with batch sizes ``sizes``; ``hx`` parts are
    ``[layers, batch, H]``. Within a run every sequence in the batch reads a message at every
    step, so its rows are a dense ``[steps, batch, F]`` tensor with no padding. There are as
    many runs as distinct degrees, at most ``sqrt(2E)``, so the Python overhead is small even
    for one hub of degree 5,000, whose run is a single C++ call. The packed data and states
    are cut with ``split``, whose backward is one concatenation. Returns the top layer's
    outputs at every packed row (empty unless ``keep_outputs``) and its last ``h`` per
    sequence, in rank order.
    """
    num_layers = hx[0].shape[0]
    runs: list[tuple[int, int]] = []
    for size in sizes:
        if runs and runs[-1][1] == size:
            runs[-1] = (runs[-1][0] + 1, size)
        else:
            runs.append((1, size))
    chunks = data.split([steps * size for steps, size in runs])
    state = hx
    outputs: list[Tensor] = []
    finished: list[Tensor] = []
    for k, ((steps, size), chunk) in enumerate(zip(runs, chunks)):
        after = runs[k + 1][1] if k + 1 < len(runs) else 0
        output, final = call_rnn(rnn, chunk.view(steps, size, -1), state, weights, num_layers)
        if keep_outputs:
            outputs.append(output.reshape(steps * size, -1))
        pieces = [part.split([after, size - after], dim=1) for part in final]
        finished.append(pieces[0][1][-1])
        state = tuple(piece[0] for piece in pieces)
    # Later runs finish lower ranks: reversing restores rank order.
    last_h = torch.cat(finished[::-1])
    output = torch.cat(outputs) if keep_outputs else last_h.new_empty(0, last_h.shape[-1])
    return output, last_h


def run_layer_by_layer(
    rnn: nn.RNNBase,
    sequence: PackedSequence,
    hx: State,
    packed: PackedNeighbourhoods,
    packed_call: bool,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The RNN as one single-layer call per layer and direction (:func:`run_segments`, or
    one packed call with ``packed_call``): ``(outputs, last outputs, every layer's outputs
    before dropout)``.

    Read backwards, the sequences still form a packed batch with the same batch sizes
    (step ``t`` of a reversed sequence of length ``L`` is its step ``L - 1 - t``), so the
    reverse direction is the forward machinery on permuted rows. Between layers, dropout as
    ``nn.GRU``/``nn.LSTM`` apply it."""
    sizes = sequence.batch_sizes.tolist()
    num_directions = 2 if rnn.bidirectional else 1
    reverse = reversed_rows(packed, sizes) if rnn.bidirectional else None
    layer_input, layer_outputs = sequence.data, []
    for layer in range(rnn.num_layers):
        directions = []
        for direction in range(num_directions):
            row = num_directions * layer + direction
            h0 = tuple(part[row : row + 1] for part in hx)
            rows = layer_input if direction == 0 else layer_input.index_select(0, reverse)
            weights = rnn_weights(rnn, layer, direction)
            if packed_call:
                out, _ = call_rnn(rnn, rows, h0, weights, 1, False, sequence.batch_sizes)
            else:
                out, _ = run_segments(rnn, rows, sizes, h0, weights, True)
            directions.append(out if direction == 0 else out.index_select(0, reverse))
        layer_output = torch.cat(directions, dim=-1) if len(directions) > 1 else directions[0]
        layer_outputs.append(layer_output)
        layer_input = layer_output
        if layer + 1 < rnn.num_layers and rnn.dropout > 0 and rnn.training:
            layer_input = nn.functional.dropout(layer_output, rnn.dropout, training=True)
    last = layer_output.index_select(0, last_rows(packed))
    return layer_output, last, tuple(layer_outputs)
