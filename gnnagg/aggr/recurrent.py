"""Recurrent neighbourhood aggregators (GRU, LSTM) without padding, regularised towards invariance.

The baseline of the LCM paper (Cohen-Karlik et al., 2020, "Regularizing towards permutation
invariance in recurrent models"): each node reads its messages as a sequence with a GRU or LSTM,
and a regulariser penalises the non-commutativity of the state transition at states the model
reaches, so that the learnt function generalises to larger neighbourhoods.

Unlike PyG's ``GRUAggregation``/``LSTMAggregation``, which pad every node to the largest degree
(``[N, D_max, F]``) and run ``D_max`` steps for every node, node ``v`` here runs exactly ``d(v)``
steps: its output never depends on other nodes' degrees, memory is ``O(E·F)`` and work ``O(E)``.
The messages are laid out as a :class:`~torch.nn.utils.rnn.PackedSequence` (degree bucketing:
nodes by degree descending, step ``t`` holds the nodes with degree ``> t``), built without any
``[N, D_max]`` buffer; every step touches only the nodes still running. Sequential steps = the
maximum degree, inherent to a recurrence.

Conventions:

* Reading order: in eval mode (or with ``shuffle=False``) each neighbourhood is read in edge order,
  i.e. the order of its messages along ``dim``; with ``shuffle=True`` a fresh uniformly random
  order is drawn for every forward in training mode.
* Messages ``[E, *rest, in_channels]`` with extra dimensions (GATConv's heads) run one sequence per
  node and per entry of ``rest``, with shared weights; the output is ``[N, *rest, output_size]``
  (``out_channels``, or ``proj_size``, times the number of directions).
* ``nn.GRU``/``nn.LSTM`` arguments (``num_layers``, ``dropout``, ``bidirectional``, ``proj_size``)
  are accepted as PyG forwards them; the output is the top layer's output at the node's last
  message, as PyG's ``rnn(x)[0][:, -1]``.
* Nodes with no messages get the top layer's initial state: zeros, or learnt vectors with
  ``learn_initial_state=True``.
* Execution: on CUDA, one ATen ``gru``/``lstm`` (cuDNN) call runs the packed batch; on the
  CPU, where ATen's backward of a packed RNN is ``O(D_max·E)``, one dense call per run of steps
  with the same number of running nodes does, carrying every layer's state across runs; a
  bidirectional RNN runs there layer by layer, its reverse direction on rows permuted so that
  each sequence reads backwards (``backend=`` overrides the choice). cuDNN
  computes in TF32 on Ampere and later unless ``torch.backends.cudnn.allow_tf32`` is off
  (PyTorch's default is on): about 1e-4 from float32.
* Dtypes: the recurrence runs in the dtype of the module's parameters. Lower-precision messages
  (float16/bfloat16 into a float32 module) are upcast and the output is cast back to their dtype;
  messages more precise than the parameters are a ``TypeError`` rather than silently truncated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_bool, check_choice
from .base import NeighbourhoodAggregation, Neighbourhoods

__all__ = [
    "GRUAggregation",
    "LSTMAggregation",
    "RecurrentAggregation",
    "commutator_loss",
    "pack_neighbourhoods",
    "total_permutation_loss",
]

State = tuple[Tensor, ...]
Transition = Callable[[State, Tensor], State]

#: The values of ``backend=``: which RNN calls run the packed neighbourhoods.
_BACKENDS = ("auto", "packed", "segments")


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


def _check_rnn_kwargs(rnn_class: type[nn.RNNBase], kwargs: dict) -> None:
    """Refuse the ``nn.GRU``/``nn.LSTM`` arguments that the aggregation sets itself, and check
    the rest with errors that name them (``nn.RNNBase`` lets ``bidirectional="yes"`` through
    and reports ``num_layers=2.5`` without naming it)."""
    for own, instead in (("input_size", "in_channels"), ("hidden_size", "out_channels")):
        if own in kwargs:
            raise TypeError(f"{own} is given by {instead}; do not pass it as a keyword")
    if "batch_first" in kwargs:
        raise TypeError(
            "batch_first cannot be set: the aggregation lays out each neighbourhood as a "
            "sequence itself (PyG's aggregation refuses it too)"
        )
    for name in ("num_layers", "proj_size"):
        value = kwargs.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if kwargs.get("num_layers", 1) < 1:
        raise ValueError(f"num_layers must be at least 1, got {kwargs['num_layers']}")
    if not isinstance(kwargs.get("bidirectional", False), bool):
        raise TypeError(f"bidirectional must be a bool, got {kwargs['bidirectional']!r}")
    dropout = kwargs.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")


def _last_rows(packed: PackedNeighbourhoods) -> Tensor:
    """The packed row of every sequence's last step, in sequence order."""
    sequences = torch.arange(packed.lengths.numel(), device=packed.lengths.device)
    return packed.offsets[packed.lengths - 1] + sequences


def _reversed_rows(packed: PackedNeighbourhoods, sizes: list[int]) -> Tensor:
    """The permutation of packed rows that reads every sequence backwards (an involution):
    row ``(t, q)`` takes row ``(L_q - 1 - t, q)``."""
    device = packed.lengths.device
    batch_sizes = torch.tensor(sizes, device=device)
    step = torch.repeat_interleave(torch.arange(len(sizes), device=device), batch_sizes)
    sequence = torch.arange(step.numel(), device=device) - packed.offsets[step]
    return packed.offsets[packed.lengths[sequence] - 1 - step] + sequence


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
class _Recorded:
    """What permutation_loss needs from the last forward; all detached, so no graph is kept."""

    inputs: Tensor
    outputs: Tensor
    lengths: Tensor
    offsets: Tensor
    initial: State
    #: Every layer's ``h`` at every packed row (the last one is ``outputs``).
    layer_outputs: tuple[Tensor, ...] = ()


class RecurrentAggregation(NeighbourhoodAggregation):
    """Shared machinery of :class:`GRUAggregation` and :class:`LSTMAggregation`.

    Subclasses set ``rnn_class`` (``nn.GRU`` or ``nn.LSTM``) and the name PyG gives it
    (``pyg_rnn_name``, so that PyG checkpoints load), and implement :meth:`transition` and, for
    states not recoverable from the packed output, :meth:`states_before`.
    """

    rnn_class: ClassVar[type[nn.RNNBase]]
    pyg_rnn_name: ClassVar[str]
    num_state_parts: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shuffle: bool = False,
        learn_initial_state: bool = False,
        bias: bool = True,
        backend: str = "auto",
        **rnn_kwargs,
    ) -> None:
        backend = check_choice(backend, "backend", _BACKENDS)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        _check_rnn_kwargs(self.rnn_class, rnn_kwargs)
        super().__init__(shuffle=shuffle)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.learn_initial_state = check_bool(learn_initial_state, "learn_initial_state")
        self.backend = backend
        bias = check_bool(bias, "bias")
        self.rnn = self.rnn_class(in_channels, out_channels, bias=bias, **rnn_kwargs)
        rnn = self.rnn
        self.num_directions = 2 if rnn.bidirectional else 1
        hidden_width = getattr(rnn, "proj_size", 0) or out_channels
        #: Width of the output: the top layer's ``h`` of every direction.
        self.output_size = self.num_directions * hidden_width
        if self.learn_initial_state:
            widths = (hidden_width, out_channels)[: self.num_state_parts]
            stacks = rnn.num_layers * self.num_directions
            # One vector per state part as for a single-layer cell; one row per layer and
            # direction otherwise (nn.GRU's h_0 layout).
            shapes = [(w,) if stacks == 1 else (stacks, w) for w in widths]
            self.initial_state = nn.ParameterList(
                nn.Parameter(rnn.weight_ih_l0.new_zeros(shape)) for shape in shapes
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the recurrent weights (PyTorch's default) and zero the initial state."""
        self.rnn.reset_parameters()
        if self.learn_initial_state:
            with torch.no_grad():
                for part in self.initial_state:
                    part.zero_()

    # -- forward ------------------------------------------------------------------------------
    def aggregate_groups(self, groups: Neighbourhoods) -> Tensor:
        """``[num_nodes, *rest, output_size]``: each node's top-layer output at its last
        message (as PyG's ``rnn(x)[0][:, -1]`` where PyG pads nothing)."""
        messages = groups.messages
        work = self.work_dtype(messages.dtype)
        rest = messages.shape[1:-1]
        entries = math.prod(rest)
        num_nodes = groups.num_nodes
        initial = self._initial_state(work, messages.device)
        # What a node without messages outputs: the top layer's initial h, every direction.
        idle_output = initial[0][-self.num_directions :].reshape(-1)
        record = torch.is_grad_enabled()
        if messages.shape[0] == 0 or entries == 0:
            self._store(None, record)
            out = idle_output.expand(num_nodes, *rest, self.output_size).clone()
            # messages is empty, so its sum is an exact 0 that keeps the output in the graph:
            # a backward through a batch without edges works as it does for a sum aggregation.
            return (out + messages.sum().to(work)).to(messages.dtype)

        packed = pack_neighbourhoods(groups)
        sequence = PackedSequence(packed.sequence.data.to(work), packed.sequence.batch_sizes)
        batch = packed.num_active * entries
        hx = tuple(part.unsqueeze(1).expand(-1, batch, -1).contiguous() for part in initial)
        layer_outputs: tuple[Tensor, ...] = ()
        stacked = self.rnn.num_layers > 1
        if self.num_directions == 2 or (record and stacked):
            # The regulariser of a stacked RNN needs every layer's states, which one call on
            # all layers does not return.
            output, last_h, layer_outputs = self._run_layer_by_layer(sequence, hx, packed)
        elif self._runs_packed(messages.device):
            output, last_h = self._run_packed(sequence, hx, packed)
        else:
            output, last_h = self._run_segments(
                sequence.data, sequence.batch_sizes.tolist(), hx, self._weights(), record
            )
        last_h = last_h.reshape(packed.num_active, *rest, self.output_size)
        idle = idle_output.expand(num_nodes - packed.num_active, *rest, self.output_size)
        # Ranks put the nodes that ran first, so one gather restores node order.
        out = torch.cat([last_h, idle]).index_select(0, packed.rank)

        self._store(
            _Recorded(
                inputs=sequence.data.detach(),
                outputs=output.detach(),
                lengths=packed.lengths,
                offsets=packed.offsets,
                initial=tuple(part.detach() for part in initial),
                layer_outputs=tuple(part.detach() for part in layer_outputs) or (output.detach(),),
            ),
            record,
        )
        return out.to(messages.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # PyG's GRUAggregation/LSTMAggregation hold the same nn.GRU/nn.LSTM under ``gru.`` /
        # ``lstm.``: their checkpoints load here (the weights mean the same; only PyG's padding
        # differs).
        theirs = f"{prefix}{self.pyg_rnn_name}."
        for key in [k for k in state_dict if k.startswith(theirs)]:
            state_dict[f"{prefix}rnn.{key[len(theirs) :]}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _runs_packed(self, device: torch.device) -> bool:
        if self.backend == "auto":
            return device.type == "cuda" and torch.backends.cudnn.enabled
        return self.backend == "packed"

    def _weights(self, layer: int | None = None, direction: int = 0) -> list[Tensor]:
        """The RNN's weights in ATen's order: all of them, or one layer's in one direction."""
        names = self.rnn._flat_weights_names
        if layer is not None:
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            names = [name for name in names if name.endswith(suffix)]
        return [getattr(self.rnn, name) for name in names]

    def _call_rnn(
        self,
        data: Tensor,
        hx: State,
        weights: list[Tensor],
        num_layers: int,
        bidirectional: bool = False,
        batch_sizes: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        """ATen's ``gru``/``lstm`` on a dense ``[steps, batch, F]`` input, or on packed rows
        with ``batch_sizes``: ``(output, final state parts [layers·directions, batch, H])``."""
        rnn = self.rnn
        dropout = rnn.dropout if rnn.training else 0.0
        # cuDNN refuses the backward of an RNN run in eval mode; with dropout off the training
        # flag changes nothing else, so it is on whenever a gradient may flow (an eval-mode
        # model can still be differentiated, e.g. for saliency).
        train = rnn.training or torch.is_grad_enabled()
        state = hx[0] if self.num_state_parts == 1 else hx
        function = torch._VF.gru if self.num_state_parts == 1 else torch._VF.lstm
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

    def _runs_packed(self, device: torch.device) -> bool:
        if self.backend == "auto":
            return device.type == "cuda" and torch.backends.cudnn.enabled
        return self.backend == "packed"

    def _run_packed(
        self, sequence: PackedSequence, hx: State, packed: PackedNeighbourhoods
    ) -> tuple[Tensor, Tensor]:
        """One ATen ``gru``/``lstm`` call on the packed batch: ``(outputs, last outputs)``.

        On CUDA this is one cuDNN call. On the CPU, ATen slices one ``[E, gates·H]`` input
        projection per step and the backward of each slice materialises a zero tensor of the
        full size: ``O(D_max·E)`` work (20 s for a hub of degree 200 among 100k edges), hence
        :meth:`_run_segments` there.
        """
        rnn = self.rnn
        output, final = self._call_rnn(
            sequence.data,
            hx,
            self._weights(),
            rnn.num_layers,
            rnn.bidirectional,
            sequence.batch_sizes,
        )
        if self.num_directions == 1:
            return output, final[0][-1]
        return output, output.index_select(0, _last_rows(packed))

    def _run_segments(
        self,
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
            output, final = self._call_rnn(chunk.view(steps, size, -1), state, weights, num_layers)
            if keep_outputs:
                outputs.append(output.reshape(steps * size, -1))
            pieces = [part.split([after, size - after], dim=1) for part in final]
            finished.append(pieces[0][1][-1])
            state = tuple(piece[0] for piece in pieces)
        # Later runs finish lower ranks: reversing restores rank order.
        last_h = torch.cat(finished[::-1])
        output = torch.cat(outputs) if keep_outputs else last_h.new_empty(0, last_h.shape[-1])
        return output, last_h

    def _run_layer_by_layer(
        self, sequence: PackedSequence, hx: State, packed: PackedNeighbourhoods
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """The RNN as one single-layer call per layer and direction (:meth:`_run_segments`, or
        one packed call where :meth:`_runs_packed`): ``(outputs, last outputs, every layer's
        outputs before dropout)``.

        Read backwards, the sequences still form a packed batch with the same batch sizes
        (step ``t`` of a reversed sequence of length ``L`` is its step ``L - 1 - t``), so the
        reverse direction is the forward machinery on permuted rows. Between layers, dropout as
        ``nn.GRU``/``nn.LSTM`` apply it."""
        rnn = self.rnn
        sizes = sequence.batch_sizes.tolist()
        packed_call = self._runs_packed(sequence.data.device)
        reverse = _reversed_rows(packed, sizes) if self.num_directions == 2 else None
        layer_input, layer_outputs = sequence.data, []
        for layer in range(rnn.num_layers):
            directions = []
            for direction in range(self.num_directions):
                row = self.num_directions * layer + direction
                h0 = tuple(part[row : row + 1] for part in hx)
                rows = layer_input if direction == 0 else layer_input.index_select(0, reverse)
                weights = self._weights(layer, direction)
                if packed_call:
                    out, _ = self._call_rnn(rows, h0, weights, 1, False, sequence.batch_sizes)
                else:
                    out, _ = self._run_segments(rows, sizes, h0, weights, True)
                directions.append(out if direction == 0 else out.index_select(0, reverse))
            layer_output = torch.cat(directions, dim=-1) if len(directions) > 1 else directions[0]
            layer_outputs.append(layer_output)
            layer_input = layer_output
            if layer + 1 < rnn.num_layers and rnn.dropout > 0 and rnn.training:
                layer_input = nn.functional.dropout(layer_output, rnn.dropout, training=True)
        last = layer_output.index_select(0, _last_rows(packed))
        return layer_output, last, tuple(layer_outputs)

    def _initial_state(self, dtype: torch.dtype, device: torch.device) -> State:
        """Parts ``[layers·directions, H]`` (``h``, and ``c`` for the LSTM)."""
        stacks = self.rnn.num_layers * self.num_directions
        if self.learn_initial_state:
            return tuple(part.to(dtype).reshape(stacks, -1) for part in self.initial_state)
        widths = (self.output_size // self.num_directions, self.out_channels)
        return tuple(
            torch.zeros(stacks, width, dtype=dtype, device=device)
            for width in widths[: self.num_state_parts]
        )

    def _store(self, recorded: _Recorded | None, record: bool) -> None:
        # (what was recorded, whether the forward ran without gradients), per thread.
        if record and recorded is None:
            recorded = _Recorded(
                inputs=torch.empty(0, self.in_channels),
                outputs=torch.empty(0, self.out_channels),
                lengths=torch.empty(0, dtype=torch.long),
                offsets=torch.empty(0, dtype=torch.long),
                initial=(),
                layer_outputs=(),
            )
        self._last_forward.set((recorded if record else None, not record))

    @property
    def _last_recorded(self) -> _Recorded | None:
        """What this thread's last forward with gradients recorded, or ``None``."""
        last = self._last_forward.get()
        return None if last is None else last[0]

    # -- regulariser --------------------------------------------------------------------------
    def transition(self, state: State, x: Tensor) -> State:
        """One step of the recurrence with the current weights: ``f(state, x)``."""
        raise NotImplementedError

    def states_before(self, recorded: _Recorded, seq: Tensor, step: Tensor) -> State:
        """The state of packed sequence ``seq`` before it reads its message ``step``: every
        layer's ``h``, first layer first."""
        return tuple(
            self._hidden_before(recorded, seq, step, layer) for layer in range(self.rnn.num_layers)
        )

    @staticmethod
    def _hidden_before(recorded: _Recorded, seq: Tensor, step: Tensor, layer: int = 0) -> Tensor:
        outputs = recorded.layer_outputs[layer]
        previous = outputs[recorded.offsets[(step - 1).clamp_min(0)] + seq]
        return torch.where((step == 0).unsqueeze(-1), recorded.initial[0][layer], previous)

    def sample_commutator_pairs(
        self, num_samples: int = 256, generator: torch.Generator | None = None
    ) -> tuple[State, Tensor, Tensor, Tensor, Tensor, Tensor] | None:
        """Draw the samples of :meth:`permutation_loss` from the last forward.

        Returns ``(state, x_i, x_j, seq, step, other)``: packed sequence ``seq`` (a node, or a
        node and head), the state it reached before reading its message ``step`` (= ``x_i``) and
        another of its messages ``other`` (= ``x_j``); or ``None`` when no neighbourhood has two
        messages. All tensors are detached.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int):
            raise TypeError(f"num_samples must be an int, got {type(num_samples).__name__}")
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if self.num_directions != 1:
            raise ValueError(
                f"{type(self).__name__}: the permutation regulariser is defined for the state "
                "transition of a recurrence read in one direction; this aggregation has "
                "bidirectional=True"
            )
        recorded = self._require_recorded()
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
        with torch.no_grad():
            state = self.states_before(recorded, seq, step)
        x_i = recorded.inputs[recorded.offsets[step] + seq]
        x_j = recorded.inputs[recorded.offsets[other] + seq]
        return state, x_i, x_j, seq, step, other

    def permutation_loss(
        self, num_samples: int = 256, generator: torch.Generator | None = None
    ) -> Tensor:
        """The commutativity regulariser of Cohen-Karlik et al. at the last forward's states.

        ``L = (1/K) Σ_k ‖f(f(s_k, x_i), x_j) − f(f(s_k, x_j), x_i)‖²`` with ``f`` the cell
        transition under the current weights, summed over the hidden channels (and for the LSTM
        over both ``h`` and ``c``, since ``c`` carries the order into later steps). Sample ``k``:
        a step drawn uniformly among all steps of neighbourhoods with at least two messages
        (with replacement); ``s_k`` is the state reached just before that step (the initial
        state for step 0), ``x_i`` the message read there and ``x_j`` another message of the same
        neighbourhood, uniformly. States and messages are treated as fixed sample points
        (detached): the gradient reaches only the recurrent weights, so the loss cannot be
        lowered by making upstream messages alike. Returns a zero scalar when no neighbourhood
        had two messages.

        Raises ``RuntimeError`` before any forward, or when the last forward ran without
        gradients (``torch.no_grad``/``inference_mode``: nothing is recorded then, so inference
        holds no extra memory). A forward with gradients keeps its packed messages and states,
        detached (``E·R·(in + out)`` numbers), until the next forward replaces them.
        """
        sampled = self.sample_commutator_pairs(num_samples, generator)
        weight = self.rnn.weight_ih_l0
        if sampled is None:
            return weight.new_zeros(())
        state, x_i, x_j = sampled[:3]
        return commutator_loss(self.transition, state, x_i, x_j)

    def _require_recorded(self) -> _Recorded:
        last = self._last_forward.get()
        if last is None or last[0] is None:
            if last is not None and last[1]:
                raise RuntimeError(
                    f"{type(self).__name__}.permutation_loss(): the last forward ran without "
                    "gradients (torch.no_grad), which records no states; run it with gradients "
                    "enabled"
                )
            raise RuntimeError(
                f"{type(self).__name__}.permutation_loss() samples states from the last forward "
                "pass in this thread; call the aggregation (or the model) first"
            )
        return last[0]

    def __repr__(self) -> str:
        rnn = self.rnn
        # The nn.GRU/nn.LSTM arguments that differ from their defaults.
        extra = "".join(
            f", {name}={value}"
            for name, value, default in (
                ("num_layers", rnn.num_layers, 1),
                ("dropout", rnn.dropout, 0.0),
                ("bidirectional", rnn.bidirectional, False),
                ("proj_size", getattr(rnn, "proj_size", 0), 0),
            )
            if value != default
        )
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"shuffle={self.shuffle}, learn_initial_state={self.learn_initial_state}{extra})"
        )


class GRUAggregation(RecurrentAggregation):
    """GRU aggregation: node ``v`` reads its ``d(v)`` messages as a sequence of ``d(v)`` steps.

    A drop-in replacement for PyG's ``GRUAggregation`` without padding: the output is the hidden
    state after the node's last message (not after ``D_max`` padded steps), memory is ``O(E·F)``,
    any index order and ``ptr`` are accepted. Call :meth:`permutation_loss` after a forward for
    the commutativity regulariser.

    Args:
        in_channels: message channels (last dimension of ``x``).
        out_channels: hidden size; the output's last dimension.
        shuffle: read each neighbourhood in a fresh random order every forward in training mode
            (eval mode always reads in edge order).
        learn_initial_state: learn the initial hidden state (what nodes without messages get);
            otherwise it is zero.
        bias: use biases in the GRU (``nn.GRU``'s ``bias``).
        **rnn_kwargs: further ``nn.GRU`` arguments, as PyG forwards them: ``num_layers``,
            ``dropout`` (between layers, in training mode), ``bidirectional``, ``device``,
            ``dtype``. ``input_size``, ``hidden_size`` and ``batch_first`` are set by the
            aggregation and refused. The output has ``output_size`` channels:
            ``out_channels``, doubled when bidirectional. As in PyG it is the top layer's
            output at the node's last message, so with ``bidirectional=True`` its second half
            is the backward direction after reading the last message only.
            :meth:`permutation_loss` needs ``bidirectional=False``; with stacked layers the
            state it regularises is every layer's (``h``, and ``c`` for the LSTM).
        backend: ``"packed"``: one ``nn.GRU`` call on the packed batch (cuDNN on CUDA;
            its CPU backward is ``O(D_max·E)``); ``"segments"``: one dense ``nn.GRU`` call per
            run of steps with the same number of running nodes (at most ``sqrt(2E)`` calls,
            ``O(E)`` work); ``"auto"`` (default): ``"packed"`` on CUDA with cuDNN, else
            ``"segments"``. All give the same result up to rounding.
    """

    rnn_class = nn.GRU
    pyg_rnn_name = "gru"

    @property
    def gru(self) -> nn.GRU:
        """The ``nn.GRU`` under the name PyG's ``GRUAggregation`` gives it."""
        return self.rnn

    def transition(self, state: State, x: Tensor) -> State:
        """One step of every layer: layer ``l`` reads the new ``h`` of layer ``l - 1``."""
        hidden = []
        for layer, h in enumerate(state):
            x = torch.gru_cell(x, h, *self._weights(layer))
            hidden.append(x)
        return tuple(hidden)


class LSTMAggregation(RecurrentAggregation):
    """LSTM aggregation: node ``v`` reads its ``d(v)`` messages as a sequence of ``d(v)`` steps.

    A drop-in replacement for PyG's ``LSTMAggregation`` without padding; the output is the hidden
    state ``h`` after the node's last message. The state of the recurrence is ``(h, c)``; the
    regulariser penalises the commutator of both (see :meth:`permutation_loss`). Arguments as
    :class:`GRUAggregation`; ``learn_initial_state`` learns both ``h_0`` and ``c_0``, and
    ``nn.LSTM``'s ``proj_size`` is accepted too (``h`` and the output are then ``proj_size``
    wide per direction).
    """

    rnn_class = nn.LSTM
    pyg_rnn_name = "lstm"
    num_state_parts = 2

    @property
    def lstm(self) -> nn.LSTM:
        """The ``nn.LSTM`` under the name PyG's ``LSTMAggregation`` gives it."""
        return self.rnn

    def transition(self, state: State, x: Tensor) -> State:
        """One step of every layer; ``state`` is ``(h_1, ..., h_L, c_1, ..., c_L)``."""
        layers = self.rnn.num_layers
        hidden, cells = [], []
        for layer in range(layers):
            h, c = self._cell(layer, x, state[layer], state[layers + layer])
            hidden.append(h)
            cells.append(c)
            x = h
        return (*hidden, *cells)

    def _cell(self, layer: int, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        rnn = self.rnn
        if not rnn.proj_size:
            h, c = torch.lstm_cell(x, [h, c], *self._weights(layer))
            return h, c
        # torch.lstm_cell has no projection: the LSTM step written out, then h = W_hr · h.
        gates = self._gates(layer, x, h)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return (torch.sigmoid(o) * torch.tanh(c)) @ getattr(rnn, f"weight_hr_l{layer}").t(), c

    def _gates(self, layer: int, x: Tensor, h: Tensor) -> Tensor:
        rnn = self.rnn
        gates = x @ getattr(rnn, f"weight_ih_l{layer}").t()
        gates = gates + h @ getattr(rnn, f"weight_hh_l{layer}").t()
        if rnn.bias:
            gates = gates + getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
        return gates

    def states_before(self, recorded: _Recorded, seq: Tensor, step: Tensor) -> State:
        """``(h_1, ..., h_L, c_1, ..., c_L)`` before step ``step`` of sequence ``seq``.

        The recorded outputs hold every layer's ``h`` at every step but ``nn.LSTM`` returns
        ``c`` only at the end. The gates of step ``t`` depend only on the layer's input at
        ``t`` and its ``h_{t-1}``, both recorded, so ``c`` follows from the linear recurrence
        ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t``, run only for the sampled sequences and only up to
        their largest sampled step: per layer at most ``min(E·R, K·D_max)`` gate rows and
        ``D_max`` short element-wise steps.
        """
        layers = self.rnn.num_layers
        hidden = [self._hidden_before(recorded, seq, step, layer) for layer in range(layers)]
        unique, inverse = torch.unique(seq, return_inverse=True)
        need = torch.zeros_like(unique).scatter_reduce(0, inverse, step, "amax")
        need, by_need = torch.sort(need, descending=True, stable=True)
        unique = unique[by_need]
        slot = torch.empty_like(by_need)
        slot[by_need] = torch.arange(by_need.numel(), device=seq.device)
        longest = int(need[0])
        if longest == 0:
            cells = [recorded.initial[1][layer].expand(seq.numel(), -1) for layer in range(layers)]
            return (*hidden, *cells)

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
        for layer in range(layers):
            inputs = recorded.inputs if layer == 0 else recorded.layer_outputs[layer - 1]
            h_prev = self._hidden_before(recorded, source, tau, layer)
            gates = self._gates(layer, inputs[rows], h_prev)
            i, f, g, _ = gates.chunk(4, dim=-1)
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
        return (*hidden, *cells)


def total_permutation_loss(
    module: nn.Module, num_samples: int = 256, generator: torch.Generator | None = None
) -> Tensor:
    """Sum of :meth:`~RecurrentAggregation.permutation_loss` over every recurrent aggregator in
    ``module`` that recorded a forward.

    ``to_hetero`` copies an aggregator once per edge type, so the instance a user created is not
    the one that runs; this collects the copies. Raises ``RuntimeError`` when ``module`` holds no
    recurrent aggregator that recorded a forward.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    losses: list[Tensor] = []
    for child in module.modules():
        if isinstance(child, RecurrentAggregation) and child._last_recorded is not None:
            losses.append(child.permutation_loss(num_samples, generator))
    if not losses:
        raise RuntimeError(
            "total_permutation_loss(): no recurrent aggregator in the module recorded a forward "
            "with gradients enabled"
        )
    return torch.stack(losses).sum()
